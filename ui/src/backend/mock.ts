// A backend for unit tests: canned answers, every call recorded, no IPC.
import type {
  Account,
  AppRef,
  Backend,
  ConnectionDetails,
  ProjectView,
  Report,
  SettingsView,
  SwitcherItem,
  TunnelView,
  WelcomeView,
} from "./types";

/** One call the UI made: the method's name and its arguments. */
export interface Call {
  method: keyof Backend;
  args: unknown[];
}

export interface MockBackend extends Backend {
  calls: Call[];
  /** The arguments of every call to `method`, oldest first. */
  callsTo(method: keyof Backend): unknown[][];
  /** Fires the `tether://changed` listeners. */
  emitChanged(): void;
  /** Fires the `tether://navigate` listeners. */
  emitNavigate(view: string): void;
  /** Fires the `tether://switcher-reset` listeners. */
  emitSwitcherReset(): void;
}

export const NOW = 1_700_000_000;

export function sampleAccount(overrides: Partial<Account> = {}): Account {
  return {
    profile: "Platform.sh",
    session: "active",
    user: { username: "ada", display_name: "Ada Lovelace", email: "ada@example.com" },
    certificate: { valid_before: NOW + 3 * 3600 + 25 * 60, has_mfa: true, path: "/home/ada/.tether/cert" },
    now: NOW,
    can_sign_in: true,
    using_headless_agent: false,
    headless_agent: null,
    reopenable_tunnels: 0,
    ...overrides,
  };
}

export function signedOutAccount(overrides: Partial<Account> = {}): Account {
  return sampleAccount({ session: "signed_out", user: null, certificate: null, ...overrides });
}

function appView(project: string, environment: string, app: string, pinned = false) {
  const user = `${project}-${environment}--${app}`;
  const host = "ssh.eu-3.platform.sh";
  return {
    app: { project, environment, app },
    ssh_address: `${user}@${host}`,
    ssh_command: `ssh ${user}@${host}`,
    pinned,
  };
}

export function sampleCatalog(): ProjectView[] {
  return [
    {
      id: "abc123",
      title: "Shop",
      region: "eu-3.platform.sh",
      problem: null,
      environments: [
        {
          id: "main",
          title: "Main",
          status: "active",
          kind: "production",
          apps: [appView("abc123", "main", "web"), appView("abc123", "main", "worker", true)],
        },
        { id: "feature-x", title: "Feature X", status: "paused", kind: "development", apps: [] },
      ],
    },
    {
      id: "def456",
      title: "Blog",
      region: "us-2.platform.sh",
      problem: null,
      environments: [
        { id: "staging", title: "Staging", status: "active", kind: "staging", apps: [appView("def456", "staging", "app")] },
        { id: "old", title: "Old", status: "inactive", kind: "development", apps: [] },
      ],
    },
    {
      id: "vault1",
      title: "Vault",
      region: "eu-3.platform.sh",
      problem: { code: "step_up_mfa", message: "This organization requires multi-factor authentication: sign in with MFA" },
      environments: [],
    },
  ];
}

export function sampleDetails(app: AppRef): ConnectionDetails {
  return {
    app,
    ssh_host: "ssh.eu-3.platform.sh",
    ssh_port: 22,
    ssh_user: `${app.project}-${app.environment}--${app.app}`,
    key_file: "/home/ada/.tether/id_ed25519",
    certificate_file: "/home/ada/.tether/id_ed25519-cert.pub",
    services: [
      {
        relationship: "database",
        service: "db",
        service_type: "mariadb:10.6",
        host: "database.internal",
        port: 3306,
        username: "user",
        password: "s3cret",
        path: "main",
        scheme: "mysql",
      },
    ],
  };
}

export function sampleTunnel(overrides: Partial<TunnelView> = {}): TunnelView {
  return {
    id: 1,
    app: { project: "abc123", environment: "main", app: "web" },
    relationship: "database",
    service: "db",
    state: "open",
    detail: "",
    address: "127.0.0.1:30000",
    production: true,
    url: "mysql://user:s3cret@127.0.0.1:30000/main",
    connections: 3,
    active: 1,
    bytes_in: 2048,
    bytes_out: 512,
    ...overrides,
  };
}

export function sampleSettings(): SettingsView {
  return {
    settings: {
      terminal: "",
      bind_address: "127.0.0.1",
      manage_ssh_config: true,
      start_at_login: false,
      inactivity_limit_hours: 8,
      profile: "platformsh",
      pinned: ["abc123/main/worker"],
      recent: [],
      welcome_under_way: false,
      production_unguarded: [],
      switcher_shortcut: "Ctrl+Alt+Space",
    },
    profiles: [
      { name: "platformsh", title: "Platform.sh" },
      { name: "upsun", title: "Upsun" },
    ],
    active_profile: "platformsh",
    detected_terminal: "gnome-terminal -- {}",
    token_store: { in_file: false, location: "the OS keyring", choosable: true },
  };
}

/** A first start: the welcome under way, nothing chosen yet. */
export function sampleWelcome(overrides: Partial<WelcomeView> = {}): WelcomeView {
  return {
    under_way: true,
    platforms: sampleSettings().profiles,
    active_profile: "platformsh",
    profile_title: "Platform.sh",
    platform_chosen: false,
    profile_given_by: null,
    ssh_config: {
      path: "/home/ada/.ssh/config",
      lines:
        "# BEGIN: Tether certificate configuration\nHost *.platform.sh\n  Include /home/ada/.local/share/tether/ssh/*.config\nHost *\n# END: Tether certificate configuration\n",
      installed: false,
    },
    ...overrides,
  };
}

