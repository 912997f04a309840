// The settings form: each input is named as the DesktopSettings field it edits.
import type { Check, DesktopSettings, ProductionProject, Report, SettingsView, ShortcutView, Status } from "../backend/types";
import type { Context } from "../context";
import { button, el } from "../dom";
import { describeError, isBackendError } from "../errors";
import { bindWarning, MAX_HOURS, MIN_HOURS, validateSettings } from "../validate";

function field(label: string, control: HTMLElement, hint?: string, hintId?: string): HTMLElement {
  return el(
    "div",
    { class: "field" },
    el("label", { for: control.id }, label),
    control,
    hint ? el("p", { class: "hint", id: hintId ?? `${control.id}-hint` }, hint) : null,
  );
}

function checkbox(name: string, label: string, hint?: string): HTMLElement {
  const input = el("input", { type: "checkbox", id: `setting-${name}`, name, "aria-describedby": hint ? `setting-${name}-hint` : undefined });
  return el(
    "div",
    { class: "field field-check" },
    input,
    el("div", {}, el("label", { for: input.id }, label), hint ? el("p", { class: "hint", id: `setting-${name}-hint` }, hint) : null),
  );
}

const RANK: Record<Status, number> = { ok: 0, warning: 1, problem: 2 };
const STATUS: Record<Status, { text: string; cls: string }> = {
  ok: { text: "OK", cls: "badge badge-ok" },
  warning: { text: "Warning", cls: "badge badge-warn" },
  problem: { text: "Problem", cls: "badge badge-bad" },
};

export class SettingsPage {
  readonly element: HTMLElement;
  private readonly form: HTMLFormElement;
  private readonly message: HTMLElement;
  private view: SettingsView | null = null;
  /** The projects with a production environment, for the question before entering it; null
   * when they could not be listed (signed out). */
  private production: ProductionProject[] | null = null;
  private readonly shortcutStatus: HTMLElement;
  private readonly checks: HTMLElement;
  private readonly checksBody: HTMLElement;
  private readonly checksButton: HTMLButtonElement;
  private checking: Promise<void> | null = null;
  private loading: Promise<void> | null = null;
  private saving = false;

  constructor(private ctx: Context) {
    this.form = el("form", { id: "settings", class: "settings", novalidate: true, "aria-busy": "true" });
    this.form.addEventListener("submit", (e) => {
      e.preventDefault();
      void this.save();
    });
    this.form.addEventListener("input", () => this.clearStatus());
    this.message = el("div", { class: "form-message" });
    this.shortcutStatus = el("p", { class: "hint shortcut-status", id: "shortcut-status", "aria-live": "polite", hidden: true });
    this.checksButton = button("Run checks again", { id: "run-checks", class: "btn btn-small" }, () => void this.runChecks());
    this.checksBody = el("div", { id: "checks-body", "aria-live": "polite" });
    this.checks = el(
      "section",
      { class: "settings-section", id: "checks", "aria-labelledby": "checks-title" },
      el("div", { class: "checks-head" }, el("h3", { class: "settings-section-title", id: "checks-title" }, "Checks"), this.checksButton),
      el("p", { class: "hint" }, "What tether doctor checks: OpenSSH, ~/.ssh/config, the keyring, the clock, the agent, the tray, the tunnel ports and the ssh hook."),
      this.checksBody,
    );
    this.element = el(
      "section",
      { class: "view view-settings", id: "view-settings", "aria-label": "Settings" },
      el("div", { class: "toolbar" }, el("h2", { class: "view-title" }, "Settings")),
      this.form,
      this.checks,
    );
    this.form.append(el("p", { class: "loading" }, el("span", { class: "spinner", "aria-hidden": "true" }), "Loading settings…"));
  }

