import { afterEach, describe, expect, it, vi } from "vitest";
import { TOAST_MS } from "./app";
import { $, click, key, mount, settle, type Mounted } from "./test-utils";
import { sampleAccount } from "./backend/mock";

let m: Mounted | undefined;
afterEach(() => m?.app.destroy());

describe("app shell", () => {
  it("has a top bar with the app name, the account state and the tabs", async () => {
    m = await mount();
    expect($(m.root, ".topbar h1").textContent).toBe("Tether");
    expect($(m.root, "#account-state").textContent).toBe("Signed in");
    for (const id of ["#nav-environments", "#nav-tunnels", "#nav-settings"]) {
      expect($(m.root, id).tagName).toBe("BUTTON");
    }
  });

  it("switches views with the tabs, marking the current one", async () => {
    m = await mount();
    await click(m.root, "#nav-settings");
    expect($(m.root, "#nav-settings").getAttribute("aria-current")).toBe("page");
    expect($(m.root, "#nav-environments").hasAttribute("aria-current")).toBe(false);
    expect(m.root.querySelector("#settings")).not.toBeNull();
    expect(m.root.querySelector("#search")).toBeNull();
    await click(m.root, "#nav-environments");
    expect(m.root.querySelector("#search")).not.toBeNull();
    // The catalog is kept, not fetched again.
    expect(m.backend.callsTo("catalog")).toEqual([[false]]);
  });

  it.each([
    ["tunnels", "#nav-tunnels"],
    ["settings", "#nav-settings"],
    ["environments", "#nav-environments"],
  ])("goes where the tray asks: %s", async (view, tab) => {
    m = await mount();
    if (view === "environments") await click(m.root, "#nav-settings");
    m.backend.emitNavigate(view);
    await settle();
    expect($(m.root, tab).getAttribute("aria-current")).toBe("page");
  });

  it("opens an app's connection details when the tray asks for them", async () => {
    m = await mount();
    await click(m.root, "#nav-tunnels");
    m.backend.emitNavigate("details:jyu7waly36ncj/main/app");
    await settle();
    expect($(m.root, "#nav-environments").getAttribute("aria-current")).toBe("page");
    expect(m.root.querySelector("#details")).not.toBeNull();
    expect(m.backend.callsTo("connectionDetails")).toEqual([
      [{ project: "jyu7waly36ncj", environment: "main", app: "app" }],
    ]);
    m.backend.emitNavigate("details:not/enough");
    await settle();
    expect(m.backend.callsTo("connectionDetails")).toHaveLength(1);
  });

  it("starts on the view its address names", async () => {
    location.hash = "#settings";
    try {
      m = await mount();
      expect($(m.root, "#nav-settings").getAttribute("aria-current")).toBe("page");
    } finally {
      location.hash = "";
    }
  });

  it("shows the account when the tray asks for it", async () => {
    m = await mount();
    await click(m.root, "#nav-tunnels");
    m.backend.emitNavigate("account");
    await settle();
    expect($(m.root, "#nav-environments").getAttribute("aria-current")).toBe("page");
    expect(document.activeElement).toBe($(m.root, "#sign-out"));
  });

  it("refetches the account and the tunnels when the agent reports a change", async () => {
    let account = sampleAccount();
    m = await mount({ account: async () => account });
    const accounts = m.backend.callsTo("account").length;
    const tunnels = m.backend.callsTo("tunnels").length;
    account = sampleAccount({ session: "needs_sign_in", user: null, certificate: null });
    m.backend.emitChanged();
    await settle();
    expect(m.backend.callsTo("account").length).toBe(accounts + 1);
    expect(m.backend.callsTo("tunnels").length).toBe(tunnels + 1);
    expect($(m.root, "#account-state").textContent).toBe("Sign-in needed");
    expect(m.root.querySelector("#sign-in")).not.toBeNull();
  });

  it("stops listening when destroyed", async () => {
    m = await mount();
    m.app.destroy();
    const before = m.backend.calls.length;
    m.backend.emitChanged();
    await settle();
    expect(m.backend.calls.length).toBe(before);
  });

  it("lets one dismiss an error, and forgets it when leaving the view", async () => {
    m = await mount({ openTerminal: () => Promise.reject({ code: "usage", message: "no terminal found" }) });
    await click($(m.root, '[data-app="abc123/main/web"]'), "[data-action=terminal]");
    expect($(m.root, "[role=alert]").textContent).toBe("That did not work. No terminal found.");
    await click(m.root, "[data-action=dismiss]");
    expect(m.root.querySelector("[role=alert]")).toBeNull();
    await click($(m.root, '[data-app="abc123/main/web"]'), "[data-action=terminal]");
    await click(m.root, "#nav-tunnels");
    expect(m.root.querySelector("[role=alert]")).toBeNull();
  });

  it("takes / to the search from another view, but not while typing", async () => {
    m = await mount();
    await click(m.root, "#nav-settings");
    const terminal = $(m.root, "[name=terminal]");
    terminal.focus();
    key(terminal, "/");
    expect($(m.root, "#nav-settings").getAttribute("aria-current")).toBe("page");
    key(document.body, "/");
    expect(document.activeElement).toBe($(m.root, "#search"));
  });

  it("removes copy toasts after a while", async () => {
    m = await mount();
    vi.useFakeTimers();
    try {
      await m.app.copy("x", "thing");
      expect($(m.root, ".toast").textContent).toBe("Copied thing");
      await vi.advanceTimersByTimeAsync(TOAST_MS + 1);
      expect(m.root.querySelector(".toast")).toBeNull();
    } finally {
      vi.useRealTimers();
    }
  });

  it("never sets inline styles", async () => {
    m = await mount();
    await click($(m.root, '[data-app="abc123/main/web"]'), "[data-action=details]");
    await click(m.root, "#nav-tunnels");
    expect(document.querySelector("[style]")).toBeNull();
  });
});
