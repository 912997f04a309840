// The connection details panel: what a database tool that opens its own SSH tunnel needs.
import type { AppRef, ConnectionDetails, CopyForm, ServiceDetails } from "../backend/types";
import type { Context } from "../context";
import { button, el } from "../dom";
import { describeError } from "../errors";
import { appKey } from "../format";
import { appMenu, copyAsItems, size, withConfirmation } from "./workflow";

/** The schemes the SQL shell, "Copy as…" and the dump know. */
const CLIENT_SCHEMES = ["pgsql", "postgres", "postgresql", "mysql", "redis", "valkey"];

/** A service's own SQL shell, "Copy as…" and dump, for this relationship (the app's menus pick
 * the first database). */
function serviceActions(ctx: Context, app: AppRef, s: ServiceDetails): HTMLElement | null {
  if (!CLIENT_SCHEMES.includes(s.scheme)) return null;
  const rel = s.relationship;
  const sql = s.scheme !== "redis" && s.scheme !== "valkey";
  const run = async (work: () => Promise<unknown>) => {
    try {
      await work();
    } catch (e) {
      ctx.showError(e);
    }
  };
  const actions = el(
    "div",
    { class: "service-actions" },
    el("button", { type: "button", class: "btn btn-small", "data-action": "sql-shell" }, sql ? "SQL shell" : "redis-cli"),
    appMenu("Copy as…", `copy-as-${rel}`, copyAsItems().filter((b) => sql || b.dataset.form !== "jdbc")),
    sql ? el("button", { type: "button", class: "btn-link", "data-action": "dump" }, "Download a dump…") : null,
  );
  actions.addEventListener("click", (e) => {
    const target = (e.target as HTMLElement).closest<HTMLElement>("[data-action]");
    switch (target?.dataset.action) {
      case "sql-shell":
        void run(() => withConfirmation((yes) => ctx.backend.sqlShell(app, rel, yes)));
        return;
      case "copy-as": {
        const form = target.dataset.form as CopyForm;
        void run(() => withConfirmation((yes) => ctx.backend.copyAs(app, form, rel, yes)));
        return;
      }
      case "dump":
        void run(async () => {
          const done = await withConfirmation((yes) => ctx.backend.dumpDatabase(app, rel, yes));
          if (done) ctx.toast(`Saved the dump to ${done.path} (${size(done.bytes)})`);
        });
        return;
    }
  });
  return actions;
}

export const MASK = "••••••";

interface Row {
  field: string;
  label: string;
  value: string;
  /** What the copy toast names ("SSH host", "database password"). */
  copyLabel: string;
  secret?: boolean;
}

function detailRow(ctx: Context, row: Row): HTMLElement {
  const value = el("code", { class: "value", "data-field": row.field }, row.secret && row.value ? MASK : row.value);
  const actions: HTMLElement[] = [];
  if (row.secret && row.value) {
    value.classList.add("masked");
    const reveal = button("Show", { class: "btn btn-small", "data-action": "reveal", "aria-pressed": "false", "aria-label": `Show ${row.copyLabel}` }, () => {
      const shown = reveal.getAttribute("aria-pressed") !== "true";
      reveal.setAttribute("aria-pressed", String(shown));
      reveal.textContent = shown ? "Hide" : "Show";
      reveal.setAttribute("aria-label", `${shown ? "Hide" : "Show"} ${row.copyLabel}`);
      value.textContent = shown ? row.value : MASK;
      value.classList.toggle("masked", !shown);
    });
    actions.push(reveal);
  }
  actions.push(
    button("Copy", { class: "btn btn-small", "data-action": "copy", "aria-label": `Copy ${row.copyLabel}` }, () =>
      void ctx.copy(row.value, row.copyLabel, row.secret === true),
    ),
  );
  return el(
    "div",
    { class: "detail-row" },
    el("span", { class: "detail-label" }, row.label),
    value,
    el("span", { class: "detail-actions" }, ...actions),
  );
}

function serviceSection(ctx: Context, app: AppRef, s: ServiceDetails): HTMLElement {
  const rel = s.relationship;
  const rows: Row[] = [
    { field: "host", label: "Host", value: s.host, copyLabel: `${rel} host` },
    { field: "port", label: "Port", value: String(s.port), copyLabel: `${rel} port` },
    { field: "username", label: "Username", value: s.username, copyLabel: `${rel} username` },
    { field: "password", label: "Password", value: s.password, copyLabel: `${rel} password`, secret: true },
    { field: "path", label: "Path", value: s.path, copyLabel: `${rel} path` },
    { field: "scheme", label: "Scheme", value: s.scheme, copyLabel: `${rel} scheme` },
  ];
  return el(
    "section",
    { class: "service", "data-service": rel },
    el(
      "h3",
      { class: "service-title" },
      rel,
      el("span", { class: "muted" }, ` ${s.service}${s.service_type ? ` (${s.service_type})` : ""}`),
    ),
    ...rows.map((r) => detailRow(ctx, r)),
    serviceActions(ctx, app, s),
  );
}

