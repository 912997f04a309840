// The signed-out screen: sign in through a window, with MFA, or in the user's browser.
import type { Account, SignInRequest } from "../backend/types";
import type { Context } from "../context";
import { button, el } from "../dom";
import { describeError, isBackendError } from "../errors";
import { agentNote } from "../format";

export const SIGNING_IN = "Finish signing in in the window that opened…";

/** The card shown while not signed in; keeps a running sign-in across account updates. */
export class SignInCard {
  readonly element: HTMLElement;
  private account: Account;
  private running = false;
  private error = "";

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

  private async signIn(request: SignInRequest): Promise<void> {
    if (this.running) return;
    this.running = true;
    this.error = "";
    this.render();
    try {
      const account = await this.ctx.backend.signIn(request);
      this.running = false;
      this.account = account;
      this.render();
      this.onSignedIn(account);
    } catch (e) {
      this.running = false;
      // Closing the sign-in window is the user's answer, not an error.
      this.error = isBackendError(e) && e.code === "cancelled" ? "" : describeError(e);
      this.render();
      this.focus();
    }
  }

  private render(): void {
    const a = this.account;
    const disabled = this.running || !a.can_sign_in;
    const focusedId = this.element.contains(document.activeElement) ? document.activeElement?.id : undefined;
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
        el(
          "div",
          { class: "signin-actions" },
          button("Sign in", { id: "sign-in", class: "btn btn-primary", disabled }, () =>
            void this.signIn({ mfa: false, method: "window" }),
          ),
          button("Sign in with MFA", { id: "sign-in-mfa", class: "btn", disabled }, () =>
            void this.signIn({ mfa: true, method: "window" }),
          ),
        ),
        button(
          "Use my browser instead",
          {
            id: "sign-in-browser",
            class: "btn-link",
            disabled,
            title: "For passkeys, password managers and single sign-on",
          },
          () => void this.signIn({ mfa: false, method: "browser" }),
        ),
        el("p", { class: "muted small" }, "Your browser works with passkeys, password managers and SSO."),
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
