// The IPC types, as ts-rs generates them from the Rust side (src-tauri/src/view.rs and core's
// DesktopSettings) into ./generated/. Import them from here, never from ./generated directly.
import type { Account } from "./generated/Account";
import type { AppRef } from "./generated/AppRef";
import type { Client } from "./generated/Client";
import type { ClientView } from "./generated/ClientView";
import type { ConnectionDetails } from "./generated/ConnectionDetails";
import type { CopyForm } from "./generated/CopyForm";
import type { DumpView } from "./generated/DumpView";
import type { DesktopSettings } from "./generated/DesktopSettings";
import type { IpcError } from "./generated/IpcError";
import type { OpenedView } from "./generated/OpenedView";
import type { ProjectView } from "./generated/ProjectView";
import type { SettingsView } from "./generated/SettingsView";
import type { ProductionProject } from "./generated/ProductionProject";
import type { Report } from "./generated/Report";
import type { ShellView } from "./generated/ShellView";
import type { ShortcutView } from "./generated/ShortcutView";
import type { SwitcherAction } from "./generated/SwitcherAction";
import type { SwitcherItem } from "./generated/SwitcherItem";
import type { SignInRequest } from "./generated/SignInRequest";
import type { TunnelView } from "./generated/TunnelView";
import type { WelcomeAnswer } from "./generated/WelcomeAnswer";
import type { WelcomeView } from "./generated/WelcomeView";

export type { Account } from "./generated/Account";
export type { AppRef } from "./generated/AppRef";
export type { AppView } from "./generated/AppView";
export type { CertificateView } from "./generated/CertificateView";
export type { Client } from "./generated/Client";
export type { ClientView } from "./generated/ClientView";
export type { ConnectionDetails } from "./generated/ConnectionDetails";
export type { CopyForm } from "./generated/CopyForm";
export type { DumpView } from "./generated/DumpView";
export type { DesktopSettings } from "./generated/DesktopSettings";
export type { EnvironmentView } from "./generated/EnvironmentView";
export type { IpcError } from "./generated/IpcError";
export type { OpenedView } from "./generated/OpenedView";
export type { OpenFailureView } from "./generated/OpenFailureView";
export type { ProfileChoice } from "./generated/ProfileChoice";
export type { ProjectView } from "./generated/ProjectView";
export type { ServiceDetails } from "./generated/ServiceDetails";
export type { SessionView } from "./generated/SessionView";
export type { SettingsView } from "./generated/SettingsView";
export type { Check } from "./generated/Check";
export type { CheckId } from "./generated/CheckId";
export type { Fix } from "./generated/Fix";
export type { ProductionProject } from "./generated/ProductionProject";
export type { Report } from "./generated/Report";
export type { ShellView } from "./generated/ShellView";
export type { Status } from "./generated/Status";
export type { ShortcutView } from "./generated/ShortcutView";
export type { SwitcherAction } from "./generated/SwitcherAction";
export type { SwitcherItem } from "./generated/SwitcherItem";
export type { SignInMethod } from "./generated/SignInMethod";
export type { SignInRequest } from "./generated/SignInRequest";
export type { SshConfigOffer } from "./generated/SshConfigOffer";
export type { TokenStoreView } from "./generated/TokenStoreView";
export type { TunnelStateView } from "./generated/TunnelStateView";
export type { TunnelView } from "./generated/TunnelView";
export type { UserView } from "./generated/UserView";
export type { WelcomeAnswer } from "./generated/WelcomeAnswer";
export type { WelcomeView } from "./generated/WelcomeView";

/** How every failed call rejects: the shell's `IpcError` (`code` classifies, `message` explains). */
export type BackendError = IpcError;

