// What the window says of the app around it: a notice while no tray shows Tether's icon (the
// window is then the app's only surface), and the build in the footer.
import type { Backend, ShellView } from "../backend/types";
import { button, el } from "../dom";

/** The GNOME extension that gives the desktop a tray (a StatusNotifierWatcher). */
export const TRAY_EXTENSION = "AppIndicator and KStatusNotifierItem Support";

export function buildText(shell: ShellView): string {
  return `Tether ${shell.version} (${shell.commit})`;
}

/** `#tray-notice` (only without a tray) and the `#about` footer, kept up to date by `refresh`. */
export class ShellInfo {
  readonly notice: HTMLElement;
  readonly footer: HTMLElement;

  constructor(
    private backend: Backend,
    private showError: (e: unknown) => void,
  ) {
    this.notice = el(
      "section",
      { id: "tray-notice", class: "note tray-notice", "aria-labelledby": "tray-notice-title", hidden: true },
      el("h2", { id: "tray-notice-title", class: "tray-notice-title" }, "No tray icon on this desktop"),
      el(
        "p",
        {},
        "Your desktop shows no tray icons, so Tether lives in this window: closing it only hides it, " +
          "and starting Tether again brings it back. Your session and tunnels keep working meanwhile.",
      ),
      el(
        "p",
        {},
        "On GNOME, the \u201c",
        el("strong", {}, TRAY_EXTENSION),
        "\u201d extension adds tray icons: once it is on, Tether's icon appears by itself.",
      ),
      button("Quit Tether", { id: "quit", class: "btn btn-small" }, () => void this.quit()),
    );
    this.footer = el("footer", { id: "about", class: "muted small about" });
  }

  /** Reads the app's build and whether a tray hosts it. */
  async refresh(): Promise<void> {
    try {
      const shell = await this.backend.shell();
      this.notice.hidden = shell.tray_host;
      this.footer.textContent = buildText(shell);
    } catch (e) {
      this.showError(e);
    }
  }

  private async quit(): Promise<void> {
    try {
      await this.backend.quit();
    } catch (e) {
      this.showError(e);
    }
  }
}
