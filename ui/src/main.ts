import { tauriBackend } from "./backend";
import { render } from "./view";

const root = document.getElementById("app");
if (root) {
  void render(root, tauriBackend);
}
