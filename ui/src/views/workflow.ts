// What the window offers after a tunnel, beside "Open terminal": the question before production
// (the app's `confirm` answer, asked in a dialog), and the small menus of "Open in…" and
// "Copy as…".
import "./workflow.css";
import type { Client, ClientView, CopyForm } from "../backend/types";
import { button, el } from "../dom";
import { isBackendError } from "../errors";

/** Asks the app's question before production in a modal dialog; resolves to the answer. Escape,
 * Cancel and a click outside are a no; the focus starts on Cancel. */
export function askInWindow(question: string): Promise<boolean> {
  return new Promise((resolve) => {
    const previous = document.activeElement instanceof HTMLElement ? document.activeElement : null;
    let answered = false;
    const done = (yes: boolean) => {
      if (answered) return;
      answered = true;
      overlay.remove();
      if (previous?.isConnected) previous.focus();
      resolve(yes);
    };
    const no = button("Cancel", { id: "production-no", class: "btn" }, () => done(false));
    const yes = button("Yes, go on", { id: "production-yes", class: "btn btn-danger" }, () => done(true));
    const dialog = el(
      "div",
      {
        id: "production-question",
        class: "panel",
        role: "alertdialog",
        "aria-modal": "true",
        "aria-labelledby": "production-question-title",
        "aria-describedby": "production-question-text",
      },
      el("h2", { id: "production-question-title", class: "panel-title" }, "Production"),
      el("p", { id: "production-question-text" }, question),
      el("div", { class: "confirm-actions" }, no, yes),
    );
    const overlay = el("div", { class: "overlay production-question" }, dialog);
    overlay.addEventListener("click", (e) => {
      if (e.target === overlay) done(false);
    });
    dialog.addEventListener("keydown", (e) => {
      if (e.key === "Escape") {
        e.preventDefault();
        e.stopPropagation();
        done(false);
      } else if (e.key === "Tab") {
        e.preventDefault();
        (document.activeElement === no ? yes : no).focus();
      }
    });
    document.body.append(overlay);
    no.focus();
  });
}

/** Runs `call`; when the app answers with a question (production), asks it and runs `call`
 * again with the yes. Resolves to `undefined` on a no: nothing happened. */
export async function withConfirmation<T>(call: (confirmed?: boolean) => Promise<T>): Promise<T | undefined> {
  try {
    return await call();
  } catch (e) {
    if (isBackendError(e) && e.code === "confirm") {
      if (!(await askInWindow(e.message))) return undefined;
      return await call(true);
    }
    throw e;
  }
}

/** "Copy as…"'s forms, in menu order. */
export const COPY_FORMS: ReadonlyArray<{ form: CopyForm; label: string }> = [
  { form: "url", label: "URL" },
  { form: "command", label: "Command line (psql, mysql, redis-cli)" },
  { form: "jdbc", label: "JDBC URL" },
  { form: "env", label: "Environment variables" },
];

/** A client's label in "Open in…". */
export function clientLabel(c: ClientView): string {
  return c.client === "terminal" ? "Terminal (psql, mysql, redis-cli)" : c.title;
}

/** A button that shows a small menu of actions under it (`data-action` on each item, read by
 * the view's click handler). Escape or a second click closes it. */
export function appMenu(label: string, name: string, items: HTMLElement[]): HTMLElement {
  const list = el("div", { class: "app-menu-list", role: "menu", "data-menu": name, hidden: true }, ...items);
  for (const item of items) item.setAttribute("role", "menuitem");
  const toggle = button(label, { class: "btn-link", "data-menu-toggle": name, "aria-haspopup": "menu", "aria-expanded": "false" }, () => {
    const open = list.hidden;
    for (const other of document.querySelectorAll<HTMLElement>(".app-menu-list")) {
      other.hidden = true;
      other.parentElement?.querySelector("[data-menu-toggle]")?.setAttribute("aria-expanded", "false");
    }
    list.hidden = !open;
    toggle.setAttribute("aria-expanded", String(open));
    if (open) list.querySelector<HTMLElement>("button")?.focus();
  });
  const menu = el("span", { class: "app-menu" }, toggle, list);
  menu.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && !list.hidden) {
      e.stopPropagation();
      list.hidden = true;
      toggle.setAttribute("aria-expanded", "false");
      toggle.focus();
    }
  });
  // Choosing an item closes the menu.
  list.addEventListener("click", () => {
    list.hidden = true;
    toggle.setAttribute("aria-expanded", "false");
  });
  return menu;
}

/** "Open in…"'s items for the clients found. */
export function openInItems(clients: ClientView[]): HTMLElement[] {
  if (clients.length === 0) return [el("span", { class: "muted" }, "No database client found")];
  return clients.map((c) =>
    el("button", { type: "button", class: "btn-link", "data-action": "open-in", "data-client": c.client as Client }, clientLabel(c)),
  );
}

/** "Copy as…"'s items. */
export function copyAsItems(): HTMLElement[] {
  return COPY_FORMS.map((f) => el("button", { type: "button", class: "btn-link", "data-action": "copy-as", "data-form": f.form }, f.label));
}

/** "1.2 MB". */
export function size(bytes: number): string {
  const units = ["B", "kB", "MB", "GB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit + 1 < units.length) {
    value /= 1000;
    unit += 1;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[unit]}`;
}
