import { tauriBackend } from "./backend";
import { startApp } from "./app";

const root = document.getElementById("app");
if (root) {
  void startApp(root, tauriBackend);
}