/** The switcher's list for the sample catalog: the pinned worker first, production marked. */
export function sampleSwitcherItems(): SwitcherItem[] {
  const item = (project: string, title: string, environment: string, label: string, app: string, extra: Partial<SwitcherItem> = {}) => ({
    app: { project, environment, app },
    project: title,
    environment: label,
    production: label.includes("[PRODUCTION]"),
    pinned: false,
    recent: false,
    ...extra,
  });
  return [
    item("abc123", "Shop", "main", "Main [PRODUCTION]", "worker", { pinned: true }),
    item("def456", "Blog", "staging", "Staging", "app", { recent: true }),
    item("abc123", "Shop", "main", "Main [PRODUCTION]", "web"),
  ];
}

/** A doctor report: one check of each status, one with a command to run. */
export function sampleReport(): Report {
  return {
    profile: "platformsh",
    versions: { tether: "0.1.0 (0000000)", openssh: "OpenSSH_9.2p1", os: "linux x86_64" },
    checks: [
      { id: "openssh_version", status: "ok", title: "OpenSSH 9.2 supports certificates, Include and Match exec", detail: "Plain ssh can use Tether's certificate.", fix: null },
      {
        id: "ssh_config_block",
        status: "problem",
        title: "Tether's block in ~/.ssh/config comes after Host * on line 3",
        detail: "The earlier Host * shadows it: plain ssh does not use the certificate.",
        fix: { text: "Move Tether's block to the top", command: "tether config:ssh --write" },
      },
      { id: "tray_host", status: "warning", title: "No tray host on the session bus", detail: "Tether's icon cannot be shown.", fix: { text: "Install a tray extension", command: null } },
    ],
  };
}

/** A backend answering with the samples above; `overrides` replace any method. */
export function mockBackend(overrides: Partial<Backend> = {}): MockBackend {
  const changed: Array<() => void> = [];
  const navigate: Array<(view: string) => void> = [];
  const reset: Array<() => void> = [];
  const defaults: Backend = {
    account: async () => sampleAccount(),
    signIn: async () => sampleAccount(),
    signOut: async () => signedOutAccount(),
    catalog: async () => sampleCatalog(),
    connectionDetails: async (app) => sampleDetails(app),
    openTerminal: async () => {},
    sqlShell: async () => {},
    showLogs: async () => {},
    openSite: async () => "https://main-abc123.example.com/",
    databaseClients: async () => [
      { client: "dbeaver", title: "DBeaver" },
      { client: "terminal", title: "Terminal" },
    ],
    openIn: async () => {},
    copyAs: async () => {},
    dumpDatabase: async () => ({ path: "/home/me/Downloads/abc123--main--db--main--dump.sql", bytes: 1234 }),
    openTunnels: async () => ({ tunnels: [sampleTunnel()], failed: [] }),
    tunnels: async () => [sampleTunnel()],
    closeTunnel: async () => {},
    closeAllTunnels: async () => {},
    reopenTunnels: async () => ({ tunnels: [], failed: [] }),
    tunnelExport: async () => "export PLATFORM_RELATIONSHIPS=e30=",
    copy: async () => {},
    setPinned: async () => {},
    settings: async () => sampleSettings(),
    saveSettings: async (settings) => ({ ...sampleSettings(), settings }),
    useTokenStore: async () => sampleAccount(),
    welcome: async () => sampleWelcome({ under_way: false }),
    welcomeStep: async () => sampleWelcome(),
    shell: async () => ({ version: "0.1.0", commit: "0000000", tray_host: true }),
    quit: async () => {},
    onChanged: async (cb) => {
      changed.push(cb);
      return () => changed.splice(changed.indexOf(cb) >>> 0, 1);
    },
    onNavigate: async (cb) => {
      navigate.push(cb);
      return () => navigate.splice(navigate.indexOf(cb) >>> 0, 1);
    },
    switcherItems: async () => sampleSwitcherItems(),
    switcherRun: async () => {},
    doctor: async () => sampleReport(),
    productionProjects: async () => [{ id: "abc123", title: "Shop", environments: ["Main [PRODUCTION]"], guarded: true }],
    closeSwitcher: async () => {},
    openSwitcher: async () => {},
    switcherShortcut: async () => ({ shortcut: "Ctrl+Alt+Space", registered: true, problem: null, wayland: false }),
    onSwitcherReset: async (cb) => {
      reset.push(cb);
      return () => reset.splice(reset.indexOf(cb) >>> 0, 1);
    },
  };
  const calls: Call[] = [];
  const recorded = {} as Record<keyof Backend, (...args: unknown[]) => unknown>;
  for (const method of Object.keys(defaults) as Array<keyof Backend>) {
    const impl = (overrides[method] ?? defaults[method]) as (...args: unknown[]) => unknown;
    recorded[method] = (...args: unknown[]) => {
      calls.push({ method, args });
      return impl(...args);
    };
  }
  return {
    ...(recorded as unknown as Backend),
    calls,
    callsTo: (method) => calls.filter((c) => c.method === method).map((c) => c.args),
    emitChanged: () => [...changed].forEach((cb) => cb()),
    emitNavigate: (view) => [...navigate].forEach((cb) => cb(view)),
    emitSwitcherReset: () => [...reset].forEach((cb) => cb()),
  };
}