/** The panel's body for `details`. */
export function detailsBody(ctx: Context, d: ConnectionDetails): HTMLElement {
  const ssh: Row[] = [
    { field: "ssh_host", label: "SSH host", value: d.ssh_host, copyLabel: "SSH host" },
    { field: "ssh_port", label: "SSH port", value: String(d.ssh_port), copyLabel: "SSH port" },
    { field: "ssh_user", label: "SSH user", value: d.ssh_user, copyLabel: "SSH user" },
    { field: "key_file", label: "Key file", value: d.key_file, copyLabel: "key file path" },
    { field: "certificate_file", label: "Certificate file", value: d.certificate_file, copyLabel: "certificate file path" },
  ];
  return el(
    "div",
    { class: "details-body" },
    el(
      "p",
      { class: "muted small" },
      "For database tools that open their own SSH tunnel (MySQL Workbench, DBeaver): connect over SSH with the key and certificate below, then to the service.",
    ),
    el("section", { class: "service", "data-service-ssh": "" }, el("h3", { class: "service-title" }, "SSH"), ...ssh.map((r) => detailRow(ctx, r))),
    ...(d.services.length > 0
      ? d.services.map((s) => serviceSection(ctx, d.app, s))
      : [el("p", { class: "muted" }, "This app has no services to connect to.")]),
  );
}

/** `#details`: a dialog over the view, closed by ×, Escape, or a click outside it. */
export class DetailsPanel {
  readonly element: HTMLElement;
  private readonly dialog: HTMLElement;
  private readonly body: HTMLElement;
  private closed = false;

  constructor(
    private ctx: Context,
    readonly app: AppRef,
    private from: HTMLElement | undefined,
    private onClose: () => void,
  ) {
    const title = `Connection details`;
    this.body = el("div", { class: "details-content", "aria-busy": "true" }, el("p", { class: "loading" }, el("span", { class: "spinner", "aria-hidden": "true" }), "Loading…"));
    const close = button("×", { class: "icon-btn close", "data-action": "close", "aria-label": "Close" }, () => this.close());
    this.dialog = el(
      "div",
      { id: "details", class: "panel", role: "dialog", "aria-modal": "true", "aria-labelledby": "details-title", tabindex: "-1" },
      el(
        "header",
        { class: "panel-head" },
        el("div", {}, el("h2", { id: "details-title", class: "panel-title" }, title), el("p", { class: "muted small mono" }, appKey(app))),
        close,
      ),
      this.body,
    );
    this.element = el("div", { class: "overlay" }, this.dialog);
    this.element.addEventListener("click", (e) => {
      if (e.target === this.element) this.close();
    });
    this.dialog.addEventListener("keydown", (e) => this.onKey(e));
  }

  /** Shows the panel (focus on ×) and loads the details. */
  async open(): Promise<void> {
    this.dialog.querySelector<HTMLElement>("[data-action=close]")?.focus();
    try {
      const details = await this.ctx.backend.connectionDetails(this.app);
      if (this.closed) return;
      this.body.replaceChildren(detailsBody(this.ctx, details));
    } catch (e) {
      if (this.closed) return;
      this.body.replaceChildren(el("p", { class: "alert", role: "alert" }, describeError(e)));
    } finally {
      this.body.setAttribute("aria-busy", "false");
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.element.remove();
    this.onClose();
    if (this.from?.isConnected) this.from.focus();
  }

  private onKey(e: KeyboardEvent): void {
    if (e.key === "Escape") {
      e.preventDefault();
      e.stopPropagation();
      this.close();
    } else if (e.key === "Tab") {
      // Keep the focus inside the dialog.
      const focusable = [...this.dialog.querySelectorAll<HTMLElement>("button:not([disabled]), [href], input, select, textarea")];
      if (focusable.length === 0) return;
      const first = focusable[0];
      const last = focusable[focusable.length - 1];
      if (e.shiftKey && document.activeElement === first) {
        e.preventDefault();
        last.focus();
      } else if (!e.shiftKey && document.activeElement === last) {
        e.preventDefault();
        first.focus();
      }
    }
  }
}
