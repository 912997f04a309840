// The settings form: each input is named as the DesktopSettings field it edits.
import type { DesktopSettings, SettingsView } from "../backend/types";
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

export class SettingsPage {
  readonly element: HTMLElement;
  private readonly form: HTMLFormElement;
  private readonly message: HTMLElement;
  private view: SettingsView | null = null;
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
    this.element = el(
      "section",
      { class: "view view-settings", id: "view-settings", "aria-label": "Settings" },
      el("div", { class: "toolbar" }, el("h2", { class: "view-title" }, "Settings")),
      this.form,
    );
    this.form.append(el("p", { class: "loading" }, el("span", { class: "spinner", "aria-hidden": "true" }), "Loading settings…"));
  }

  /** Loads the settings the first time the view is shown. */
  show(): Promise<void> {
    if (this.view || this.loading) return this.loading ?? Promise.resolve();
    this.loading = (async () => {
      try {
        this.render(await this.ctx.backend.settings());
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
      this.message,
      el("div", { class: "form-actions" }, el("button", { type: "submit", id: "save-settings", class: "btn btn-primary" }, "Save")),
    );
    this.input("manage_ssh_config").checked = s.manage_ssh_config;
    this.input("start_at_login").checked = s.start_at_login;
    this.form.setAttribute("aria-busy", "false");
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
      production_unguarded: loaded.production_unguarded,
      switcher_shortcut: loaded.switcher_shortcut,
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
