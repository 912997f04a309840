import { afterEach, describe, expect, it } from "vitest";
import { $, click, key, mount, settle, type Mounted } from "../test-utils";
import { MASK } from "./details";

let m: Mounted | undefined;
afterEach(() => m?.app.destroy());

async function openDetails(overrides = {}): Promise<HTMLElement> {
  m = await mount(overrides);
  await click($(m.root, '[data-app="abc123/main/web"]'), "[data-action=details]");
  return $(m.root, "#details");
}

describe("connection details panel", () => {
  it("is a dialog with the SSH details", async () => {
    const d = await openDetails();
    expect(d.getAttribute("role")).toBe("dialog");
    expect($(m!.root, ".topbar").hasAttribute("inert")).toBe(true);
    expect($(d, "[data-field=ssh_host]").textContent).toBe("ssh.eu-3.platform.sh");
    expect($(d, "[data-field=ssh_port]").textContent).toBe("22");
    expect($(d, "[data-field=ssh_user]").textContent).toBe("abc123-main--web");
    expect($(d, "[data-field=key_file]").textContent).toBe("/home/ada/.tether/id_ed25519");
    expect($(d, "[data-field=certificate_file]").textContent).toBe("/home/ada/.tether/id_ed25519-cert.pub");
  });

  it("lists each service's endpoint", async () => {
    const d = await openDetails();
    const db = $(d, '[data-service="database"]');
    expect($(db, "[data-field=host]").textContent).toBe("database.internal");
    expect($(db, "[data-field=port]").textContent).toBe("3306");
    expect($(db, "[data-field=username]").textContent).toBe("user");
    expect($(db, "[data-field=path]").textContent).toBe("main");
    expect($(db, "[data-field=scheme]").textContent).toBe("mysql");
  });

  it("masks the password until revealed, and copies the real one either way", async () => {
    const d = await openDetails();
    const db = $(d, '[data-service="database"]');
    const password = $(db, "[data-field=password]");
    expect(password.textContent).toBe(MASK);
    expect(d.textContent).not.toContain("s3cret");
    const row = password.closest(".detail-row")!;
    await click(row, "[data-action=copy]");
    expect(m!.backend.callsTo("copy")).toEqual([["s3cret", "database password", true]]);
    await click(row, "[data-action=reveal]");
    expect(password.textContent).toBe("s3cret");
    expect($(row, "[data-action=reveal]").getAttribute("aria-pressed")).toBe("true");
    await click(row, "[data-action=copy]");
    expect(m!.backend.callsTo("copy")[1]).toEqual(["s3cret", "database password", true]);
    await click(row, "[data-action=reveal]");
    expect(password.textContent).toBe(MASK);
  });

  it("copies each SSH value with its name", async () => {
    const d = await openDetails();
    await click($(d, "[data-field=ssh_host]").closest(".detail-row")!, "[data-action=copy]");
    await click($(d, "[data-field=ssh_port]").closest(".detail-row")!, "[data-action=copy]");
    expect(m!.backend.callsTo("copy")).toEqual([
      ["ssh.eu-3.platform.sh", "SSH host", false],
      ["22", "SSH port", false],
    ]);
    expect([...m!.root.querySelectorAll("[role=status]")].map((s) => s.textContent)).toContain("Copied SSH host");
  });

  it("closes on × and gives the focus back", async () => {
    const d = await openDetails();
    const from = $(m!.root, '[data-app="abc123/main/web"] [data-action=details]');
    await click(d, "[data-action=close]");
    expect(m!.root.querySelector("#details")).toBeNull();
    expect(m!.root.querySelector("[inert]")).toBeNull();
    expect(document.activeElement).toBe(from);
  });

  it("closes on Escape", async () => {
    const d = await openDetails();
    key($(d, "[data-action=close]"), "Escape");
    await settle();
    expect(m!.root.querySelector("#details")).toBeNull();
    // And from outside the dialog too.
    await click($(m!.root, '[data-app="abc123/main/web"]'), "[data-action=details]");
    key(document.body, "Escape");
    expect(m!.root.querySelector("#details")).toBeNull();
  });

  it("says why the details could not be read", async () => {
    const d = await openDetails({ connectionDetails: () => Promise.reject({ code: "step_up_mfa", message: "sign in with MFA" }) });
    expect($(d, "[role=alert]").textContent).toBe("This needs multi-factor authentication. Sign in with MFA.");
  });
});

describe("a service's own actions", () => {
  it("run for that relationship, and ask first when the app asks", async () => {
    const web = { project: "abc123", environment: "main", app: "web" };
    const d = await openDetails({
      sqlShell: async (_app: unknown, _rel: unknown, confirmed?: boolean) => {
        if (!confirmed) throw { code: "confirm", message: "main is the PRODUCTION environment. Sure?" };
      },
    });
    const db = $(d, '[data-service="database"]');
    await click(db, "[data-action=sql-shell]");
    expect($(document.body, "#production-question-text").textContent).toContain("PRODUCTION");
    await click(document.body, "#production-yes");
    expect(m!.backend.callsTo("sqlShell")).toEqual([
      [web, "database", undefined],
      [web, "database", true],
    ]);
    await click(db, '[data-menu-toggle="copy-as-database"]');
    await click(db, '[data-form="jdbc"]');
    expect(m!.backend.callsTo("copyAs")).toEqual([[web, "jdbc", "database", undefined]]);
    await click(db, "[data-action=dump]");
    expect(m!.backend.callsTo("dumpDatabase")).toEqual([[web, "database", undefined]]);
  });
});