  /** Loads the settings (and runs the checks) the first time the view is shown. */
  show(): Promise<void> {
    if (this.view || this.loading) return this.loading ?? Promise.resolve();
    void this.runChecks();
    this.loading = (async () => {
      try {
        const [settings, production] = await Promise.all([
          this.ctx.backend.settings(),
          this.ctx.backend.productionProjects().catch(() => null),
        ]);
        this.production = production;
        this.render(settings);
        void this.refreshShortcut();
      } catch (e) {
        this.form.replaceChildren(el("p", { class: "alert", role: "alert" }, describeError(e)));
      } finally {
        this.loading = null;
      }
    })();
    return this.loading;
  }

  private input(name: keyof DesktopSettings): HTMLInputElement & HTMLSelectElement {
    return this.form.elements.namedItem(name) as HTMLInputElement & HTMLSelectElement;
  }

  private render(view: SettingsView): void {
    this.view = view;
    const s = view.settings;
    const terminal = el("input", {
      type: "text",
      id: "setting-terminal",
      name: "terminal",
      class: "input mono",
      placeholder: view.detected_terminal,
      autocomplete: "off",
      spellcheck: "false",
      "aria-describedby": "setting-terminal-hint",
    });
    terminal.value = s.terminal;
    const bind = el("input", {
      type: "text",
      id: "setting-bind_address",
      name: "bind_address",
      class: "input mono",
      inputmode: "decimal",
      autocomplete: "off",
      spellcheck: "false",
      required: true,
      "aria-describedby": "setting-bind_address-hint",
    });
    bind.value = s.bind_address;
    const warning = el("p", { class: "hint warning", "data-field": "bind-warning", role: "note" });
    const showWarning = () => {
      const w = bindWarning(bind.value);
      warning.hidden = w === null;
      warning.textContent = w ?? "";
    };
    bind.addEventListener("input", showWarning);
    showWarning();
    const hours = el("input", {
      type: "number",
      id: "setting-inactivity_limit_hours",
      name: "inactivity_limit_hours",
      class: "input input-narrow",
      min: MIN_HOURS,
      max: MAX_HOURS,
      step: 1,
      required: true,
      "aria-describedby": "setting-inactivity_limit_hours-hint",
    });
    hours.value = String(s.inactivity_limit_hours);
    const current = s.profile || view.active_profile;
    const choices = [...view.profiles];
    if (current && !choices.some((p) => p.name === current)) choices.push({ name: current, title: current });
    const profile = el(
      "select",
      { id: "setting-profile", name: "profile", class: "input", "aria-describedby": "setting-profile-hint" },
      ...choices.map((p) => el("option", { value: p.name, selected: p.name === current }, p.title || p.name)),
    );
    profile.value = current;
    const store = view.token_store;
    const tokenStore = el(
      "select",
      {
        id: "setting-token_store",
        name: "token_store",
        class: "input",
        disabled: !store.choosable,
        "aria-describedby": "setting-token_store-hint",
      },
      el("option", { value: "keyring", selected: !store.in_file }, "Your desktop's keyring"),
      el("option", { value: "file", selected: store.in_file }, "A private file, readable only by you"),
    );
    tokenStore.value = store.in_file ? "file" : "keyring";

    this.form.replaceChildren(
      field("Terminal", terminal, `The command that opens a terminal, {} standing for the ssh command. Empty: ${view.detected_terminal || "detect one"}.`),
      field("Bind address", bind, "The local address tunnels listen on: 127.0.0.1 keeps them to this machine."),
      warning,
      checkbox("manage_ssh_config", "Keep Tether's block in ~/.ssh/config so plain ssh, scp, rsync and git work"),
      checkbox("start_at_login", "Start Tether at login"),
      field("Sign out after inactivity (hours)", hours, `Between ${MIN_HOURS} and ${MAX_HOURS} hours without use; applies at the next start.`),
      field("Platform", profile, "The platform Tether serves; a change applies at the next start."),
      field(
        "Keep the sign-in in",
        tokenStore,
        store.choosable
          ? `Now: ${store.location}. A change moves the sign-in there. The file is for machines whose keyring is missing or locked.`
          : `Now: ${store.location}, as set when Tether started.`,
      ),
      this.switcherSection(s.switcher_shortcut),
      this.guardsSection(s),
      this.message,
      el("div", { class: "form-actions" }, el("button", { type: "submit", id: "save-settings", class: "btn btn-primary" }, "Save")),
    );
    this.input("manage_ssh_config").checked = s.manage_ssh_config;
    this.input("start_at_login").checked = s.start_at_login;
    this.form.setAttribute("aria-busy", "false");
  }

