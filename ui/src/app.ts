// The app shell: top bar with the account state and the tabs, the account strip, the current
// view, the error banner, toasts and the details panel; wired to the backend's events.
import type { Account, AppRef, Backend, OpenedView, WelcomeView } from "./backend/types";
import type { Context, ViewName } from "./context";
import { button, el, isTyping } from "./dom";
import { describeError } from "./errors";
import { accountStrip, type AccountStrip } from "./views/account";
import { DetailsPanel } from "./views/details";
import { EnvironmentsView } from "./views/environments";
import { SettingsPage } from "./views/settings";
import { ShellInfo } from "./views/shell";
import { SignInCard } from "./views/signin";
import { TunnelsView } from "./views/tunnels";
import { Welcome } from "./views/welcome";

export const TOAST_MS = 2500;
/** How often the certificate's time left is re-read. */
export const TICK_MS = 30_000;

const TABS: Array<{ view: ViewName; label: string }> = [
  { view: "environments", label: "Environments" },
  { view: "tunnels", label: "Tunnels" },
  { view: "settings", label: "Settings" },
];

const SESSION_LABELS: Record<string, { text: string; cls: string }> = {
  active: { text: "Signed in", cls: "badge badge-ok" },
  needs_sign_in: { text: "Sign-in needed", cls: "badge badge-warn" },
  signed_out: { text: "Signed out", cls: "badge badge-off" },
};

export class App {
  readonly context: Context;
  private view: ViewName = "environments";
  private account: Account | null = null;
  /** Milliseconds to add to Date.now() for the app's clock (Account.now). */
  private skew = 0;
  private readonly state: HTMLElement;
  private readonly tabs = new Map<ViewName, HTMLButtonElement>();
  private readonly tunnelCount: HTMLElement;
  private readonly accountSlot: HTMLElement;
  private readonly banner: HTMLElement;
  private readonly host: HTMLElement;
  private readonly toasts: HTMLElement;
  private strip: AccountStrip | null = null;
  private signIn: SignInCard | null = null;
  private details: DetailsPanel | null = null;
  readonly environments: EnvironmentsView;
  readonly tunnels: TunnelsView;
  readonly settings: SettingsPage;
  private readonly shell: ShellInfo;
  /** The window's parts, put back after the first-run welcome. */
  private readonly layout: HTMLElement[];
  private welcome: Welcome | null = null;
  private cleanups: Array<() => void> = [];
  private destroyed = false;

  constructor(
    private root: HTMLElement,
    private backend: Backend,
  ) {
    this.context = {
      backend,
      toast: (m) => this.toast(m),
      showError: (e) => this.showError(e),
      clearError: () => this.clearError(),
      copy: (text, label, secret) => this.copy(text, label, secret),
      navigate: (v) => this.navigate(v),
      showOpened: (o) => this.showOpened(o),
      openDetails: (app, from) => this.openDetails(app, from),
    };
    this.state = el("span", { id: "account-state", class: "badge badge-off" }, "…");
    this.tunnelCount = el("span", { class: "count", hidden: true });
    const nav = el("nav", { class: "tabs", "aria-label": "Views" });
    for (const { view, label } of TABS) {
      const tab = button(view === "tunnels" ? [label, this.tunnelCount] : label, { id: `nav-${view}`, class: "tab" }, () => this.navigate(view));
      this.tabs.set(view, tab);
      nav.append(tab);
    }
    this.accountSlot = el("div", { class: "account-slot" });
    this.banner = el("div", { class: "banner", hidden: true });
    this.host = el("div", { class: "view-host" });
    this.toasts = el("div", { class: "toasts" });
    this.environments = new EnvironmentsView(this.context);
    this.tunnels = new TunnelsView(this.context);
    this.tunnels.onCount = (n) => this.setTunnelCount(n);
    this.settings = new SettingsPage(this.context);
    this.shell = new ShellInfo(backend, (e) => this.showError(e));
    this.layout = [
      el(
        "header",
        { class: "topbar" },
        el(
          "div",
          { class: "brand" },
          el("h1", { class: "brand-name" }, "Tether"),
          this.state,
          // The quick switcher (views/switcher.ts), also on its global shortcut.
          button("Go to app…", { id: "open-switcher", class: "btn btn-small brand-switcher", title: "Quick switcher: find an app and open a terminal, tunnels or a SQL shell" }, () =>
            void this.backend.openSwitcher().catch((e) => this.showError(e)),
          ),
        ),
        nav,
      ),
      this.shell.notice,
      this.accountSlot,
      this.banner,
      this.host,
      this.shell.footer,
      this.toasts,
    ];
    root.replaceChildren(...this.layout);
  }

