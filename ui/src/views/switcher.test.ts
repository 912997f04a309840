import { afterEach, describe, expect, it } from "vitest";
import { mockBackend, sampleSwitcherItems, type MockBackend } from "../backend/mock";
import type { SwitcherItem } from "../backend/types";
import { $, key, settle } from "../test-utils";
import { actionFor, filterItems, fuzzyScore, startSwitcher, type SwitcherPalette } from "./switcher";

let backend: MockBackend;
let palette: SwitcherPalette;
afterEach(() => document.body.replaceChildren());

async function open(overrides = {}): Promise<HTMLElement> {
  document.body.replaceChildren();
  const root = document.createElement("main");
  root.id = "app";
  document.body.append(root);
  backend = mockBackend(overrides);
  palette = await startSwitcher(root, backend);
  await settle();
  return root;
}

function type(root: HTMLElement, text: string): void {
  const input = $(root, "#switcher-query") as HTMLInputElement;
  input.value = text;
  input.dispatchEvent(new Event("input", { bubbles: true }));
}

function rows(root: HTMLElement): string[] {
  return [...root.querySelectorAll<HTMLElement>(".switcher-item")].map((r) => r.dataset.app!);
}

function press(root: HTMLElement, k: string, ctrl = false): void {
  $(root, "#switcher-query").dispatchEvent(new KeyboardEvent("keydown", { key: k, ctrlKey: ctrl, bubbles: true, cancelable: true }));
}

describe("fuzzy matching", () => {
  it("scores substrings above scattered letters, word starts above the middle of a word", () => {
    expect(fuzzyScore("shop", "shop abc123 main")).toBeGreaterThan(fuzzyScore("shp", "shop abc123 main")!);
    expect(fuzzyScore("main", "shop main")).toBeGreaterThan(fuzzyScore("ain", "shop main")!);
    expect(fuzzyScore("xyz", "shop main")).toBeNull();
    expect(fuzzyScore("smw", "shop main web")).not.toBeNull();
  });

  it("keeps pinned and recent first for a blank query, and ranks by match otherwise", () => {
    const items = sampleSwitcherItems();
    expect(filterItems(items, "  ")).toEqual(items);
    const web = filterItems(items, "web");
    expect(web.map((i) => i.app.app)).toEqual(["web"]);
    // Every term must match somewhere: project, environment or app.
    expect(filterItems(items, "blog app").map((i) => i.app.app)).toEqual(["app"]);
    expect(filterItems(items, "blog web")).toEqual([]);
    // "prod" finds production through its label.
    expect(filterItems(items, "prod").map((i) => i.app.app)).toEqual(["worker", "web"]);
    // Scattered letters: s(hop) w(eb)... 
    expect(filterItems(items, "shpweb").map((i) => i.app.app)).toEqual(["web"]);
  });

  it("puts a pinned app before an equal match that is not", () => {
    const a: SwitcherItem = { ...sampleSwitcherItems()[2] };
    const b: SwitcherItem = { ...a, app: { ...a.app, app: "web" }, pinned: true };
    expect(filterItems([a, b], "web")[0]).toBe(b);
  });

  it("maps keys to actions and leaves typing alone", () => {
    const k = (key: string, ctrlKey = false) => ({ key, ctrlKey, metaKey: false, altKey: false, shiftKey: false });
    expect(actionFor(k("Enter"))).toBe("terminal");
    expect(actionFor(k("t", true))).toBe("tunnels");
    expect(actionFor(k("C", true))).toBe("copy_ssh");
    expect(actionFor(k("s", true))).toBe("sql_shell");
    expect(actionFor(k("t"))).toBeNull();
    expect(actionFor(k("a", true))).toBeNull();
  });
});

describe("switcher palette", () => {
  it("lists pinned and recent first, marks production and lists its keys", async () => {
    const root = await open();
    expect(rows(root)).toEqual(["abc123/main/worker", "def456/staging/app", "abc123/main/web"]);
    const first = $(root, "#switcher-item-0");
    expect(first.getAttribute("aria-selected")).toBe("true");
    expect(first.textContent).toContain("Main [PRODUCTION]");
    expect(first.textContent).toContain("pinned");
    expect($(root, "#switcher-item-1").textContent).toContain("recent");
    const keys = $(root, "#switcher-keys").textContent!;
    for (const label of ["Enter", "Open terminal", "Ctrl+T", "Open tunnels", "Ctrl+S", "SQL shell", "Ctrl+C", "Copy SSH command", "Esc", "Close"]) {
      expect(keys).toContain(label);
    }
    expect(document.activeElement?.id).toBe("switcher-query");
  });

  it("filters as one types and opens a terminal on the chosen app with Enter", async () => {
    const root = await open();
    type(root, "blg");
    expect(rows(root)).toEqual(["def456/staging/app"]);
    press(root, "Enter");
    await settle();
    expect(backend.callsTo("switcherRun")).toEqual([[{ project: "def456", environment: "staging", app: "app" }, "terminal"]]);
  });

  it("moves with the arrows and runs the other keys' actions", async () => {
    const root = await open();
    press(root, "ArrowDown");
    press(root, "ArrowDown");
    expect($(root, "#switcher-item-2").getAttribute("aria-selected")).toBe("true");
    press(root, "ArrowDown");
    expect($(root, "#switcher-item-0").getAttribute("aria-selected")).toBe("true");
    press(root, "ArrowUp");
    press(root, "t", true);
    await settle();
    expect(backend.callsTo("switcherRun")).toEqual([[{ project: "abc123", environment: "main", app: "web" }, "tunnels"]]);
  });

  it("copies the SSH command with Ctrl+C unless text is selected in the search", async () => {
    const root = await open();
    type(root, "worker");
    const input = $(root, "#switcher-query") as HTMLInputElement;
    input.setSelectionRange(0, 3);
    press(root, "c", true);
    await settle();
    expect(backend.callsTo("switcherRun")).toEqual([]);
    input.setSelectionRange(6, 6);
    press(root, "c", true);
    await settle();
    expect(backend.callsTo("switcherRun")).toEqual([[{ project: "abc123", environment: "main", app: "worker" }, "copy_ssh"]]);
  });

  it("closes on Escape, says when nothing matches, and starts again when reopened", async () => {
    const root = await open();
    type(root, "zzz");
    expect(rows(root)).toEqual([]);
    expect($(root, "#switcher-status").textContent).toBe("No app matches.");
    press(root, "Enter");
    await settle();
    expect(backend.callsTo("switcherRun")).toEqual([]);
    key($(root, "#switcher-query"), "Escape");
    await settle();
    expect(backend.callsTo("closeSwitcher").length).toBe(1);
    backend.emitSwitcherReset();
    await settle();
    expect(($(root, "#switcher-query") as HTMLInputElement).value).toBe("");
    expect(rows(root).length).toBe(3);
    expect(backend.callsTo("switcherItems").length).toBe(2);
  });

  it("says why there is nothing to list (signed out) and what a failed action said", async () => {
    let root = await open({ switcherItems: async () => Promise.reject({ code: "sign_in", message: "not signed in: sign in first" }) });
    expect($(root, "#switcher-status").textContent).toContain("sign in");
    root = await open({ switcherRun: async () => Promise.reject({ code: "other", message: "no terminal found" }) });
    press(root, "Enter");
    await settle();
    expect($(root, "#switcher-status").textContent).toContain("No terminal found");
    void palette;
  });
});
