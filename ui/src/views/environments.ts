// The environments view: search, projects → environments → apps, and what to do with an app.
import type { AppView, ClientView, Client, CopyForm, EnvironmentView, ProjectView } from "../backend/types";
import type { Context } from "../context";
import { button, el } from "../dom";
import { appKey } from "../format";
import { filterCatalog, pinnedApps, withoutPinned } from "../search";
import { appMenu, copyAsItems, openInItems, size, withConfirmation } from "./workflow";

/** The environment's type as its tag says it: PRODUCTION stands out, the others are named. */
export function typeTag(kind: string): HTMLElement | null {
  if (kind === "production") return el("span", { class: "tag tag-production", "data-field": "type" }, "PRODUCTION");
  if (kind === "staging" || kind === "development") return el("span", { class: `tag tag-${kind}`, "data-field": "type" }, kind);
  return null;
}

/** An environment's name with its type, as every label shows it (the tray's way):
 * `main [PRODUCTION]`, `staging (staging)`, `feature-x (development)`. */
export function environmentLabel(name: string, kind: string): string {
  if (kind === "production") return `${name} [PRODUCTION]`;
  if (kind === "staging" || kind === "development") return `${name} (${kind})`;
  return name;
}

/** The badge class of an environment status: active green, paused amber, the rest grey. */
export function statusClass(status: string): string {
  if (status === "active") return "badge badge-ok";
  if (status === "paused") return "badge badge-warn";
  return "badge badge-off";
}

export class EnvironmentsView {
  readonly element: HTMLElement;
  private readonly search: HTMLInputElement;
  private readonly refreshButton: HTMLButtonElement;
  private readonly results: HTMLElement;
  private catalog: ProjectView[] | null = null;
  private loading: Promise<void> | null = null;
  private opening = new Set<string>();
  /** Apps whose dump is under way. */
  private dumping = new Set<string>();
  /** The database clients found on this machine ("Open in…"). */
  private clients: ClientView[] = [];
  private failed = false;
  private busy = false;

  constructor(private ctx: Context) {
    this.search = el("input", {
      id: "search",
      type: "search",
      class: "input search",
      placeholder: "Search projects, environments, apps",
      "aria-label": "Search projects, environments and apps",
      "aria-keyshortcuts": "/",
      autocomplete: "off",
      spellcheck: "false",
    });
    this.search.addEventListener("input", () => this.render());
    this.search.addEventListener("keydown", (e) => {
      if (e.key === "Escape" && this.search.value) {
        e.stopPropagation();
        this.search.value = "";
        this.render();
      }
    });
    this.refreshButton = button("Refresh", { id: "refresh", class: "btn btn-small", title: "Reload the projects from the platform" }, () =>
      void this.load(true),
    );
    this.results = el("div", { class: "results", id: "results" });
    this.element = el(
      "section",
      { class: "view view-environments", id: "view-environments", "aria-label": "Environments" },
      el("div", { class: "toolbar" }, this.search, this.refreshButton),
      this.results,
    );
    this.results.addEventListener("click", (e) => this.onClick(e));
    this.render();
  }

  /** Loads the catalog the first time the view is shown. */
  show(): void {
    if (this.catalog === null && this.loading === null) void this.load(false);
  }

  focusSearch(): void {
    this.search.focus();
    this.search.select();
  }

  /** Forgets the catalog (after signing out), so the next show loads it again. */
  reset(): void {
    this.catalog = null;
    this.failed = false;
    this.render();
  }

  load(refresh: boolean): Promise<void> {
    if (this.loading) return this.loading;
    this.busy = true;
    this.refreshButton.disabled = true;
    this.render();
    this.loading = (async () => {
      try {
        const clients = this.ctx.backend.databaseClients().catch(() => [] as ClientView[]);
        this.catalog = await this.ctx.backend.catalog(refresh);
        this.clients = await clients;
        this.failed = false;
      } catch (e) {
        this.failed = true;
        this.ctx.showError(e);
      } finally {
        this.loading = null;
        this.busy = false;
        this.refreshButton.disabled = false;
        this.render();
      }
    })();
    return this.loading;
  }

  private find(key: string): AppView | undefined {
    for (const p of this.catalog ?? []) {
      for (const env of p.environments) {
        for (const app of env.apps) if (appKey(app.app) === key) return app;
      }
    }
    return undefined;
  }

  /** Signs in with MFA for a project whose organization demands it, then lists it again. */
  async stepUp(from: HTMLButtonElement): Promise<void> {
    from.disabled = true;
    try {
      await this.ctx.backend.signIn({ mfa: true, method: "window" });
      await this.load(true);
    } catch (e) {
      this.ctx.showError(e);
    } finally {
      from.disabled = false;
    }
  }

