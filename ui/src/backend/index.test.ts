import { beforeEach, describe, expect, it, vi } from "vitest";

vi.mock("@tauri-apps/api/core", () => ({ invoke: vi.fn() }));
vi.mock("@tauri-apps/api/event", () => ({ listen: vi.fn() }));

import { invoke } from "@tauri-apps/api/core";
import { listen } from "@tauri-apps/api/event";
import { tauriBackend, toBackendError } from "./index";
import { sampleSettings } from "./mock";

const invokeMock = vi.mocked(invoke);
const listenMock = vi.mocked(listen);
const app = { project: "abc123", environment: "main", app: "web" };

beforeEach(() => {
  invokeMock.mockReset();
  invokeMock.mockResolvedValue(undefined);
  listenMock.mockReset();
});

describe("tauriBackend commands", () => {
  const cases: Array<[string, () => Promise<unknown>, string, Record<string, unknown> | undefined]> = [
    ["account", () => tauriBackend.account(), "account", undefined],
    ["signIn", () => tauriBackend.signIn({ mfa: true, method: "browser" }), "sign_in", { request: { mfa: true, method: "browser" } }],
    ["signOut", () => tauriBackend.signOut(), "sign_out", undefined],
    ["catalog", () => tauriBackend.catalog(true), "catalog", { refresh: true }],
    ["connectionDetails", () => tauriBackend.connectionDetails(app), "connection_details", { app }],
    ["openTerminal", () => tauriBackend.openTerminal(app), "open_terminal", { app, confirmed: null }],
    ["openTerminal(yes)", () => tauriBackend.openTerminal(app, true), "open_terminal", { app, confirmed: true }],
    ["openTunnels", () => tauriBackend.openTunnels(app), "open_tunnels", { app, confirmed: null }],
    ["sqlShell", () => tauriBackend.sqlShell(app, "database", true), "sql_shell", { app, relationship: "database", confirmed: true }],
    ["showLogs", () => tauriBackend.showLogs(app), "show_logs", { app }],
    ["openSite", () => tauriBackend.openSite(app), "open_site", { app }],
    ["databaseClients", () => tauriBackend.databaseClients(), "database_clients", undefined],
    ["openIn", () => tauriBackend.openIn(app, "dbeaver", null), "open_in", { app, client: "dbeaver", relationship: null, confirmed: null }],
    ["copyAs", () => tauriBackend.copyAs(app, "jdbc", null), "copy_as", { app, form: "jdbc", relationship: null, confirmed: null }],
    ["dumpDatabase", () => tauriBackend.dumpDatabase(app, null, true), "dump_database", { app, relationship: null, confirmed: true }],
    ["tunnels", () => tauriBackend.tunnels(), "tunnels", undefined],
    ["closeTunnel", () => tauriBackend.closeTunnel(7), "close_tunnel", { id: 7 }],
    ["closeAllTunnels", () => tauriBackend.closeAllTunnels(), "close_all_tunnels", undefined],
    ["reopenTunnels", () => tauriBackend.reopenTunnels(), "reopen_tunnels", undefined],
    ["tunnelExport", () => tauriBackend.tunnelExport(null), "tunnel_export", { app: null }],
    ["tunnelExport(app)", () => tauriBackend.tunnelExport(app), "tunnel_export", { app }],
    ["copy", () => tauriBackend.copy("ssh x@y", "SSH command", false), "copy_text", { text: "ssh x@y", label: "SSH command", secret: false }],
    ["setPinned", () => tauriBackend.setPinned(app, true), "set_pinned", { app, pinned: true }],
    ["settings", () => tauriBackend.settings(), "settings", undefined],
    ["useTokenStore", () => tauriBackend.useTokenStore(true), "use_token_store", { file: true }],
    ["welcome", () => tauriBackend.welcome(), "welcome", undefined],
    [
      "welcomeStep",
      () => tauriBackend.welcomeStep({ step: "ssh_config", add: true }),
      "welcome_step",
      { answer: { step: "ssh_config", add: true } },
    ],
  ];

  it.each(cases)("%s invokes %s with the right keys", async (_name, call, command, args) => {
    await call();
    expect(invokeMock).toHaveBeenCalledTimes(1);
    expect(invokeMock.mock.calls[0]).toEqual(args === undefined ? [command] : [command, args]);
  });

  it("saveSettings sends the settings under `settings`", async () => {
    const { settings } = sampleSettings();
    await tauriBackend.saveSettings(settings);
    expect(invokeMock).toHaveBeenCalledWith("save_settings", { settings });
    await tauriBackend.saveSettings(settings, true);
    expect(invokeMock).toHaveBeenLastCalledWith("save_settings", { settings, confirmed: true });
  });

  it("returns what the command answers", async () => {
    invokeMock.mockResolvedValueOnce([{ id: "p" }]);
    await expect(tauriBackend.catalog(false)).resolves.toEqual([{ id: "p" }]);
  });
});

describe("errors", () => {
  it("passes the shell's IpcError through", async () => {
    invokeMock.mockRejectedValueOnce({ code: "step_up_mfa", message: "needs MFA" });
    await expect(tauriBackend.account()).rejects.toEqual({ code: "step_up_mfa", message: "needs MFA" });
  });

  it("turns anything else into an `other` error", async () => {
    invokeMock.mockRejectedValueOnce("command sign_in not found");
    await expect(tauriBackend.signOut()).rejects.toEqual({ code: "other", message: "command sign_in not found" });
  });

  it("maps odd shapes", () => {
    expect(toBackendError({ code: 3, message: "x" })).toEqual({ code: "other", message: "[object Object]" });
    expect(toBackendError(new Error("boom"))).toEqual({ code: "other", message: "Error: boom" });
    expect(toBackendError(null)).toEqual({ code: "other", message: "null" });
    expect(toBackendError({ code: "usage", message: "m", extra: 1 })).toEqual({ code: "usage", message: "m" });
  });
});

describe("events", () => {
  it("onChanged listens to tether://changed", async () => {
    const unlisten = vi.fn();
    listenMock.mockResolvedValueOnce(unlisten);
    const cb = vi.fn();
    const stop = await tauriBackend.onChanged(cb);
    expect(listenMock.mock.calls[0][0]).toBe("tether://changed");
    const handler = listenMock.mock.calls[0][1];
    handler({ event: "tether://changed", id: 1, payload: null });
    expect(cb).toHaveBeenCalledTimes(1);
    stop();
    expect(unlisten).toHaveBeenCalled();
  });

  it("onNavigate passes the view the tray asks for", async () => {
    listenMock.mockResolvedValueOnce(() => {});
    const cb = vi.fn();
    await tauriBackend.onNavigate(cb);
    expect(listenMock.mock.calls[0][0]).toBe("tether://navigate");
    listenMock.mock.calls[0][1]({ event: "tether://navigate", id: 2, payload: "tunnels" });
    expect(cb).toHaveBeenCalledWith("tunnels");
  });
});
