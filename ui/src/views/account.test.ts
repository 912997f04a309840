import { afterEach, describe, expect, it } from "vitest";
import { NOW, sampleAccount } from "../backend/mock";
import { $, click, mount, type Mounted } from "../test-utils";
import { accountStrip } from "./account";

let m: Mounted | undefined;
afterEach(() => m?.app.destroy());

describe("account strip", () => {
  it("shows the user, the certificate's time left and MFA", async () => {
    m = await mount();
    const strip = $(m.root, "#account");
    expect(strip.textContent).toContain("Ada Lovelace");
    expect(strip.textContent).toContain("ada@example.com");
    expect($(strip, "[data-field=certificate]").textContent).toMatch(/^Certificate valid until \d\d:\d\d \(3h 25m left\)$/);
    expect($(strip, "[data-field=mfa]").textContent).toBe("MFA");
    expect($(m.root, "#account-state").textContent).toBe("Signed in");
  });

  it("has no MFA badge without MFA and falls back to the username", () => {
    const a = sampleAccount({
      user: { username: "ada", display_name: "", email: "ada@example.com" },
      certificate: { valid_before: NOW + 600, has_mfa: false, path: "/c" },
    });
    const strip = accountStrip(a, NOW, () => {});
    expect(strip.element.querySelector("[data-field=mfa]")).toBeNull();
    expect(strip.element.querySelector("[data-field=name]")?.textContent).toBe("ada");
    expect(strip.element.querySelector("[data-field=certificate]")?.textContent).toContain("(10m left)");
    strip.tick(NOW + 300);
    expect(strip.element.querySelector("[data-field=certificate]")?.textContent).toContain("(5m left)");
  });

  it("signs out, then offers to sign in again", async () => {
    m = await mount();
    await click(m.root, "#sign-out");
    expect(m.backend.callsTo("signOut")).toHaveLength(1);
    expect(m.root.querySelector("#account")).toBeNull();
    expect(m.root.querySelector("#sign-in")).not.toBeNull();
  });

  it("shows a failed sign-out", async () => {
    m = await mount({ signOut: () => Promise.reject({ code: "other", message: "agent gone" }) });
    await click(m.root, "#sign-out");
    expect($(m.root, "[role=alert]").textContent).toBe("Something went wrong. Agent gone.");
  });
});