  private onClick(e: Event): void {
    const target = (e.target as HTMLElement).closest<HTMLButtonElement>("button[data-action]");
    const row = target?.closest<HTMLElement>("[data-app]");
    if (!target || !row) return;
    const app = this.find(row.dataset.app ?? "");
    if (app) void this.act(target.dataset.action ?? "", app, target);
  }

  /** The environment's type, from the catalog. */
  private kindOf(app: AppView): string {
    const project = this.catalog?.find((p) => p.id === app.app.project);
    return project?.environments.find((e) => e.id === app.app.environment)?.kind ?? "";
  }

  private async act(action: string, app: AppView, from: HTMLButtonElement): Promise<void> {
    const { backend } = this.ctx;
    switch (action) {
      case "terminal":
        try {
          await withConfirmation((yes) => backend.openTerminal(app.app, yes));
        } catch (e) {
          this.ctx.showError(e);
        }
        return;
      case "sql-shell":
        try {
          await withConfirmation((yes) => backend.sqlShell(app.app, null, yes));
        } catch (e) {
          this.ctx.showError(e);
        }
        return;
      case "logs":
        try {
          await backend.showLogs(app.app);
        } catch (e) {
          this.ctx.showError(e);
        }
        return;
      case "open-site":
        try {
          const url = await backend.openSite(app.app);
          this.ctx.toast(`Opened ${url}`);
        } catch (e) {
          this.ctx.showError(e);
        }
        return;
      case "open-in":
        try {
          const client = from.dataset.client as Client;
          await withConfirmation((yes) => backend.openIn(app.app, client, null, yes));
        } catch (e) {
          this.ctx.showError(e);
        }
        return;
      case "copy-as":
        try {
          const form = from.dataset.form as CopyForm;
          await withConfirmation((yes) => backend.copyAs(app.app, form, null, yes));
        } catch (e) {
          this.ctx.showError(e);
        }
        return;
      case "dump": {
        const key = appKey(app.app);
        if (this.dumping.has(key)) return;
        this.dumping.add(key);
        this.render();
        try {
          const done = await withConfirmation((yes) => backend.dumpDatabase(app.app, null, yes));
          if (done) this.ctx.toast(`Saved the dump to ${done.path} (${size(done.bytes)})`);
        } catch (e) {
          this.ctx.showError(e);
        } finally {
          this.dumping.delete(key);
          this.render();
        }
        return;
      }
      case "copy-ssh":
        return this.ctx.copy(app.ssh_command, "SSH command");
      case "copy-address":
        return this.ctx.copy(app.ssh_address, "SSH address");
      case "details":
        this.ctx.openDetails(app.app, from);
        return;
      case "tunnels": {
        const key = appKey(app.app);
        if (this.opening.has(key)) return;
        this.opening.add(key);
        this.render();
        try {
          const opened = await withConfirmation((yes) => backend.openTunnels(app.app, yes));
          if (opened) this.ctx.showOpened(opened);
        } catch (e) {
          this.ctx.showError(e);
        } finally {
          this.opening.delete(key);
          this.render();
        }
        return;
      }
      case "pin":
        try {
          await backend.setPinned(app.app, !app.pinned);
          app.pinned = !app.pinned;
          this.render();
          this.element.querySelector<HTMLElement>(`[data-app="${cssEscape(appKey(app.app))}"] [data-action="pin"]`)?.focus();
        } catch (e) {
          this.ctx.showError(e);
        }
        return;
    }
  }

  private render(): void {
    if (this.catalog === null) {
      this.results.setAttribute("aria-busy", String(this.busy));
      this.results.replaceChildren(
        !this.failed
          ? el("p", { class: "loading", id: "catalog-loading" }, el("span", { class: "spinner", "aria-hidden": "true" }), "Loading projects…")
          : el("p", { class: "empty" }, "The projects could not be loaded. ", button("Try again", { class: "btn-link" }, () => void this.load(true))),
      );
      return;
    }
    this.results.setAttribute("aria-busy", String(this.busy));
    const query = this.search.value;
    const found = filterCatalog(this.catalog, query);
    const children: HTMLElement[] = [];
    if (this.busy) {
      children.push(el("p", { class: "loading loading-inline" }, el("span", { class: "spinner", "aria-hidden": "true" }), "Refreshing…"));
    }
    if (this.catalog.length === 0) {
      children.push(el("p", { class: "empty" }, "No projects on this account."));
    } else if (found.length === 0) {
      children.push(el("p", { class: "empty", id: "no-results" }, `Nothing matches “${query.trim()}”.`));
    } else {
      const pinned = pinnedApps(found);
      if (pinned.length > 0) {
        children.push(
          el(
            "section",
            { class: "group group-pinned", "aria-labelledby": "pinned-title" },
            el("h2", { class: "group-title", id: "pinned-title" }, "Pinned"),
            el(
              "ul",
              { class: "apps" },
              ...pinned.map((p) =>
                this.appRow(p.app, `${p.project.title} · ${environmentLabel(p.environment.title || p.environment.id, p.environment.kind)}`),
              ),
            ),
          ),
        );
      }
      for (const project of withoutPinned(found)) children.push(this.projectGroup(project));
    }
    this.results.replaceChildren(...children);
  }

