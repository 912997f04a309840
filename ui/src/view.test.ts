// @vitest-environment happy-dom
import { describe, expect, it } from "vitest";
import { mockBackend } from "./backend/mock";
import { render } from "./view";

const platformsh = {
  name: "platformsh",
  title: "Platform.sh",
  api_url: "https://api.platform.sh/",
  auth_url: "https://auth.api.platform.sh/",
  client_id: "platform-cli",
  token_env_var: "PLATFORMSH_CLI_TOKEN",
  ssh_host_patterns: ["*.platform.sh"],
};

describe("home screen", () => {
  it("lists the platforms the backend reports", async () => {
    const root = document.createElement("main");
    await render(root, mockBackend([platformsh]));
    const items = root.querySelectorAll("[data-profile]");
    expect(items).toHaveLength(1);
    expect(items[0].textContent).toContain("Platform.sh");
    expect(items[0].textContent).toContain("*.platform.sh");
  });

  it("shows a backend error instead of an empty list", async () => {
    const root = document.createElement("main");
    const failing = { profiles: () => Promise.reject({ code: "io", message: "cannot read profiles" }) };
    await render(root, failing);
    expect(root.querySelector("[role=alert]")?.textContent).toBe("cannot read profiles (io)");
  });
});
