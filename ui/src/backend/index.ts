// The one way the UI reaches the app: every IPC call goes through here.
import { invoke } from "@tauri-apps/api/core";
import { listen } from "@tauri-apps/api/event";
import type {
  Account,
  AppRef,
  Backend,
  BackendError,
  Client,
  ClientView,
  ConnectionDetails,
  CopyForm,
  DesktopSettings,
  DumpView,
  OpenedView,
  ProductionProject,
  ProjectView,
  Report,
  SettingsView,
  ShellView,
  ShortcutView,
  SignInRequest,
  SwitcherAction,
  SwitcherItem,
  TunnelView,
  WelcomeAnswer,
  WelcomeView,
} from "./types";

export type * from "./types";

/** Events the shell emits. */
export const CHANGED_EVENT = "tether://changed";
export const NAVIGATE_EVENT = "tether://navigate";
export const SWITCHER_RESET_EVENT = "tether://switcher-reset";

/** What a rejection becomes: the shell's `{code, message}` as is, anything else as `other`. */
export function toBackendError(e: unknown): BackendError {
  if (typeof e === "object" && e !== null) {
    const { code, message } = e as { code?: unknown; message?: unknown };
    if (typeof code === "string" && typeof message === "string") return { code, message };
  }
  return { code: "other", message: String(e) };
}

async function call<T>(command: string, args?: Record<string, unknown>): Promise<T> {
  try {
    return await (args === undefined ? invoke<T>(command) : invoke<T>(command, args));
  } catch (e) {
    throw toBackendError(e);
  }
}

export const tauriBackend: Backend = {
  account: () => call<Account>("account"),
  signIn: (request: SignInRequest) => call<Account>("sign_in", { request }),
  signOut: () => call<Account>("sign_out"),
  catalog: (refresh: boolean) => call<ProjectView[]>("catalog", { refresh }),
  connectionDetails: (app: AppRef) => call<ConnectionDetails>("connection_details", { app }),
  openTerminal: (app: AppRef, confirmed?: boolean) => call<void>("open_terminal", { app, confirmed: confirmed ?? null }),
  openTunnels: (app: AppRef, confirmed?: boolean) => call<OpenedView>("open_tunnels", { app, confirmed: confirmed ?? null }),
  sqlShell: (app: AppRef, relationship: string | null, confirmed?: boolean) =>
    call<void>("sql_shell", { app, relationship, confirmed: confirmed ?? null }),
  showLogs: (app: AppRef) => call<void>("show_logs", { app }),
  openSite: (app: AppRef) => call<string>("open_site", { app }),
  databaseClients: () => call<ClientView[]>("database_clients"),
  openIn: (app: AppRef, client: Client, relationship: string | null, confirmed?: boolean) =>
    call<void>("open_in", { app, client, relationship, confirmed: confirmed ?? null }),
  copyAs: (app: AppRef, form: CopyForm, relationship: string | null, confirmed?: boolean) =>
    call<void>("copy_as", { app, form, relationship, confirmed: confirmed ?? null }),
  dumpDatabase: (app: AppRef, relationship: string | null, confirmed?: boolean) =>
    call<DumpView | null>("dump_database", { app, relationship, confirmed: confirmed ?? null }),
  tunnels: () => call<TunnelView[]>("tunnels"),
  closeTunnel: (id: number) => call<void>("close_tunnel", { id }),
  closeAllTunnels: () => call<void>("close_all_tunnels"),
  reopenTunnels: () => call<OpenedView>("reopen_tunnels"),
  tunnelExport: (app: AppRef | null) => call<string>("tunnel_export", { app }),
  copy: (text: string, label: string, secret: boolean) => call<void>("copy_text", { text, label, secret }),
  setPinned: (app: AppRef, pinned: boolean) => call<void>("set_pinned", { app, pinned }),
  settings: () => call<SettingsView>("settings"),
  saveSettings: (settings: DesktopSettings, confirmed?: boolean) =>
    call<SettingsView>("save_settings", confirmed === undefined ? { settings } : { settings, confirmed }),
  useTokenStore: (file: boolean) => call<Account>("use_token_store", { file }),
  welcome: () => call<WelcomeView>("welcome"),
  welcomeStep: (answer: WelcomeAnswer) => call<WelcomeView>("welcome_step", { answer }),
  shell: () => call<ShellView>("shell"),
  quit: () => call<void>("quit"),
  onChanged: (cb: () => void) => listen(CHANGED_EVENT, () => cb()),
  onNavigate: (cb: (view: string) => void) => listen<string>(NAVIGATE_EVENT, (event) => cb(event.payload)),
  switcherItems: () => call<SwitcherItem[]>("switcher_items"),
  switcherRun: (app: AppRef, action: SwitcherAction) => call<void>("switcher_run", { app, action }),
  closeSwitcher: () => call<void>("close_switcher"),
  openSwitcher: () => call<void>("open_switcher"),
  switcherShortcut: () => call<ShortcutView>("switcher_shortcut"),
  onSwitcherReset: (cb: () => void) => listen(SWITCHER_RESET_EVENT, () => cb()),
  doctor: () => call<Report>("doctor"),
  productionProjects: () => call<ProductionProject[]>("production_projects_view"),
};