  private projectGroup(project: ProjectView): HTMLElement {
    const titleId = `project-${project.id}`;
    return el(
      "section",
      { class: "group project", "data-project": project.id, "aria-labelledby": titleId },
      el(
        "h2",
        { class: "group-title", id: titleId },
        el("span", { class: "project-title" }, project.title || project.id),
        el("span", { class: "muted project-id" }, project.id),
      ),
      project.problem
        ? el(
            "div",
            { class: "project-problem" },
            el("p", { class: "muted", "data-field": "problem" }, project.problem.message),
            project.problem.code === "step_up_mfa"
              ? button("Sign in with MFA", { class: "btn btn-small", "data-action": "step-up" }, (e) =>
                  void this.stepUp(e.currentTarget as HTMLButtonElement),
                )
              : null,
          )
        : null,
      ...project.environments.map((env) => this.environmentBlock(project, env)),
    );
  }

  private environmentBlock(project: ProjectView, env: EnvironmentView): HTMLElement {
    const running = env.status === "active";
    return el(
      "div",
      { class: env.kind === "production" ? "environment is-production" : "environment", "data-environment": `${project.id}/${env.id}` },
      el(
        "div",
        { class: "env-head" },
        el("span", { class: "env-title" }, env.title || env.id),
        env.title && env.title !== env.id ? el("span", { class: "muted env-id" }, env.id) : null,
        typeTag(env.kind),
        el("span", { class: statusClass(env.status), "data-field": "status" }, env.status),
      ),
      !running
        ? el("p", { class: "muted env-note" }, "not running, no SSH")
        : env.apps.length === 0
          ? el("p", { class: "muted env-note" }, "No apps to connect to")
          : el("ul", { class: "apps" }, ...env.apps.map((app) => this.appRow(app))),
    );
  }

  private appRow(app: AppView, context?: string): HTMLElement {
    const key = appKey(app.app);
    const name = app.app.app;
    const opening = this.opening.has(key);
    const dumping = this.dumping.has(key);
    const production = this.kindOf(app) === "production";
    return el(
      "li",
      { class: production ? "app is-production" : "app", "data-app": key },
      el(
        "div",
        { class: "app-head" },
        el("span", { class: "app-name" }, name),
        context ? el("span", { class: "muted app-context" }, context) : null,
        el(
          "button",
          {
            type: "button",
            class: app.pinned ? "icon-btn pin pinned" : "icon-btn pin",
            "data-action": "pin",
            "aria-pressed": app.pinned ? "true" : "false",
            "aria-label": app.pinned ? `Unpin ${name}` : `Pin ${name}`,
            title: app.pinned ? "Unpin" : "Pin to the top",
          },
          app.pinned ? "★" : "☆",
        ),
      ),
      el(
        "div",
        { class: "app-actions" },
        el("button", { type: "button", class: "btn btn-small btn-primary", "data-action": "terminal", "aria-label": `Open terminal on ${key}` }, "Open terminal"),
        el(
          "button",
          { type: "button", class: "btn btn-small", "data-action": "sql-shell", "aria-label": `SQL shell on ${key}${production ? " (production: starts read-only)" : ""}` },
          "SQL shell",
        ),
        el(
          "button",
          { type: "button", class: "btn btn-small", "data-action": "tunnels", "aria-label": `Open tunnels to ${key}'s services`, disabled: opening },
          opening ? "Opening…" : "Open tunnels",
        ),
        el("button", { type: "button", class: "btn-link", "data-action": "logs", "aria-label": `Follow the log of ${key}` }, "Logs"),
        el("button", { type: "button", class: "btn-link", "data-action": "open-site", "aria-label": `Open the site of ${key}` }, "Open site"),
        appMenu("Open in…", "open-in", openInItems(this.clients)),
        appMenu("Copy as…", "copy-as", copyAsItems()),
        el("button", { type: "button", class: "btn-link", "data-action": "dump", disabled: dumping }, dumping ? "Dumping…" : "Download a database dump…"),
        el("button", { type: "button", class: "btn-link", "data-action": "copy-ssh", title: app.ssh_command }, "Copy SSH command"),
        el("button", { type: "button", class: "btn-link", "data-action": "copy-address", title: app.ssh_address }, "Copy user@host"),
        el("button", { type: "button", class: "btn-link", "data-action": "details" }, "Connection details…"),
      ),
    );
  }
}

/** `CSS.escape` where it exists (browsers), a quote-escaping fallback elsewhere. */
export function cssEscape(value: string): string {
  if (typeof CSS !== "undefined" && typeof CSS.escape === "function") return CSS.escape(value);
  return value.replace(/["\\]/g, "\\$&");
}
