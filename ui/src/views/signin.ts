// The signed-out screen: sign in through a window, with MFA, or in the user's browser. When the
// keyring cannot keep a sign-in (missing or locked), it asks where to keep it instead: in a
// private file, or in the keyring once it is unlocked.
import type { Account, SignInRequest } from "../backend/types";
import type { Context } from "../context";
import { button, el } from "../dom";
import { describeError, isBackendError } from "../errors";
import { agentNote } from "../format";

export const SIGNING_IN = "Finish signing in in the window that opened…";

/** The codes of a sign-in the token store stopped: before it started, or once it finished. */
export const TOKEN_STORE = "token_store";
export const SIGN_IN_HELD = "sign_in_held";

/** Why the keyring could not keep the sign-in, and the sign-in to go on with. */
interface StoreQuestion {
  /** `token_store`: nothing was signed in yet; `sign_in_held`: a finished sign-in waits. */
  code: string;
  message: string;
  request: SignInRequest;
}

const DEFAULT_REQUEST: SignInRequest = { mfa: false, method: "window" };

/** The card shown while not signed in; keeps a running sign-in across account updates. */
export class SignInCard {
  readonly element: HTMLElement;
  private account: Account;
  private running = false;
  private error = "";
  private question: StoreQuestion | null = null;

  constructor(
    private ctx: Context,
    account: Account,
    private onSignedIn: (account: Account) => void,
  ) {
    this.account = account;
    this.element = el("section", { class: "signin", "aria-labelledby": "signin-title" });
    this.render();
  }

  update(account: Account): void {
    this.account = account;
    this.render();
  }

  /** Focuses the first usable button. */
  focus(): void {
    this.element.querySelector<HTMLButtonElement>("button:not([disabled])")?.focus();
  }

  /** Signs in as the tray asked, when the tray could not (the keyring was in the way). */
  start(request: SignInRequest): void {
    void this.signIn(request);
  }

  /** A sign-in the tray finished waits for the keyring: asks where to keep it. */
  askWhereToKeep(): void {
    this.question = {
      code: SIGN_IN_HELD,
      message: "You signed in, but your keyring did not take the sign-in. Tether holds it until you choose where to keep it.",
      request: DEFAULT_REQUEST,
    };
    this.render();
    this.focus();
  }

  private async signIn(request: SignInRequest): Promise<void> {
    await this.run(request, () => this.ctx.backend.signIn(request));
  }

  /** Runs a step of signing in, and says how it ended. */
  private async run(request: SignInRequest, step: () => Promise<Account>): Promise<void> {
    if (this.running) return;
    this.running = true;
    this.error = "";
    this.question = null;
    this.render();
    try {
      const account = await step();
      this.running = false;
      this.account = account;
      this.render();
      this.onSignedIn(account);
    } catch (e) {
      this.running = false;
      if (isBackendError(e) && (e.code === TOKEN_STORE || e.code === SIGN_IN_HELD)) {
        this.question = { code: e.code, message: e.message, request };
      } else {
        // Closing the sign-in window is the user's answer, not an error.
        this.error = isBackendError(e) && e.code === "cancelled" ? "" : describeError(e);
      }
      this.render();
      this.focus();
    }
  }

  /** Keeps the sign-in in a private file, then signs in (or stores the one that waits). */
  private keepInFile(q: StoreQuestion): void {
    void this.run(q.request, async () => {
      const account = await this.ctx.backend.useTokenStore(true);
      return q.code === SIGN_IN_HELD ? account : this.ctx.backend.signIn(q.request);
    });
  }

  /** Tries the keyring again, after the person unlocked it. */
  private retryKeyring(q: StoreQuestion): void {
    if (q.code === SIGN_IN_HELD) void this.run(q.request, () => this.ctx.backend.useTokenStore(false));
    else void this.signIn(q.request);
  }

  private storeQuestion(q: StoreQuestion): HTMLElement {
    const held = q.code === SIGN_IN_HELD;
    return el(
      "div",
      { class: "store-question", id: "token-store", role: "alert" },
      el("h3", { class: "store-question-title" }, held ? "Where should Tether keep your sign-in?" : "Your keyring cannot keep a sign-in"),
      el("p", { "data-field": "store-problem" }, q.message),
      el(
        "p",
        { class: "muted small" },
        "Tether can keep it in a private file instead, readable only by you (like an SSH key), " +
          "or you can unlock your keyring and try again. Settings can change this later.",
      ),
      el(
        "div",
        { class: "signin-actions" },
        button("Keep my sign-in in a private file", { id: "keep-in-file", class: "btn btn-primary", disabled: this.running }, () =>
          this.keepInFile(q),
        ),
        button(held ? "Try the keyring again" : "Try again", { id: "retry-keyring", class: "btn", disabled: this.running }, () =>
          this.retryKeyring(q),
        ),
      ),
    );
  }

  private render(): void {
    const a = this.account;
    const disabled = this.running || !a.can_sign_in;
    const focusedId = this.element.contains(document.activeElement) ? document.activeElement?.id : undefined;
    const q = this.question;
    this.element.replaceChildren(
      el(
        "div",
        { class: "card signin-card" },
        el("h2", { id: "signin-title", class: "signin-title" }, `Sign in to ${a.profile}`),
        a.session === "needs_sign_in"
          ? el("p", { class: "signin-reason", "data-field": "reason" }, "Your session ended: sign in again")
          : el("p", { class: "muted" }, "Sign in to reach your environments over SSH."),
        a.can_sign_in
          ? null
          : el(
              "p",
              { class: "note", "data-field": "token-note" },
              "Tether is using an API token from the environment, so signing in here cannot help: " +
                "replace or remove the token and restart Tether.",
            ),
        q
          ? this.storeQuestion(q)
          : el(
              "div",
              { class: "signin-actions" },
              button("Sign in", { id: "sign-in", class: "btn btn-primary", disabled }, () =>
                void this.signIn({ mfa: false, method: "window" }),
              ),
              button("Sign in with MFA", { id: "sign-in-mfa", class: "btn", disabled }, () =>
                void this.signIn({ mfa: true, method: "window" }),
              ),
            ),
        q
          ? null
          : button(
              "Use my browser instead",
              {
                id: "sign-in-browser",
                class: "btn-link",
                disabled,
                title: "For passkeys, password managers and single sign-on",
              },
              () => void this.signIn({ mfa: false, method: "browser" }),
            ),
        q ? null : el("p", { class: "muted small" }, "Your browser works with passkeys, password managers and SSO."),
        this.running
          ? el("p", { class: "signin-progress", role: "status" }, el("span", { class: "spinner", "aria-hidden": "true" }), SIGNING_IN)
          : null,
        this.error ? el("p", { class: "alert", role: "alert" }, this.error) : null,
        a.using_headless_agent
          ? el("p", { class: "muted small agent-note" }, agentNote(a))
          : null,
      ),
    );
    if (focusedId) this.element.querySelector<HTMLElement>(`#${focusedId}`)?.focus();
  }
}
