import { afterEach, describe, expect, it, vi } from "vitest";
import type { TunnelView } from "../backend/types";
import { sampleAccount, sampleTunnel } from "../backend/mock";
import { $, click, mount, settle, type Mounted } from "../test-utils";
import { countersText, EMPTY_TUNNELS, POLL_MS } from "./tunnels";

let m: Mounted | undefined;
afterEach(() => {
  m?.app.destroy();
  vi.useRealTimers();
});

const two = (): TunnelView[] => [
  sampleTunnel(),
  sampleTunnel({
    id: 2,
    app: { project: "def456", environment: "staging", app: "app" },
    production: false,
    relationship: "cache",
    service: "redis",
    state: "reconnecting",
    detail: "the connection dropped; trying again",
    address: "127.0.0.1:30001",
    url: "redis://127.0.0.1:30001",
    connections: 1,
    active: 0,
    bytes_in: 0,
    bytes_out: 3 * 1024 * 1024,
  }),
];

async function showTunnels(tunnels: () => TunnelView[] = two): Promise<Mounted> {
  m = await mount({ tunnels: async () => tunnels() });
  await click(m.root, "#nav-tunnels");
  return m;
}

describe("tunnels view", () => {
  it("lists each tunnel with its state, address, app and counters", async () => {
    const { root } = await showTunnels();
    expect($(root, "#nav-tunnels").getAttribute("aria-current")).toBe("page");
    const db = $(root, '[data-tunnel="1"]');
    expect(db.textContent).toContain("database");
    expect(db.textContent).toContain("db");
    expect($(db, "[data-field=app]").textContent).toBe("abc123/main/web [PRODUCTION]");
    expect($(db, "[data-field=state]").textContent).toBe("open");
    expect($(db, "[data-field=address]").textContent).toBe("127.0.0.1:30000");
    expect($(db, "[data-field=counters]").textContent).toBe("3 connections · 1 active · ↓ 2 KB ↑ 512 B");
    const cache = $(root, '[data-tunnel="2"]');
    expect($(cache, "[data-field=app]").textContent).toBe("def456/staging/app");
    expect($(cache, "[data-field=state]").textContent).toBe("reconnecting");
    expect($(cache, "[data-field=state]").className).toContain("badge-warn");
    expect($(cache, "[data-field=detail]").textContent).toBe("the connection dropped; trying again");
    expect($(db, "[data-field=detail]").hidden).toBe(true);
    expect($(root, "#nav-tunnels").textContent).toContain("2");
  });

  it("copies the address and the URL", async () => {
    const { root, backend } = await showTunnels();
    await click($(root, '[data-tunnel="2"]'), "[data-action=copy-address]");
    await click($(root, '[data-tunnel="2"]'), "[data-action=copy-url]");
    expect(backend.callsTo("copy")).toEqual([
      ["127.0.0.1:30001", "tunnel address", false],
      ["redis://127.0.0.1:30001", "tunnel URL", true],
    ]);
    expect([...root.querySelectorAll("[role=status]")].map((s) => s.textContent)).toContain("Copied tunnel address");
  });

  it("closes one tunnel, then shows what is left", async () => {
    let list = two();
    m = await mount({
      tunnels: async () => list,
      closeTunnel: async (id) => {
        list = list.filter((t) => t.id !== id);
      },
    });
    await click(m.root, "#nav-tunnels");
    await click($(m.root, '[data-tunnel="1"]'), "[data-action=close]");
    expect(m.backend.callsTo("closeTunnel")).toEqual([[1]]);
    expect(m.root.querySelector('[data-tunnel="1"]')).toBeNull();
    expect(m.root.querySelector('[data-tunnel="2"]')).not.toBeNull();
  });

  it("reopens the tunnels closed at sign-out, once signed in again", async () => {
    let list: TunnelView[] = [];
    let reopenable = 2;
    m = await mount({
      tunnels: async () => list,
      account: async () => sampleAccount({ reopenable_tunnels: reopenable }),
      reopenTunnels: async () => {
        list = two();
        reopenable = 0;
        return { tunnels: list, failed: [] };
      },
    });
    await click(m.root, "#nav-tunnels");
    const reopen = $(m.root, "#reopen-tunnels") as HTMLButtonElement;
    expect(reopen.hidden).toBe(false);
    expect(reopen.textContent).toBe("Reopen 2 tunnels");
    await click(m.root, "#reopen-tunnels");
    expect(m.backend.callsTo("reopenTunnels")).toHaveLength(1);
    expect(m.root.querySelector('[data-tunnel="1"]')).not.toBeNull();
    expect(reopen.hidden).toBe(true);
  });

  it("does not offer to reopen tunnels while signed out", async () => {
    m = await mount({
      tunnels: async () => [],
      account: async () => sampleAccount({ session: "signed_out", reopenable_tunnels: 2 }),
    });
    await click(m.root, "#nav-tunnels");
    expect(($(m.root, "#reopen-tunnels") as HTMLButtonElement).hidden).toBe(true);
  });

  it("closes all tunnels", async () => {
    let list = two();
    m = await mount({
      tunnels: async () => list,
      closeAllTunnels: async () => {
        list = [];
      },
    });
    await click(m.root, "#nav-tunnels");
    await click(m.root, "#close-all-tunnels");
    expect(m.backend.callsTo("closeAllTunnels")).toHaveLength(1);
    expect(m.root.querySelector("[data-tunnel]")).toBeNull();
    expect($(m.root, "#tunnels-empty").textContent).toBe(EMPTY_TUNNELS);
    expect(($(m.root, "#close-all-tunnels") as HTMLButtonElement).disabled).toBe(true);
  });

  it("copies the PLATFORM_RELATIONSHIPS export for all tunnels", async () => {
    const { root, backend } = await showTunnels();
    await click(root, "#copy-export");
    expect(backend.callsTo("tunnelExport")).toEqual([[null]]);
    expect(backend.callsTo("copy")).toEqual([["export PLATFORM_RELATIONSHIPS=e30=", "PLATFORM_RELATIONSHIPS export", true]]);
  });

  it("says how to open tunnels when there are none", async () => {
    const { root } = await showTunnels(() => []);
    expect($(root, "#tunnels-empty").textContent).toBe("No tunnels open. Open them from an app in Environments.");
    expect($(root, "#tunnels-empty").hidden).toBe(false);
  });

  it("refreshes every 2 s while shown, in place, and stops when left", async () => {
    vi.useFakeTimers();
    let bytes = 0;
    document.body.replaceChildren();
    const pending = mount({ tunnels: async () => [sampleTunnel({ bytes_in: bytes })] });
    await vi.advanceTimersByTimeAsync(10);
    m = await pending;
    $(m.root, "#nav-tunnels").click();
    await vi.advanceTimersByTimeAsync(10);
    const row = $(m.root, '[data-tunnel="1"]');
    const before = m.backend.callsTo("tunnels").length;
    bytes = 5 * 1024;
    await vi.advanceTimersByTimeAsync(POLL_MS);
    expect(m.backend.callsTo("tunnels").length).toBe(before + 1);
    expect($(m.root, '[data-tunnel="1"]')).toBe(row);
    expect($(row, "[data-field=counters]").textContent).toContain("↓ 5 KB");
    $(m.root, "#nav-settings").click();
    await vi.advanceTimersByTimeAsync(10);
    const after = m.backend.callsTo("tunnels").length;
    await vi.advanceTimersByTimeAsync(POLL_MS * 3);
    expect(m.backend.callsTo("tunnels").length).toBe(after);
  });

  it("refreshes when the agent reports a change", async () => {
    let list: TunnelView[] = [];
    const { root, backend } = await showTunnels(() => list);
    list = [sampleTunnel({ state: "failed", detail: "the link is down" })];
    backend.emitChanged();
    await settle();
    expect($(root, '[data-tunnel="1"] [data-field=state]').textContent).toBe("failed");
    expect($(root, '[data-tunnel="1"] [data-field=state]').className).toContain("badge-bad");
  });

  it("words the counters", () => {
    expect(countersText(sampleTunnel({ connections: 1, active: 0, bytes_in: 1536, bytes_out: 0 }))).toBe(
      "1 connection · 0 active · ↓ 1.5 KB ↑ 0 B",
    );
  });
});
