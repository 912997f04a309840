import { afterEach, describe, expect, it } from "vitest";
import type { DesktopSettings } from "../backend/types";
import { sampleSettings } from "../backend/mock";
import { $, click, mount, settle, type Mounted } from "../test-utils";

let m: Mounted | undefined;
afterEach(() => m?.app.destroy());

async function showSettings(overrides = {}): Promise<HTMLFormElement> {
  m = await mount(overrides);
  await click(m.root, "#nav-settings");
  return $(m.root, "#settings") as HTMLFormElement;
}

function input(form: HTMLFormElement, name: string): HTMLInputElement & HTMLSelectElement {
  return form.elements.namedItem(name) as HTMLInputElement & HTMLSelectElement;
}

function set(form: HTMLFormElement, name: string, value: string | boolean): void {
  const i = input(form, name);
  if (typeof value === "boolean") i.checked = value;
  else i.value = value;
  i.dispatchEvent(new Event("input", { bubbles: true }));
}

describe("settings form", () => {
  it("shows the settings in inputs named as DesktopSettings fields", async () => {
    const form = await showSettings();
    expect(input(form, "terminal").value).toBe("");
    expect(input(form, "terminal").placeholder).toBe("gnome-terminal -- {}");
    expect(input(form, "bind_address").value).toBe("127.0.0.1");
    expect(input(form, "manage_ssh_config").checked).toBe(true);
    expect(input(form, "start_at_login").checked).toBe(false);
    expect(input(form, "inactivity_limit_hours").value).toBe("8");
    expect(input(form, "inactivity_limit_hours").min).toBe("1");
    expect(input(form, "inactivity_limit_hours").max).toBe("720");
    expect(input(form, "profile").value).toBe("platformsh");
    expect([...input(form, "profile").querySelectorAll("option")].map((o) => o.textContent)).toEqual(["Platform.sh", "Upsun"]);
    expect(form.textContent).toContain("Keep Tether's block in ~/.ssh/config so plain ssh, scp, rsync and git work");
    expect(form.textContent).toContain("applies at the next start");
  });

  it("warns, as one types, when tunnels would be reachable from other machines", async () => {
    const form = await showSettings();
    const warning = $(form, "[data-field=bind-warning]");
    expect(warning.hidden).toBe(true);
    set(form, "bind_address", "0.0.0.0");
    expect(warning.hidden).toBe(false);
    expect(warning.textContent).toContain("can be reached from other machines");
    set(form, "bind_address", "127.0.0.1");
    expect(warning.hidden).toBe(true);
  });

  it("saves every field, keeping the pinned and recent apps", async () => {
    const form = await showSettings();
    set(form, "terminal", "kitty -e {}");
    set(form, "bind_address", " 0.0.0.0 ");
    set(form, "manage_ssh_config", false);
    set(form, "start_at_login", true);
    set(form, "inactivity_limit_hours", "24");
    set(form, "profile", "upsun");
    await click(form, "#save-settings");
    const expected: DesktopSettings = {
      terminal: "kitty -e {}",
      bind_address: "0.0.0.0",
      manage_ssh_config: false,
      start_at_login: true,
      inactivity_limit_hours: 24,
      profile: "upsun",
      pinned: ["abc123/main/worker"],
      recent: [],
      welcome_under_way: false,
      production_unguarded: [],
      switcher_shortcut: "Ctrl+Alt+Space",
    };
    expect(m!.backend.callsTo("saveSettings")).toEqual([[expected]]);
    expect($(form, "[role=status]").textContent).toBe("Saved");
    expect(form.querySelector("[role=alert]")).toBeNull();
  });

  it.each([
    ["bind_address", "localhost", "bind address"],
    ["inactivity_limit_hours", "0", "between 1 and 720"],
    ["inactivity_limit_hours", "721", "between 1 and 720"],
    ["inactivity_limit_hours", "", "between 1 and 720"],
  ])("refuses %s = %j before asking Rust", async (name, value, words) => {
    const form = await showSettings();
    set(form, name, value);
    await click(form, "#save-settings");
    expect(m!.backend.callsTo("saveSettings")).toEqual([]);
    expect($(form, "[role=alert]").textContent).toContain(words);
    expect(input(form, name).getAttribute("aria-invalid")).toBe("true");
    expect(document.activeElement).toBe(input(form, name));
  });

  it("shows why Rust refused", async () => {
    const form = await showSettings({
      saveSettings: () => Promise.reject({ code: "usage", message: "cannot save the settings to /x: read-only" }),
    });
    await click(form, "#save-settings");
    expect($(form, "[role=alert]").textContent).toBe("That did not work. Cannot save the settings to /x: read-only.");
    expect(form.querySelector("[role=status]")).toBeNull();
  });

  it("submits with Enter (a real form)", async () => {
    const form = await showSettings();
    form.dispatchEvent(new Event("submit", { bubbles: true, cancelable: true }));
    await settle();
    expect(m!.backend.callsTo("saveSettings")).toHaveLength(1);
  });

  it("keeps a profile file that is not among the choices", async () => {
    const view = sampleSettings();
    view.settings.profile = "/home/ada/my-platform.yaml";
    const form = await showSettings({ settings: async () => view });
    expect(input(form, "profile").value).toBe("/home/ada/my-platform.yaml");
  });

  it("asks before tunnels listen on every address, and saves only after a yes", async () => {
    const form = await showSettings({
      saveSettings: async (settings: DesktopSettings, confirmed?: boolean) => {
        if (settings.bind_address === "0.0.0.0" && !confirmed) {
          throw { code: "confirm", message: "Listen on every address (0.0.0.0)? Every machine on every network could reach your tunnels." };
        }
        return { ...sampleSettings(), settings };
      },
    });
    set(form, "bind_address", "0.0.0.0");
    await click(form, "#save-settings");
    const dialog = $(form, "#confirm");
    expect(dialog.getAttribute("role")).toBe("alertdialog");
    expect(dialog.textContent).toContain("Every machine on every network could reach your tunnels");
    expect(form.querySelector("[role=status]")).toBeNull();
    expect(document.activeElement?.id).toBe("confirm-no");
    // No: nothing saved, the question goes.
    await click(form, "#confirm-no");
    expect(form.querySelector("#confirm")).toBeNull();
    expect(form.querySelector("[role=status]")).toBeNull();
    // Yes: saved, with the answer.
    await click(form, "#save-settings");
    await click(form, "#confirm-yes");
    const calls = m!.backend.callsTo("saveSettings");
    expect(calls).toHaveLength(3);
    expect(calls[2][1]).toBe(true);
    expect((calls[2][0] as DesktopSettings).bind_address).toBe("0.0.0.0");
    expect($(form, "[role=status]").textContent).toBe("Saved");
  });

  it("moves the sign-in to a private file when the token store changes, then saves", async () => {
    const form = await showSettings();
    const store = input(form, "token_store");
    expect(store.value).toBe("keyring");
    expect(store.disabled).toBe(false);
    expect(form.textContent).toContain("Now: the OS keyring.");
    set(form, "token_store", "file");
    await click(form, "#save-settings");
    expect(m!.backend.callsTo("useTokenStore")).toEqual([[true]]);
    expect(m!.backend.callsTo("saveSettings")).toHaveLength(1);
    const order = m!.backend.calls.map((c) => c.method).filter((n) => n === "useTokenStore" || n === "saveSettings");
    expect(order).toEqual(["useTokenStore", "saveSettings"]);
  });

  it("shows a token store the environment set, without offering to change it", async () => {
    const view = sampleSettings();
    view.token_store = { in_file: true, location: "the file /home/ada/.local/share/tether/sessions/platformsh/tokens.json", choosable: false };
    const form = await showSettings({ settings: async () => view });
    expect(input(form, "token_store").value).toBe("file");
    expect(input(form, "token_store").disabled).toBe(true);
    expect(form.textContent).toContain("as set when Tether started");
    await click(form, "#save-settings");
    expect(m!.backend.callsTo("useTokenStore")).toEqual([]);
  });

  it("shows a failure to read the settings", async () => {
    const form = await showSettings({ settings: () => Promise.reject({ code: "other", message: "unreadable" }) });
    expect($(form, "[role=alert]").textContent).toBe("Something went wrong. Unreadable.");
  });
});

