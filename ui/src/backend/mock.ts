// A backend for unit tests: canned answers, no IPC.
import type { Backend, Profile } from "./types";

export function mockBackend(profiles: Profile[]): Backend {
  return { profiles: async () => profiles };
}
