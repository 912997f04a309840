import { afterEach, describe, expect, it } from "vitest";
import type { OpenedView, ProjectView } from "../backend/types";
import { sampleCatalog, sampleTunnel } from "../backend/mock";
import { $, click, key, mount, settle, type Mounted } from "../test-utils";

let m: Mounted | undefined;
afterEach(() => m?.app.destroy());

const web = { project: "abc123", environment: "main", app: "web" };
const row = (root: ParentNode, app: string) => $(root, `[data-app="${app}"]`);
const apps = (root: ParentNode) => [...root.querySelectorAll<HTMLElement>("[data-app]")].map((r) => r.dataset.app);

function type(root: ParentNode, text: string): void {
  const search = $(root, "#search") as HTMLInputElement;
  search.value = text;
  search.dispatchEvent(new Event("input", { bubbles: true }));
}

describe("environments view", () => {
  it("is the default view when signed in, with the Environments tab current", async () => {
    m = await mount();
    expect($(m.root, "#nav-environments").getAttribute("aria-current")).toBe("page");
    expect($(m.root, "#nav-tunnels").hasAttribute("aria-current")).toBe(false);
    expect(m.backend.callsTo("catalog")).toEqual([[false]]);
  });

  it("says it is loading until the catalog arrives", async () => {
    let resolve: (p: ProjectView[]) => void = () => {};
    m = await mount({ catalog: () => new Promise((r) => (resolve = r)) });
    expect($(m.root, "#results").textContent).toContain("Loading projects…");
    expect($(m.root, "#results").getAttribute("aria-busy")).toBe("true");
    resolve(sampleCatalog());
    await settle();
    expect($(m.root, "#results").textContent).not.toContain("Loading projects…");
    expect(apps(m.root).length).toBe(3);
  });

  it("lists pinned apps first, then projects → environments → apps", async () => {
    m = await mount();
    expect(apps(m.root)).toEqual(["abc123/main/worker", "abc123/main/web", "def456/staging/app"]);
    expect($(m.root, ".group-pinned").textContent).toContain("Pinned");
    expect($(m.root, ".group-pinned").contains(row(m.root, "abc123/main/worker"))).toBe(true);
  });

  it("badges environment statuses and says which are not running", async () => {
    m = await mount();
    const main = $(m.root, '[data-environment="abc123/main"]');
    expect($(main, "[data-field=status]").textContent).toBe("active");
    expect($(main, "[data-field=status]").className).toContain("badge-ok");
    const paused = $(m.root, '[data-environment="abc123/feature-x"]');
    expect($(paused, "[data-field=status]").className).toContain("badge-warn");
    expect(paused.textContent).toContain("not running, no SSH");
    expect(paused.querySelector("[data-app]")).toBeNull();
    expect($($(m.root, '[data-environment="def456/old"]'), "[data-field=status]").className).toContain("badge-off");
  });

  it("filters as one types, and says when nothing matches", async () => {
    m = await mount();
    type(m.root, "blog app");
    expect(apps(m.root)).toEqual(["def456/staging/app"]);
    type(m.root, "SHOP wor");
    expect(apps(m.root)).toEqual(["abc123/main/worker"]);
    type(m.root, "zzz");
    expect(apps(m.root)).toEqual([]);
    expect($(m.root, "#no-results").textContent).toBe("Nothing matches “zzz”.");
  });

  it("focuses the search on / and clears it on Escape", async () => {
    m = await mount();
    key(document.body, "/");
    const search = $(m.root, "#search") as HTMLInputElement;
    expect(document.activeElement).toBe(search);
    type(m.root, "blog");
    key(search, "Escape");
    expect(search.value).toBe("");
    expect(apps(m.root).length).toBe(3);
  });

  it("refreshes the catalog from the platform", async () => {
    m = await mount();
    await click(m.root, "#refresh");
    expect(m.backend.callsTo("catalog")).toEqual([[false], [true]]);
  });

  it("opens a terminal on the app", async () => {
    m = await mount();
    await click(row(m.root, "abc123/main/web"), "[data-action=terminal]");
    expect(m.backend.callsTo("openTerminal")).toEqual([[web, undefined]]);
  });

  it("marks production and names every environment's type", async () => {
    m = await mount();
    const main = $(m.root, '[data-environment="abc123/main"]');
    expect($(main, "[data-field=type]").textContent).toBe("PRODUCTION");
    expect(main.className).toContain("is-production");
    expect($($(m.root, '[data-environment="def456/staging"]'), "[data-field=type]").textContent).toBe("staging");
    expect($($(m.root, '[data-environment="abc123/feature-x"]'), "[data-field=type]").textContent).toBe("development");
    // The pinned app's label carries the mark too.
    expect($(row(m.root, "abc123/main/worker"), ".app-context").textContent).toBe("Shop · Main [PRODUCTION]");
  });

  it("asks before production, and does nothing on a no", async () => {
    const asked = "main is the PRODUCTION environment of project abc123. Are you sure you want to open a SQL shell on it?";
    m = await mount({
      sqlShell: async (_app, _rel, confirmed) => {
        if (!confirmed) throw { code: "confirm", message: asked };
      },
    });
    await click(row(m.root, "abc123/main/web"), "[data-action=sql-shell]");
    expect($(document.body, "#production-question-text").textContent).toBe(asked);
    expect(document.activeElement).toBe($(document.body, "#production-no"));
    await click(document.body, "#production-no");
    expect(document.querySelector("#production-question")).toBeNull();
    expect(m.backend.callsTo("sqlShell")).toEqual([[web, null, undefined]]);
    // Yes: the same call again, confirmed.
    await click(row(m.root, "abc123/main/web"), "[data-action=sql-shell]");
    await click(document.body, "#production-yes");
    expect(m.backend.callsTo("sqlShell")).toEqual([
      [web, null, undefined],
      [web, null, undefined],
      [web, null, true],
    ]);
    expect(m.root.querySelector("[role=alert]")?.textContent ?? "").toBe("");
  });

  it("Escape answers no to the production question", async () => {
    m = await mount({ dumpDatabase: async () => Promise.reject({ code: "confirm", message: "Sure?" }) });
    await click(row(m.root, "abc123/main/web"), "[data-action=dump]");
    key($(document.body, "#production-question"), "Escape");
    await new Promise((r) => setTimeout(r, 0));
    expect(document.querySelector("#production-question")).toBeNull();
    expect(m.backend.callsTo("dumpDatabase")).toEqual([[web, null, undefined]]);
  });

  it("offers the database clients found and the copy forms, each in its menu", async () => {
    m = await mount();
    const r = row(m.root, "abc123/main/web");
    const openIn = $(r, '[data-menu="open-in"]');
    expect(openIn.hidden).toBe(true);
    await click(r, '[data-menu-toggle="open-in"]');
    expect(openIn.hidden).toBe(false);
    expect([...openIn.querySelectorAll("button")].map((b) => b.textContent)).toEqual(["DBeaver", "Terminal (psql, mysql, redis-cli)"]);
    await click(openIn, '[data-client="dbeaver"]');
    expect(openIn.hidden).toBe(true);
    expect(m.backend.callsTo("openIn")).toEqual([[web, "dbeaver", null, undefined]]);
    await click(r, '[data-menu-toggle="copy-as"]');
    expect([...$(r, '[data-menu="copy-as"]').querySelectorAll("button")].map((b) => b.textContent)).toEqual([
      "URL",
      "Command line (psql, mysql, redis-cli)",
      "JDBC URL",
      "Environment variables",
    ]);
    await click(r, '[data-form="jdbc"]');
    expect(m.backend.callsTo("copyAs")).toEqual([[web, "jdbc", null, undefined]]);
  });

  it("says where a dump was saved, and runs logs and the site", async () => {
    m = await mount();
    const r = row(m.root, "abc123/main/web");
    await click(r, "[data-action=dump]");
    const toasts = () => [...m!.root.querySelectorAll("[role=status]")].map((t) => t.textContent);
    expect(toasts()).toContain("Saved the dump to /home/me/Downloads/abc123--main--db--main--dump.sql (1.2 kB)");
    // The row was drawn again when the dump ended.
    await click(row(m.root, "abc123/main/web"), "[data-action=logs]");
    await click(row(m.root, "abc123/main/web"), "[data-action=open-site]");
    expect(m.backend.callsTo("showLogs")).toEqual([[web]]);
    expect(toasts()).toContain("Opened https://main-abc123.example.com/");
  });

  it("copies the SSH command and user@host, and confirms", async () => {
    m = await mount();
    await click(row(m.root, "abc123/main/web"), "[data-action=copy-ssh]");
    await click(row(m.root, "abc123/main/web"), "[data-action=copy-address]");
    expect(m.backend.callsTo("copy")).toEqual([
      ["ssh abc123-main--web@ssh.eu-3.platform.sh", "SSH command", false],
      ["abc123-main--web@ssh.eu-3.platform.sh", "SSH address", false],
    ]);
    const toasts = [...m.root.querySelectorAll("[role=status]")].map((t) => t.textContent);
    expect(toasts).toContain("Copied SSH command");
    expect(toasts).toContain("Copied SSH address");
  });

  it("opens tunnels, then shows them with what failed", async () => {
    const opened: OpenedView = {
      tunnels: [sampleTunnel()],
      failed: [{ relationship: "cache", message: "the service does not answer" }],
    };
    m = await mount({ openTunnels: async () => opened });
    await click(row(m.root, "abc123/main/web"), "[data-action=tunnels]");
    expect(m.backend.callsTo("openTunnels")).toEqual([[web, undefined]]);
    expect($(m.root, "#nav-tunnels").getAttribute("aria-current")).toBe("page");
    expect(m.root.querySelector('[data-tunnel="1"]')).not.toBeNull();
    expect($(m.root, "[role=alert]").textContent).toContain("cache: the service does not answer");
  });

  it("shows a failure to open tunnels and stays", async () => {
    m = await mount({ openTunnels: () => Promise.reject({ code: "sign_in", message: "the session ended" }) });
    await click(row(m.root, "abc123/main/web"), "[data-action=tunnels]");
    expect($(m.root, "[role=alert]").textContent).toBe("You need to sign in again. The session ended.");
    expect($(m.root, "#nav-environments").getAttribute("aria-current")).toBe("page");
  });

  it("pins and unpins apps", async () => {
    m = await mount();
    await click(row(m.root, "abc123/main/web"), "[data-action=pin]");
    expect(m.backend.callsTo("setPinned")).toEqual([[web, true]]);
    expect($(m.root, ".group-pinned").contains(row(m.root, "abc123/main/web"))).toBe(true);
    expect(document.activeElement).toBe($(row(m.root, "abc123/main/web"), "[data-action=pin]"));
    await click(row(m.root, "abc123/main/worker"), "[data-action=pin]");
    expect(m.backend.callsTo("setPinned")[1]).toEqual([{ project: "abc123", environment: "main", app: "worker" }, false]);
    expect($(row(m.root, "abc123/main/worker"), "[data-action=pin]").getAttribute("aria-pressed")).toBe("false");
  });

  it("opens the connection details of the app", async () => {
    m = await mount();
    await click(row(m.root, "def456/staging/app"), "[data-action=details]");
    expect(m.backend.callsTo("connectionDetails")).toEqual([[{ project: "def456", environment: "staging", app: "app" }]]);
    expect(m.root.querySelector("#details")).not.toBeNull();
  });

  it("shows a catalog failure in words", async () => {
    m = await mount({ catalog: () => Promise.reject({ code: "unreachable", message: "no route to host" }) });
    expect($(m.root, "[role=alert]").textContent).toBe("Cannot reach the platform. No route to host.");
    expect($(m.root, "#results").textContent).toContain("could not be loaded");
  });

  it("says when the account has no projects", async () => {
    m = await mount({ catalog: async () => [] });
    expect($(m.root, "#results").textContent).toContain("No projects on this account.");
  });
});

describe("a project whose organization demands MFA", () => {
  it("says why and signs in with MFA in a window, then lists it again", async () => {
    m = await mount();
    const project = m.root.querySelector("[data-project=vault1]");
    expect(project?.querySelector("[data-field=problem]")?.textContent).toContain("multi-factor");
    (project?.querySelector("[data-action=step-up]") as HTMLButtonElement).click();
    await settle();
    expect(m.backend.callsTo("signIn")).toEqual([[{ mfa: true, method: "window" }]]);
    expect(m.backend.callsTo("catalog").at(-1)).toEqual([true]);
  });
});
