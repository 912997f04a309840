// What every view gets from the app shell: the backend and the shared ways to speak to the user.
import type { AppRef, Backend, OpenedView } from "./backend/types";

export type ViewName = "environments" | "tunnels" | "settings";

export interface Context {
  backend: Backend;
  /** A transient `[role=status]` message ("Copied SSH command"). */
  toast(message: string): void;
  /** A caught error, in words, in the `[role=alert]` banner. */
  showError(e: unknown): void;
  clearError(): void;
  /** Copies through Rust, confirms with "Copied <label>", shows a failure. */
  /** `secret`: a password, a URL with credentials or the export line, cleared from the clipboard after a while. */
  copy(text: string, label: string, secret?: boolean): Promise<void>;
  navigate(view: ViewName): void;
  /** Tunnels were opened for an app: show them, and what could not be opened. */
  showOpened(opened: OpenedView): void;
  /** Opens the connection details panel; focus returns to `from` when it closes. */
  openDetails(app: AppRef, from?: HTMLElement): void;
}