  /** Runs `tether doctor`'s checks and shows each one's status, meaning and fix. */
  runChecks(): Promise<void> {
    if (this.checking) return this.checking;
    this.checksButton.disabled = true;
    this.checks.setAttribute("aria-busy", "true");
    this.checksBody.replaceChildren(el("p", { class: "loading" }, el("span", { class: "spinner", "aria-hidden": "true" }), "Running checks…"));
    this.checking = (async () => {
      try {
        this.showReport(await this.ctx.backend.doctor());
      } catch (e) {
        this.checksBody.replaceChildren(el("p", { class: "alert", role: "alert" }, describeError(e)));
      } finally {
        this.checking = null;
        this.checksButton.disabled = false;
        this.checks.setAttribute("aria-busy", "false");
      }
    })();
    return this.checking;
  }

  private showReport(report: Report): void {
    const worst = report.checks.reduce<Status>((w, c) => (RANK[c.status] > RANK[w] ? c.status : w), "ok");
    const counts = (["problem", "warning"] as Status[])
      .map((st) => [st, report.checks.filter((c) => c.status === st).length] as const)
      .filter(([, n]) => n > 0)
      .map(([st, n]) => `${n} ${st === "problem" ? (n === 1 ? "problem" : "problems") : n === 1 ? "warning" : "warnings"}`);
    const flagged = report.checks.filter((c) => c.status !== "ok").length;
    const summary =
      flagged === 0 ? "Everything checked is fine." : `${counts.join(", ")}: see what fixes ${flagged === 1 ? "it" : "them"} below.`;
    this.checksBody.replaceChildren(
      el("p", { class: `checks-summary status-${worst}`, id: "checks-summary" }, summary),
      // What needs doing first; the report's order within each status.
      el(
        "ul",
        { class: "checks", id: "check-list" },
        ...report.checks
          .map((c, i) => ({ c, i }))
          .sort((a, b) => RANK[b.c.status] - RANK[a.c.status] || a.i - b.i)
          .map(({ c }) => this.checkRow(c)),
      ),
      el(
        "p",
        { class: "hint" },
        `Tether ${report.versions.tether}; ${report.versions.openssh ?? "no OpenSSH found"}; ${report.versions.os}.`,
      ),
    );
  }

  private checkRow(c: Check): HTMLElement {
    const badge = STATUS[c.status];
    const fix = c.fix
      ? el(
          "p",
          { class: "check-fix" },
          `Fix: ${c.fix.text}`,
          c.fix.command ? ": " : null,
          c.fix.command ? el("code", {}, c.fix.command) : null,
          c.fix.command
            ? button("Copy", { class: "btn-link", "aria-label": `Copy ${c.fix.command}` }, () => void this.ctx.copy(c.fix!.command!, "command"))
            : null,
        )
      : null;
    return el(
      "li",
      { class: "check", "data-check": c.id, "data-status": c.status },
      el("span", { class: badge.cls }, badge.text),
      el("span", { class: "check-title" }, c.title),
      el("p", { class: "check-detail" }, c.detail),
      fix,
    );
  }