/** Everything the UI may ask of the app; `tauriBackend` answers over IPC, `mockBackend` in tests. */
export interface Backend {
  account(): Promise<Account>;
  /** Resolves when the sign-in finished (it may take minutes). */
  signIn(request: SignInRequest): Promise<Account>;
  signOut(): Promise<Account>;
  catalog(refresh: boolean): Promise<ProjectView[]>;
  connectionDetails(app: AppRef): Promise<ConnectionDetails>;
  /** On production a first call fails with a `confirm` error whose message is the question;
   * `confirmed` is the person's yes (the same for every call below that takes it). */
  openTerminal(app: AppRef, confirmed?: boolean): Promise<void>;
  openTunnels(app: AppRef, confirmed?: boolean): Promise<OpenedView>;
  /** A terminal with psql, mysql or redis-cli through the app's tunnel (read-only on production). */
  sqlShell(app: AppRef, relationship: string | null, confirmed?: boolean): Promise<void>;
  /** A terminal following the app's log. */
  showLogs(app: AppRef): Promise<void>;
  /** Opens the environment's primary URL in the browser; resolves to the URL. */
  openSite(app: AppRef): Promise<string>;
  /** The database clients found on this machine. */
  databaseClients(): Promise<ClientView[]>;
  openIn(app: AppRef, client: Client, relationship: string | null, confirmed?: boolean): Promise<void>;
  /** Rust copies the service's connection in that form (a secret when it holds the password). */
  copyAs(app: AppRef, form: CopyForm, relationship: string | null, confirmed?: boolean): Promise<void>;
  /** Asks where to save in a dialog, dumps, notifies; `null` when the dialog was cancelled. */
  dumpDatabase(app: AppRef, relationship: string | null, confirmed?: boolean): Promise<DumpView | null>;
  tunnels(): Promise<TunnelView[]>;
  closeTunnel(id: number): Promise<void>;
  closeAllTunnels(): Promise<void>;
  /** Opens again, on their old ports, the tunnels the end of the last session closed. */
  reopenTunnels(): Promise<OpenedView>;
  /** A line `export PLATFORM_RELATIONSHIPS=...` for the open tunnels (of one app, or all). */
  tunnelExport(app: AppRef | null): Promise<string>;
  /** Rust writes the clipboard and notifies "Copied"; `label` says what was copied. A `secret` is
   * marked for clipboard managers and cleared after 45 s if the clipboard still holds it. */
  copy(text: string, label: string, secret: boolean): Promise<void>;
  setPinned(app: AppRef, pinned: boolean): Promise<void>;
  settings(): Promise<SettingsView>;
  /** `confirmed`: the person's yes to the question a first try asked (a `confirm` error). */
  saveSettings(settings: DesktopSettings, confirmed?: boolean): Promise<SettingsView>;
  /** Keeps the sign-in in a private file (`file`) or the keyring, and stores a finished sign-in
   * the keyring refused (a `sign_in_held` error). */
  useTokenStore(file: boolean): Promise<Account>;
  /** The first-run welcome: whether it is under way, and what its steps show. */
  welcome(): Promise<WelcomeView>;
  /** A welcome step's answer; a platform other than the one served restarts the app. */
  welcomeStep(answer: WelcomeAnswer): Promise<WelcomeView>;
  /** The app's build, and whether a tray shows its icon (read again on `onChanged`). */
  shell(): Promise<ShellView>;
  /** Ends the app, as the tray's Quit does. */
  quit(): Promise<void>;
  /** The agent reported something (sign-in, renewal, tunnel state). Resolves to an unlisten. */
  onChanged(cb: () => void): Promise<() => void>;
  /** The tray asks for a view: "environments", "tunnels", "settings", "account", or a sign-in
   * the tray could not start ("sign-in", "sign-in-mfa") or finish ("sign-in-held"). */
  onNavigate(cb: (view: string) => void): Promise<() => void>;
  /** The quick switcher's apps: pinned, then recent, then the rest; production marked. */
  switcherItems(): Promise<SwitcherItem[]>;
  /** Runs a switcher key's action (the tray's item of that name) on an app; the switcher closes. */
  switcherRun(app: AppRef, action: SwitcherAction): Promise<void>;
  /** Closes the switcher (Escape). */
  closeSwitcher(): Promise<void>;
  /** Opens the switcher (the main window's button). */
  openSwitcher(): Promise<void>;
  /** The switcher's global shortcut as the saved settings ask for it, registered again if changed. */
  switcherShortcut(): Promise<ShortcutView>;
  /** The switcher was opened again: start a new search. Resolves to an unlisten. */
  onSwitcherReset(cb: () => void): Promise<() => void>;
  /** The checks `tether doctor` runs: each one's status, meaning and fix (about half a second). */
  doctor(): Promise<Report>;
  /** The projects with a production environment, for Settings' "ask before entering production" switches. */
  productionProjects(): Promise<ProductionProject[]>;
}
