// The first-run welcome: the platform, signing in, Tether's block in ~/.ssh/config (shown before
// it is added), and start at login. Each answer goes to the app as it is given, so a start in
// between goes on where the person left off; the platform is not asked for when the app was
// started with one (a profile file, such as the demo's).
import type { Account, WelcomeAnswer, WelcomeView } from "../backend/types";
import type { Context } from "../context";
import { button, el } from "../dom";
import { describeError } from "../errors";
import { SignInCard } from "./signin";

export type WelcomeStep = "platform" | "sign-in" | "ssh-config" | "login" | "restarting";

/** What the welcome tells the window: a sign-in it made (the window's account follows, and
 * tells the welcome back through `setAccount`), and its end. */
export interface WelcomeEvents {
  signedIn(account: Account): void;
  done(): void;
}

/** The welcome's screen. */
export class Welcome {
  readonly element: HTMLElement;
  private step: WelcomeStep;
  private busy = false;
  private error = "";
  private signIn: SignInCard | null = null;
  private startAtLogin: boolean;
  private chosenPlatform: string;

  constructor(
    private ctx: Context,
    private view: WelcomeView,
    private account: Account,
    private events: WelcomeEvents,
  ) {
    this.element = el("section", { class: "welcome", id: "welcome", "aria-labelledby": "welcome-title" });
    this.chosenPlatform = view.active_profile;
    // A start at login has none of what this start was given (a profile file, the demo's).
    this.startAtLogin = view.profile_given_by === null;
    this.step = view.platform_chosen ? this.afterPlatform() : "platform";
    this.render();
  }

  /** The account changed (a sign-in from the tray, the agent's events). */
  setAccount(account: Account): void {
    const was = this.account.session;
    this.account = account;
    if (this.step === "sign-in" && account.session === "active" && was !== "active") {
      this.goTo("ssh-config");
      return;
    }
    this.signIn?.update(account);
  }

  /** The tray asked for a sign-in it could not start or finish: the sign-in step does it. */
  signInAsAsked(view: string): void {
    if (this.step !== "sign-in" || !this.signIn) return;
    if (view === "sign-in-held") this.signIn.askWhereToKeep();
    else this.signIn.start({ mfa: view === "sign-in-mfa", method: "window" });
  }

  private afterPlatform(): WelcomeStep {
    return this.account.session === "active" ? "ssh-config" : "sign-in";
  }

  /** The steps, for "Step n of m": the platform is one unless it was given at start. */
  private steps(): WelcomeStep[] {
    const all: WelcomeStep[] = ["platform", "sign-in", "ssh-config", "login"];
    return this.view.profile_given_by ? all.slice(1) : all;
  }

  private goTo(step: WelcomeStep): void {
    this.step = step;
    this.error = "";
    this.render();
    this.element.querySelector<HTMLElement>("h2")?.focus();
  }