  /** The quick switcher's shortcut, and how it stands (read again after each save). */
  private switcherSection(shortcut: string): HTMLElement {
    const input = el("input", {
      type: "text",
      id: "setting-switcher_shortcut",
      name: "switcher_shortcut",
      class: "input mono",
      placeholder: "none",
      autocomplete: "off",
      spellcheck: "false",
      "aria-describedby": "setting-switcher_shortcut-hint shortcut-status",
    });
    input.value = shortcut;
    return el(
      "div",
      { class: "settings-section", id: "switcher-settings" },
      el("h3", { class: "settings-section-title" }, "Quick switcher"),
      field("Shortcut", input),
      el(
        "p",
        { class: "hint", id: "setting-switcher_shortcut-hint" },
        "Opens the switcher from anywhere: modifiers and a key joined by +, such as Ctrl+Alt+Space; empty for none. " +
          "The top bar's Go to app… and the command ",
        el("code", {}, "tether-desktop --switcher"),
        " open it too.",
      ),
      this.shortcutStatus,
    );
  }

  /** Says whether the shortcut works, why not, and what a Wayland desktop needs instead. */
  private showShortcut(view: ShortcutView): void {
    const parts: Array<string | HTMLElement> = [];
    let ok = false;
    if (view.problem) parts.push(view.problem);
    else if (view.registered) {
      parts.push(`Press ${view.shortcut} anywhere to open the switcher.`);
      ok = true;
    } else if (view.shortcut === "") parts.push("No shortcut: open the switcher with the top bar's Go to app… or tether-desktop --switcher.");
    if (view.wayland) {
      parts.push(
        "On Wayland, global shortcuts may not reach Tether: in your desktop's keyboard settings, give the command ",
        el("code", {}, "tether-desktop --switcher"),
        " a shortcut instead.",
      );
    }
    this.shortcutStatus.replaceChildren(...parts.flatMap((p, i) => (i > 0 && typeof p === "string" && typeof parts[i - 1] === "string" ? [" ", p] : [p])));
    this.shortcutStatus.classList.toggle("ok", ok && !view.wayland);
    this.shortcutStatus.classList.toggle("warning", !!view.problem || view.wayland);
    this.shortcutStatus.hidden = parts.length === 0;
  }

  /** Registers the saved shortcut again (if it changed) and shows how it stands. */
  private async refreshShortcut(): Promise<void> {
    try {
      this.showShortcut(await this.ctx.backend.switcherShortcut());
    } catch (e) {
      this.shortcutStatus.textContent = describeError(e);
      this.shortcutStatus.hidden = false;
    }
  }

  /** A switch per project with a production environment: ask before entering it. */
  private guardsSection(s: DesktopSettings): HTMLElement {
    const projects = this.production;
    const list =
      projects === null
        ? el("p", { class: "hint" }, "Sign in to list your projects.")
        : projects.length === 0
          ? el("p", { class: "hint" }, "None of your projects has a production environment.")
          : el(
              "div",
              { class: "guards", id: "guards" },
              ...projects.map((p) => {
                const input = el("input", {
                  type: "checkbox",
                  id: `guard-${p.id}`,
                  "data-project": p.id,
                  "aria-describedby": `guard-${p.id}-hint`,
                });
                input.checked = !s.production_unguarded.includes(p.id);
                return el(
                  "div",
                  { class: "field field-check" },
                  input,
                  el(
                    "div",
                    {},
                    el("label", { for: input.id }, `${p.title} `, el("span", { class: "project-id" }, p.id)),
                    el("p", { class: "hint", id: `guard-${p.id}-hint` }, `Asks before entering ${p.environments.join(", ")}`),
                  ),
                );
              }),
            );
    return el(
      "div",
      { class: "settings-section", id: "production-settings" },
      el("h3", { class: "settings-section-title" }, "Ask before entering production"),
      el(
        "p",
        { class: "hint" },
        "Before a terminal, SQL shell, database dump or tunnel on a production environment, Tether asks first (here and at a terminal, where -y answers). Turn it off per project.",
      ),
      list,
    );
  }