  /** Reads the account, subscribes to the shell's events and shows the first view. */
  async start(): Promise<void> {
    const onKey = (e: KeyboardEvent) => this.onKey(e);
    document.addEventListener("keydown", onKey);
    this.cleanups.push(() => document.removeEventListener("keydown", onKey));
    const tick = setInterval(() => this.strip?.tick(this.now()), TICK_MS);
    this.cleanups.push(() => clearInterval(tick));
    const subscriptions = await Promise.allSettled([
      this.backend.onChanged(() => void this.onChanged()),
      this.backend.onNavigate((v) => this.onNavigate(v)),
    ]);
    for (const s of subscriptions) {
      if (s.status === "fulfilled") {
        if (this.destroyed) s.value();
        else this.cleanups.push(s.value);
      }
    }
    const [welcome] = await Promise.all([this.firstRun(), this.refreshAccount(), this.shell.refresh()]);
    if (welcome && this.account) {
      this.showWelcome(welcome, this.account);
    } else {
      this.show();
      void this.tunnels.refresh();
    }
    // A window opened from the tray says where to start in its address (`#settings`).
    const start = decodeURIComponent(location.hash.replace(/^#/, ""));
    if (start) this.onNavigate(start);
  }

  /** The first-run welcome, when it is under way. */
  private async firstRun(): Promise<WelcomeView | null> {
    try {
      const welcome = await this.backend.welcome();
      return welcome.under_way ? welcome : null;
    } catch (e) {
      this.showError(e);
      return null;
    }
  }

  /** The welcome takes the window until its last step; then the window is as always. */
  private showWelcome(view: WelcomeView, account: Account): void {
    this.welcome = new Welcome(this.context, view, account, {
      signedIn: (a) => this.setAccount(a),
      done: () => {
        this.welcome = null;
        this.root.replaceChildren(...this.layout);
        this.show();
        void this.tunnels.refresh();
      },
    });
    this.root.replaceChildren(this.shell.notice, this.banner, this.welcome.element, this.toasts);
  }

  destroy(): void {
    this.destroyed = true;
    this.tunnels.hide();
    this.details?.close();
    for (const c of this.cleanups.splice(0)) c();
  }

  /** The app's clock, Unix seconds. */
  now(): number {
    return Math.floor((Date.now() + this.skew) / 1000);
  }

  get currentView(): ViewName {
    return this.view;
  }

  navigate(view: ViewName): void {
    if (this.view === "tunnels" && view !== "tunnels") this.tunnels.hide();
    if (this.view !== view) this.clearError();
    this.view = view;
    this.show();
  }

  private signedIn(): boolean {
    return this.account?.session === "active";
  }

  private show(): void {
    for (const [name, tab] of this.tabs) {
      if (name === this.view) tab.setAttribute("aria-current", "page");
      else tab.removeAttribute("aria-current");
    }
    let content: HTMLElement;
    switch (this.view) {
      case "environments":
        if (this.signedIn() || !this.account) {
          content = this.environments.element;
          if (this.account) this.environments.show();
        } else {
          content = this.signInCard(this.account).element;
        }
        break;
      case "tunnels":
        content = this.tunnels.element;
        this.tunnels.show();
        break;
      case "settings":
        content = this.settings.element;
        void this.settings.show();
        break;
    }
    if (this.host.firstElementChild !== content) this.host.replaceChildren(content);
  }

  private signInCard(account: Account): SignInCard {
    if (!this.signIn) this.signIn = new SignInCard(this.context, account, (a) => this.setAccount(a));
    else this.signIn.update(account);
    return this.signIn;
  }

  async refreshAccount(): Promise<void> {
    try {
      this.setAccount(await this.backend.account());
    } catch (e) {
      this.showError(e);
    }
  }

  private setAccount(account: Account): void {
    const wasSignedIn = this.signedIn();
    this.account = account;
    this.welcome?.setAccount(account);
    this.skew = account.now * 1000 - Date.now();
    const label = SESSION_LABELS[account.session] ?? SESSION_LABELS.signed_out;
    this.tunnels.setReopenable(account.session === "active" ? account.reopenable_tunnels : 0);
    this.state.textContent = label.text;
    this.state.className = label.cls;
    const focused = document.activeElement?.id === "sign-out";
    if (this.signedIn()) {
      this.strip = accountStrip(account, this.now(), () => void this.signOut());
      this.accountSlot.replaceChildren(this.strip.element);
      if (focused) this.strip.element.querySelector<HTMLElement>("#sign-out")?.focus();
      this.signIn = null;
    } else {
      this.strip = null;
      this.accountSlot.replaceChildren();
      if (wasSignedIn) this.environments.reset();
    }
    if (this.view === "environments") this.show();
  }

  private async signOut(): Promise<void> {
    try {
      this.setAccount(await this.backend.signOut());
      this.signIn?.focus();
    } catch (e) {
      this.showError(e);
    }
  }

  private async onChanged(): Promise<void> {
    await Promise.all([this.refreshAccount(), this.tunnels.refresh(), this.shell.refresh()]);
  }

  /** Where the tray asks the window to go: a view, `account`, or `details:project/env/app`. */
  onNavigate(view: string): void {
    // The tray could not start a sign-in, or could not keep one: the window does it.
    const signIn = view === "sign-in" || view === "sign-in-mfa" || view === "sign-in-held";
    if (this.welcome) {
      if (signIn) this.welcome.signInAsAsked(view);
      return;
    }
    if (signIn) {
      this.navigate("environments");
      if (this.account && !this.signedIn()) {
        const card = this.signInCard(this.account);
        if (view === "sign-in-held") card.askWhereToKeep();
        else card.start({ mfa: view === "sign-in-mfa", method: "window" });
      }
      return;
    }
    const details = /^details:([^/]+)\/([^/]+)\/([^/]+)$/.exec(view);
    if (details) {
      this.navigate("environments");
      this.openDetails({ project: details[1], environment: details[2], app: details[3] });
      return;
    }
    switch (view) {
      case "environments":
      case "tunnels":
      case "settings":
        this.navigate(view);
        break;
      case "account":
        this.navigate("environments");
        (this.root.querySelector<HTMLElement>("#sign-out") ?? this.root.querySelector<HTMLElement>("#sign-in"))?.focus();
        break;
    }
  }

  private onKey(e: KeyboardEvent): void {
    if (e.key === "Escape") {
      if (this.details) {
        e.preventDefault();
        this.details.close();
      }
      return;
    }
    if (this.welcome) return;
    if (e.key === "/" && !e.ctrlKey && !e.metaKey && !e.altKey && !isTyping(e.target) && !this.details) {
      if (!this.signedIn()) return;
      e.preventDefault();
      if (this.view !== "environments") this.navigate("environments");
      this.environments.focusSearch();
    }
  }

  private setTunnelCount(n: number): void {
    this.tunnelCount.hidden = n === 0;
    this.tunnelCount.textContent = n === 0 ? "" : String(n);
    this.tabs.get("tunnels")?.setAttribute("aria-label", n === 0 ? "Tunnels" : `Tunnels (${n} open)`);
  }

  /** The banner's `[role=alert]` exists only while there is an error, so it is announced. */
  showError(e: unknown): void {
    this.banner.replaceChildren(
      el("p", { id: "error", class: "banner-text", role: "alert" }, describeError(e)),
      button("×", { class: "icon-btn", "aria-label": "Dismiss the error", "data-action": "dismiss" }, () => this.clearError()),
    );
    this.banner.hidden = false;
  }

  clearError(): void {
    const hadFocus = this.banner.contains(document.activeElement);
    this.banner.replaceChildren();
    this.banner.hidden = true;
    if (hadFocus) this.tabs.get(this.view)?.focus();
  }

  toast(message: string): void {
    const t = el("div", { class: "toast", role: "status" }, message);
    this.toasts.append(t);
    setTimeout(() => t.remove(), TOAST_MS);
  }

  async copy(text: string, label: string, secret = false): Promise<void> {
    try {
      await this.backend.copy(text, label, secret);
      this.toast(`Copied ${label}`);
    } catch (e) {
      this.showError(e);
    }
  }

  private showOpened(opened: OpenedView): void {
    this.navigate("tunnels");
    this.tunnels.setFailures(opened.failed);
    void this.tunnels.refresh();
  }

  private openDetails(app: AppRef, from?: HTMLElement): void {
    this.details?.close();
    // Everything behind the modal dialog is inert while it is open.
    const behind = [...this.root.children].filter((c) => !c.classList.contains("toasts"));
    const panel = new DetailsPanel(this.context, app, from, () => {
      for (const c of behind) c.removeAttribute("inert");
      if (this.details === panel) this.details = null;
    });
    this.details = panel;
    for (const c of behind) c.setAttribute("inert", "");
    this.root.append(panel.element);
    void panel.open();
  }
}

/** Builds the app into `root` and starts it. */
export async function startApp(root: HTMLElement, backend: Backend): Promise<App> {
  const app = new App(root, backend);
  await app.start();
  return app;
}