describe("settings: quick switcher, production, checks", () => {
  it("saves the switcher's shortcut and says it works, or why not, after the save", async () => {
    let status: import("../backend/types").ShortcutView = { shortcut: "Ctrl+Alt+Space", registered: true, problem: null, wayland: false };
    const form = await showSettings({ switcherShortcut: async () => status });
    expect(input(form, "switcher_shortcut").value).toBe("Ctrl+Alt+Space");
    expect($(form, "#shortcut-status").textContent).toBe("Press Ctrl+Alt+Space anywhere to open the switcher.");
    status = {
      shortcut: "Super+K",
      registered: false,
      problem: "Super+K is held by another program: choose another shortcut here, or free it in that program.",
      wayland: false,
    };
    set(form, "switcher_shortcut", " Super+K ");
    await click(form, "#save-settings");
    expect((m!.backend.callsTo("saveSettings")[0][0] as DesktopSettings).switcher_shortcut).toBe("Super+K");
    expect(m!.backend.callsTo("switcherShortcut")).toHaveLength(2);
    expect($(form, "#shortcut-status").textContent).toContain("held by another program");
  });

  it("points Wayland users to tether-desktop --switcher", async () => {
    const form = await showSettings({
      switcherShortcut: async () => ({ shortcut: "Ctrl+Alt+Space", registered: true, problem: null, wayland: true }),
    });
    const said = $(form, "#shortcut-status").textContent!;
    expect(said).toContain("On Wayland, global shortcuts may not reach Tether");
    expect(said).toContain("tether-desktop --switcher");
  });

  it("turns the question before production off and on per project", async () => {
    const view = sampleSettings();
    view.settings.production_unguarded = ["gone1"];
    const form = await showSettings({
      settings: async () => view,
      productionProjects: async () => [
        { id: "abc123", title: "Shop", environments: ["Main [PRODUCTION]"], guarded: true },
        { id: "def456", title: "Blog", environments: ["Live [PRODUCTION]"], guarded: true },
      ],
    });
    const shop = $(form, "#guard-abc123") as HTMLInputElement;
    expect(shop.checked).toBe(true);
    expect($(form, "#production-settings").textContent).toContain("Asks before entering Main [PRODUCTION]");
    shop.checked = false;
    await click(form, "#save-settings");
    // A project not listed now (gone1) keeps its choice.
    expect((m!.backend.callsTo("saveSettings")[0][0] as DesktopSettings).production_unguarded).toEqual(["gone1", "abc123"]);
    ($(form, "#guard-abc123") as HTMLInputElement).checked = true;
    await click(form, "#save-settings");
    expect((m!.backend.callsTo("saveSettings")[1][0] as DesktopSettings).production_unguarded).toEqual(["gone1"]);
  });

  it("says to sign in when the projects cannot be listed", async () => {
    const form = await showSettings({ productionProjects: () => Promise.reject({ code: "sign_in", message: "not signed in" }) });
    expect($(form, "#production-settings").textContent).toContain("Sign in to list your projects.");
  });

  it("shows each check's status, meaning and fix, and runs them again on request", async () => {
    await showSettings();
    const checks = $(m!.root, "#checks");
    const rows = [...checks.querySelectorAll<HTMLElement>(".check")];
    // Problems first, then warnings, then what is fine.
    expect(rows.map((r) => [r.dataset.check, r.dataset.status])).toEqual([
      ["ssh_config_block", "problem"],
      ["tray_host", "warning"],
      ["openssh_version", "ok"],
    ]);
    expect(rows[2].textContent).toContain("OK");
    expect(rows[1].textContent).toContain("Warning");
    expect(rows[0].textContent).toContain("Problem");
    expect(rows[0].textContent).toContain("The earlier Host * shadows it");
    expect(rows[0].querySelector(".check-fix")!.textContent).toContain("Fix: Move Tether's block to the top");
    expect(rows[0].querySelector("code")!.textContent).toBe("tether config:ssh --write");
    expect(rows[2].querySelector(".check-fix")).toBeNull();
    expect($(checks, "#checks-summary").textContent).toBe("1 problem, 1 warning: see what fixes them below.");
    rows[0].querySelector<HTMLButtonElement>(".btn-link")!.click();
    await settle();
    expect(m!.backend.callsTo("copy")).toEqual([["tether config:ssh --write", "command", false]]);
    await click(checks, "#run-checks");
    expect(m!.backend.callsTo("doctor")).toHaveLength(2);
  });

  it("says when the checks could not run", async () => {
    await showSettings({ doctor: () => Promise.reject({ code: "other", message: "the agent is gone" }) });
    expect($(m!.root, "#checks [role=alert]").textContent).toContain("The agent is gone");
    expect(($(m!.root, "#run-checks") as HTMLButtonElement).disabled).toBe(false);
  });
});