  /** The projects not asked about, from the switches shown (projects not shown kept as loaded). */
  private unguarded(loaded: string[]): string[] {
    const result = [...loaded];
    for (const input of this.form.querySelectorAll<HTMLInputElement>("input[data-project]")) {
      const project = input.dataset.project!;
      const at = result.indexOf(project);
      if (input.checked && at >= 0) result.splice(at, 1);
      if (!input.checked && at < 0) result.push(project);
    }
    return result;
  }

  /** The form's values as DesktopSettings (the lists it does not show kept as loaded). */
  values(): DesktopSettings {
    const loaded = this.view!.settings;
    const hoursText = this.input("inactivity_limit_hours").value.trim();
    return {
      terminal: this.input("terminal").value,
      bind_address: this.input("bind_address").value.trim(),
      manage_ssh_config: this.input("manage_ssh_config").checked,
      start_at_login: this.input("start_at_login").checked,
      inactivity_limit_hours: hoursText === "" ? NaN : Number(hoursText),
      profile: this.input("profile").value,
      pinned: loaded.pinned,
      recent: loaded.recent,
      welcome_under_way: loaded.welcome_under_way,
      production_unguarded: this.unguarded(loaded.production_unguarded),
      switcher_shortcut: this.input("switcher_shortcut").value.trim(),
    };
  }

  private clearStatus(): void {
    if (this.message.querySelector("[role=status]")) this.message.replaceChildren();
  }

  private showProblems(problems: { field?: string; message: string }[]): void {
    for (const input of this.form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
    for (const p of problems) if (p.field) this.input(p.field as keyof DesktopSettings)?.setAttribute("aria-invalid", "true");
    this.message.replaceChildren(
      el("div", { class: "alert", role: "alert" }, ...problems.map((p) => el("p", {}, p.message))),
    );
    const first = problems.find((p) => p.field);
    if (first) this.input(first.field as keyof DesktopSettings)?.focus();
  }

  /** The person's yes to a question the app asked before saving (tunnels on every address). */
  private ask(question: string): void {
    this.message.replaceChildren(
      el(
        "div",
        { class: "confirm", id: "confirm", role: "alertdialog", "aria-labelledby": "confirm-question" },
        el("p", { id: "confirm-question" }, question),
        el(
          "div",
          { class: "confirm-actions" },
          button("Cancel", { id: "confirm-no", class: "btn" }, () => {
            this.message.replaceChildren();
            this.input("bind_address")?.focus();
          }),
          button("Listen on every address", { id: "confirm-yes", class: "btn btn-danger" }, () => void this.save(true)),
        ),
      ),
    );
    this.message.querySelector<HTMLElement>("#confirm-no")?.focus();
  }

  async save(confirmed = false): Promise<void> {
    if (!this.view || this.saving) return;
    const settings = this.values();
    const problems = validateSettings(settings);
    if (problems.length > 0) {
      this.showProblems(problems);
      return;
    }
    const submit = this.form.querySelector<HTMLButtonElement>("#save-settings");
    this.saving = true;
    if (submit) submit.disabled = true;
    try {
      const file = (this.form.elements.namedItem("token_store") as HTMLSelectElement).value === "file";
      if (this.view.token_store.choosable && file !== this.view.token_store.in_file) {
        await this.ctx.backend.useTokenStore(file);
      }
      const saved = confirmed
        ? await this.ctx.backend.saveSettings(settings, true)
        : await this.ctx.backend.saveSettings(settings);
      const focused = document.activeElement?.id;
      this.render(saved);
      this.message.replaceChildren(el("p", { class: "saved", role: "status" }, "Saved"));
      void this.refreshShortcut();
      if (focused) this.form.querySelector<HTMLElement>(`#${focused}`)?.focus();
    } catch (e) {
      if (isBackendError(e) && e.code === "confirm") this.ask(e.message);
      else this.showProblems([{ message: describeError(e) }]);
    } finally {
      this.saving = false;
      const button = this.form.querySelector<HTMLButtonElement>("#save-settings");
      if (button) button.disabled = false;
    }
  }
}
