// The tunnels view: every open tunnel, its state and counters, kept fresh while it is shown.
import type { OpenFailureView, TunnelView } from "../backend/types";
import type { Context } from "../context";
import { button, el } from "../dom";
import { appKey, formatBytes, plural } from "../format";

export const POLL_MS = 2000;
export const EMPTY_TUNNELS = "No tunnels open. Open them from an app in Environments.";

/** The badge class of a tunnel state. */
export function tunnelStateClass(state: string): string {
  switch (state) {
    case "open":
      return "badge badge-ok";
    case "opening":
    case "reconnecting":
      return "badge badge-warn";
    case "failed":
      return "badge badge-bad";
    default:
      return "badge badge-off";
  }
}

/** "3 connections · 1 active · ↓ 2 KB ↑ 512 B" */
export function countersText(t: TunnelView): string {
  return `${plural(t.connections, "connection")} · ${t.active} active · ↓ ${formatBytes(t.bytes_in)} ↑ ${formatBytes(t.bytes_out)}`;
}

interface RowParts {
  row: HTMLElement;
  state: HTMLElement;
  detail: HTMLElement;
  address: HTMLElement;
  counters: HTMLElement;
  tunnel: TunnelView;
}

export class TunnelsView {
  readonly element: HTMLElement;
  private readonly list: HTMLElement;
  private readonly empty: HTMLElement;
  private readonly failures: HTMLElement;
  private readonly closeAll: HTMLButtonElement;
  private readonly reopen: HTMLButtonElement;
  private readonly copyExport: HTMLButtonElement;
  private rows = new Map<number, RowParts>();
  private timer: ReturnType<typeof setInterval> | null = null;
  private inFlight: Promise<void> | null = null;
  private again = false;
  private loaded = false;
  /** Tells the shell how many tunnels there are (for the tab's count). */
  onCount: (count: number) => void = () => {};

  constructor(private ctx: Context) {
    this.reopen = button(
      "Reopen tunnels",
      { id: "reopen-tunnels", class: "btn btn-small", hidden: true, title: "Open again the tunnels that were closed when the session ended" },
      () => void this.reopenTunnels(),
    );
    this.closeAll = button("Close all", { id: "close-all-tunnels", class: "btn btn-small btn-danger", disabled: true }, () => void this.closeAllTunnels());
    this.copyExport = button(
      "Copy export",
      { id: "copy-export", class: "btn btn-small", disabled: true, title: "Copy an export PLATFORM_RELATIONSHIPS=… line for the open tunnels" },
      () => void this.copyExportLine(),
    );
    this.failures = el("div", { class: "failures", hidden: true });
    this.list = el("ul", { class: "tunnels", id: "tunnels", "aria-label": "Open tunnels" });
    this.empty = el("p", { class: "empty", id: "tunnels-empty" }, "Loading tunnels…");
    this.element = el(
      "section",
      { class: "view view-tunnels", id: "view-tunnels", "aria-label": "Tunnels" },
      el("div", { class: "toolbar" }, el("h2", { class: "view-title", tabindex: "-1" }, "Tunnels"), el("span", { class: "spacer" }), this.reopen, this.copyExport, this.closeAll),
      this.failures,
      this.empty,
      this.list,
    );
    this.list.addEventListener("click", (e) => this.onClick(e));
  }

  /** Starts refreshing (now and every 2 s) while the view is shown. */
  show(): void {
    void this.refresh();
    if (this.timer === null) {
      this.timer = setInterval(() => {
        if (typeof document !== "undefined" && document.hidden) return;
        void this.refresh();
      }, POLL_MS);
    }
  }

  hide(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.setFailures([]);
  }

  /** What could not be opened, shown above the list until the view is left. */
  setFailures(failed: OpenFailureView[]): void {
    this.failures.hidden = failed.length === 0;
    this.failures.replaceChildren(
      ...(failed.length === 0
        ? []
        : [
            el(
              "div",
              { class: "alert", role: "alert" },
              el("p", {}, failed.length === 1 ? "One tunnel could not be opened:" : `${failed.length} tunnels could not be opened:`),
              el("ul", {}, ...failed.map((f) => el("li", { "data-failed": f.relationship }, el("strong", {}, f.relationship), `: ${f.message}`))),
            ),
          ]),
    );
  }

  /**
   * Refetches the tunnels, one request at a time: a refresh asked for while one runs starts
   * again once it ends, so what it shows is never older than the ask.
   */
  refresh(): Promise<void> {
    if (this.inFlight) {
      this.again = true;
      return this.inFlight;
    }
    this.inFlight = (async () => {
      try {
        do {
          this.again = false;
          try {
            this.update(await this.ctx.backend.tunnels());
          } catch (e) {
            this.ctx.showError(e);
          }
        } while (this.again);
      } finally {
        this.inFlight = null;
      }
    })();
    return this.inFlight;
  }

