import { getCurrentWindow } from "@tauri-apps/api/window";
import { tauriBackend } from "./backend";
import { startApp } from "./app";
import { startSwitcher } from "./views/switcher";

/** The window this page is in: the quick switcher's own (`switcher`), or the main window. */
function windowLabel(): string {
  try {
    return getCurrentWindow().label;
  } catch {
    return "main";
  }
}

const root = document.getElementById("app");
if (root) {
  if (windowLabel() === "switcher") void startSwitcher(root, tauriBackend);
  else void startApp(root, tauriBackend);
}