  private async answer(answer: WelcomeAnswer, next: () => void): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    this.error = "";
    this.render();
    try {
      this.view = await this.ctx.backend.welcomeStep(answer);
      this.busy = false;
      next();
    } catch (e) {
      this.busy = false;
      this.error = describeError(e);
      this.render();
    }
  }

  private platformStep(): HTMLElement[] {
    const choices = this.view.platforms.map((p) => {
      const input = el("input", {
        type: "radio",
        name: "platform",
        id: `welcome-platform-${p.name}`,
        value: p.name,
        checked: p.name === this.chosenPlatform,
      });
      input.addEventListener("change", () => (this.chosenPlatform = p.name));
      return el("label", { class: "choice", for: input.id }, input, el("span", { class: "choice-title" }, p.title));
    });
    const next = () => {
      const platform = this.chosenPlatform;
      void this.answer({ step: "platform", profile: platform }, () => {
        // Another platform: the app restarts to serve it, and goes on with signing in.
        if (platform !== this.view.active_profile) this.goTo("restarting");
        else this.goTo(this.afterPlatform());
      });
    };
    return [
      el("h2", { id: "welcome-title", class: "welcome-title", tabindex: "-1" }, "Welcome to Tether"),
      el(
        "p",
        {},
        "Tether keeps a short-lived SSH certificate fresh while you work, so that terminals, tunnels and plain ssh reach your environments from the tray.",
      ),
      el("fieldset", { class: "choices" }, el("legend", {}, "Which platform do you use?"), ...choices),
      this.actions(button("Continue", { id: "welcome-next", class: "btn btn-primary", disabled: this.busy }, next)),
    ];
  }

  private signInStep(): HTMLElement[] {
    if (!this.signIn) this.signIn = new SignInCard(this.ctx, this.account, (a) => this.events.signedIn(a));
    else this.signIn.update(this.account);
    const given = this.view.profile_given_by;
    return [
      el("h2", { id: "welcome-title", class: "welcome-title", tabindex: "-1" }, `Sign in to ${this.view.profile_title}`),
      given
        ? el("p", { class: "muted small", "data-field": "profile-given" }, `Tether serves ${this.view.profile_title}, as ${given} said when it started.`)
        : null,
      this.signIn.element,
      this.actions(
        button("Sign in later", { id: "welcome-skip", class: "btn-link" }, () => this.goTo("ssh-config")),
      ),
    ].filter((e): e is HTMLElement => e !== null);
  }

  private sshConfigStep(): HTMLElement[] {
    const offer = this.view.ssh_config;
    const who = this.account.session === "active" && this.account.user ? this.account.user.display_name : null;
    const add = (yes: boolean) => void this.answer({ step: "ssh_config", add: yes }, () => this.goTo("login"));
    return [
      who ? el("p", { class: "welcome-done", role: "status", "data-field": "signed-in" }, `Signed in as ${who}.`) : null,
      el("h2", { id: "welcome-title", class: "welcome-title", tabindex: "-1" }, "Let plain ssh use Tether?"),
      offer.installed
        ? el("p", {}, "These lines of Tether's are at the top of ", el("code", {}, offer.path), ":")
        : el(
            "p",
            {},
            "With these lines at the top of ",
            el("code", {}, offer.path),
            ", ssh, scp, rsync and git reach your environments with Tether's certificate. Nothing else in the file changes:",
          ),
      el("pre", { class: "ssh-lines", id: "welcome-ssh-lines" }, offer.lines),
      el("p", { class: "muted small" }, "You can add or remove them later in Settings."),
      this.actions(
        button(offer.installed ? "Remove them" : "Leave my SSH config alone", { id: "welcome-ssh-skip", class: "btn", disabled: this.busy }, () =>
          add(false),
        ),
        button(offer.installed ? "Keep them" : "Add these lines", { id: "welcome-ssh-add", class: "btn btn-primary", disabled: this.busy }, () =>
          add(true),
        ),
      ),
    ].filter((e): e is HTMLElement => e !== null);
  }

  private loginStep(): HTMLElement[] {
    const box = el("input", { type: "checkbox", id: "welcome-start-at-login", checked: this.startAtLogin });
    box.addEventListener("change", () => (this.startAtLogin = box.checked));
    const finish = () =>
      void this.answer({ step: "finish", start_at_login: this.startAtLogin }, () => this.events.done());
    return [
      el("h2", { id: "welcome-title", class: "welcome-title", tabindex: "-1" }, "Start Tether at login?"),
      el(
        "div",
        { class: "field field-check" },
        box,
        el(
          "div",
          {},
          el("label", { for: box.id }, "Start Tether when I log in"),
          el(
            "p",
            { class: "hint", "data-field": "login-hint" },
            this.view.profile_given_by === null
              ? "On by default: Tether lives in the tray and keeps your certificate fresh, so it is ready whenever you open a terminal."
              : `Off by default this time: Tether was started with ${this.view.profile_given_by}, which a start at login would not have, so it would serve another platform.`,
          ),
        ),
      ),
      this.actions(button("Finish", { id: "welcome-finish", class: "btn btn-primary", disabled: this.busy }, finish)),
    ];
  }

  private restartingStep(): HTMLElement[] {
    const title = this.view.platforms.find((p) => p.name === this.chosenPlatform)?.title ?? this.chosenPlatform;
    return [
      el("h2", { id: "welcome-title", class: "welcome-title", tabindex: "-1" }, `Switching to ${title}`),
      el(
        "p",
        { class: "signin-progress", role: "status" },
        el("span", { class: "spinner", "aria-hidden": "true" }),
        `Tether restarts to serve ${title}, then goes on with signing in.`,
      ),
    ];
  }

  private actions(...buttons: HTMLElement[]): HTMLElement {
    return el("div", { class: "welcome-actions" }, ...buttons);
  }

  private render(): void {
    let body: HTMLElement[];
    switch (this.step) {
      case "platform":
        body = this.platformStep();
        break;
      case "sign-in":
        body = this.signInStep();
        break;
      case "ssh-config":
        body = this.sshConfigStep();
        break;
      case "login":
        body = this.loginStep();
        break;
      case "restarting":
        body = this.restartingStep();
        break;
    }
    const steps = this.steps();
    const index = steps.indexOf(this.step);
    this.element.replaceChildren(
      el(
        "div",
        { class: "welcome-card", "data-step": this.step },
        index >= 0 ? el("p", { class: "welcome-progress muted small", "data-field": "progress" }, `Step ${index + 1} of ${steps.length}`) : null,
        ...body,
        this.error ? el("p", { class: "alert", role: "alert" }, this.error) : null,
      ),
    );
  }
}
