// The one way the UI reaches the app: every IPC call goes through here.
import { invoke } from "@tauri-apps/api/core";
import type { Backend, BackendError, Profile } from "./types";

export type { Backend, BackendError, Profile } from "./types";

function asBackendError(e: unknown): BackendError {
  if (typeof e === "object" && e !== null && "code" in e && "message" in e) {
    return e as BackendError;
  }
  return { code: "unknown", message: String(e) };
}

async function call<T>(command: string, args?: Record<string, unknown>): Promise<T> {
  try {
    return await invoke<T>(command, args);
  } catch (e) {
    throw asBackendError(e);
  }
}

export const tauriBackend: Backend = {
  profiles: () => call<Profile[]>("profiles"),
};
