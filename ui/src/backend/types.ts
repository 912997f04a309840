/** A platform Tether can reach (mirrors tether-core's `Profile`). */
export interface Profile {
  name: string;
  title: string;
  api_url: string;
  auth_url: string;
  client_id: string;
  token_env_var: string;
  ssh_host_patterns: string[];
  ssh?: { hostname: string; port: number; host_keys: string[] };
}

/** How an IPC error crosses from the shell. */
export interface BackendError {
  code: string;
  message: string;
}

/** Everything the UI may ask of the app. */
export interface Backend {
  profiles(): Promise<Profile[]>;
}