  /** Shows `tunnels`, updating rows in place so focus and selection survive the 2 s refresh. */
  update(tunnels: TunnelView[]): void {
    this.loaded = true;
    const seen = new Set<number>();
    const order: HTMLElement[] = [];
    for (const t of tunnels) {
      seen.add(t.id);
      let parts = this.rows.get(t.id);
      if (!parts) {
        parts = this.createRow(t);
        this.rows.set(t.id, parts);
      }
      this.fill(parts, t);
      order.push(parts.row);
    }
    for (const [id, parts] of this.rows) {
      if (!seen.has(id)) {
        parts.row.remove();
        this.rows.delete(id);
      }
    }
    const current = [...this.list.children];
    if (current.length !== order.length || order.some((row, i) => current[i] !== row)) {
      const focused = document.activeElement;
      this.list.replaceChildren(...order);
      if (focused instanceof HTMLElement && focused.isConnected && focused !== document.activeElement) focused.focus();
    }
    const none = tunnels.length === 0;
    this.empty.hidden = !none;
    this.empty.textContent = EMPTY_TUNNELS;
    this.closeAll.disabled = none;
    this.copyExport.disabled = none;
    this.onCount(tunnels.length);
  }

  get isLoaded(): boolean {
    return this.loaded;
  }

  private createRow(t: TunnelView): RowParts {
    const state = el("span", { "data-field": "state" });
    const detail = el("p", { class: "tunnel-detail", "data-field": "detail" });
    const address = el("code", { class: "value", "data-field": "address" });
    const counters = el("p", { class: "muted small counters", "data-field": "counters" });
    const row = el(
      "li",
      { class: "tunnel", "data-tunnel": String(t.id) },
      el(
        "div",
        { class: "tunnel-head" },
        el("span", { class: "tunnel-name" }, el("strong", {}, t.relationship), el("span", { class: "muted" }, ` ${t.service}`)),
        state,
      ),
      el(
        "p",
        { class: "muted small mono", "data-field": "app" },
        t.production ? `${appKey(t.app)} [PRODUCTION]` : appKey(t.app),
      ),
      detail,
      el(
        "div",
        { class: "tunnel-address" },
        address,
        el("button", { type: "button", class: "btn btn-small", "data-action": "copy-address", "aria-label": `Copy the address of ${t.relationship}` }, "Copy address"),
        el("button", { type: "button", class: "btn btn-small", "data-action": "copy-url", "aria-label": `Copy the URL of ${t.relationship}` }, "Copy URL"),
        el("button", { type: "button", class: "btn btn-small btn-danger", "data-action": "close", "aria-label": `Close the tunnel to ${t.relationship}` }, "Close"),
      ),
      counters,
    );
    return { row, state, detail, address, counters, tunnel: t };
  }

  private fill(parts: RowParts, t: TunnelView): void {
    parts.tunnel = t;
    setText(parts.state, t.state);
    parts.state.className = tunnelStateClass(t.state);
    setText(parts.detail, t.detail);
    parts.detail.hidden = t.detail === "";
    setText(parts.address, t.address);
    setText(parts.counters, countersText(t));
  }

  private onClick(e: Event): void {
    const target = (e.target as HTMLElement).closest<HTMLButtonElement>("button[data-action]");
    const row = target?.closest<HTMLElement>("[data-tunnel]");
    if (!target || !row) return;
    const parts = this.rows.get(Number(row.dataset.tunnel));
    if (!parts) return;
    const t = parts.tunnel;
    switch (target.dataset.action) {
      case "copy-address":
        void this.ctx.copy(t.address, "tunnel address");
        break;
      case "copy-url":
        void this.ctx.copy(t.url, "tunnel URL", true);
        break;
      case "close":
        void this.closeTunnel(t.id, target);
        break;
    }
  }

  private async closeTunnel(id: number, from: HTMLButtonElement): Promise<void> {
    from.disabled = true;
    try {
      await this.ctx.backend.closeTunnel(id);
    } catch (e) {
      this.ctx.showError(e);
    }
    from.disabled = false;
    await this.refresh();
    if (!from.isConnected) {
      // The row went away with the focus: keep the keyboard user in the list.
      const next = this.list.querySelector<HTMLElement>("[data-action=close]") ?? this.element.querySelector<HTMLElement>(".view-title");
      next?.focus();
    }
  }

  /**
   * Offers to reopen the `count` tunnels the end of the last session closed (the shell says
   * how many with each account it reads; zero while signed out, when they would only fail).
   */
  setReopenable(count: number): void {
    this.reopen.hidden = count === 0;
    setText(this.reopen, count === 1 ? "Reopen 1 tunnel" : `Reopen ${count} tunnels`);
  }

  private async reopenTunnels(): Promise<void> {
    this.reopen.disabled = true;
    try {
      const opened = await this.ctx.backend.reopenTunnels();
      this.setReopenable(0);
      this.setFailures(opened.failed);
    } catch (e) {
      this.ctx.showError(e);
    }
    this.reopen.disabled = false;
    await this.refresh();
  }

  private async closeAllTunnels(): Promise<void> {
    this.closeAll.disabled = true;
    try {
      await this.ctx.backend.closeAllTunnels();
    } catch (e) {
      this.ctx.showError(e);
    }
    await this.refresh();
  }

  private async copyExportLine(): Promise<void> {
    try {
      const line = await this.ctx.backend.tunnelExport(null);
      await this.ctx.copy(line, "PLATFORM_RELATIONSHIPS export", true);
    } catch (e) {
      this.ctx.showError(e);
    }
  }
}

function setText(node: HTMLElement, text: string): void {
  if (node.textContent !== text) node.textContent = text;
}
