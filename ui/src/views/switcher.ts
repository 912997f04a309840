// The quick switcher: a palette in a window of its own. Type to filter the apps (fuzzy on
// project, environment and app; pinned and recent first), then a key acts on the one chosen.
import type { Backend, SwitcherAction, SwitcherItem } from "../backend/types";
import { el } from "../dom";
import { describeError } from "../errors";
import { searchTerms } from "../search";

/** The keys the palette answers, as its legend lists them. */
export const KEYS: Array<{ keys: string; label: string; action: SwitcherAction | null }> = [
  { keys: "Enter", label: "Open terminal", action: "terminal" },
  { keys: "Ctrl+T", label: "Open tunnels", action: "tunnels" },
  { keys: "Ctrl+S", label: "SQL shell", action: "sql_shell" },
  { keys: "Ctrl+C", label: "Copy SSH command", action: "copy_ssh" },
  { keys: "Esc", label: "Close", action: null },
];

/** The action of a key press, or null for a key the palette leaves alone. */
export function actionFor(e: Pick<KeyboardEvent, "key" | "ctrlKey" | "metaKey" | "altKey" | "shiftKey">): SwitcherAction | null {
  if (e.key === "Enter" && !e.ctrlKey && !e.altKey) return "terminal";
  if ((e.ctrlKey || e.metaKey) && !e.altKey) {
    const k = e.key.toLowerCase();
    if (k === "t") return "tunnels";
    if (k === "s") return "sql_shell";
    if (k === "c") return "copy_ssh";
  }
  return null;
}

/**
 * How well `term` matches `text` (both lower-case): a substring scores most, more at the start
 * of a word; otherwise its letters in order (a subsequence), more when they run together.
 * `null` when it does not match at all.
 */
export function fuzzyScore(term: string, text: string): number | null {
  const at = text.indexOf(term);
  if (at >= 0) {
    const wordStart = at === 0 || /[\s/\-_.[(]/.test(text[at - 1] ?? "");
    return 100 + term.length * 4 + (wordStart ? 50 : 0) - Math.min(at, 40);
  }
  let from = 0;
  let last = -2;
  let score = 0;
  for (const ch of term) {
    const found = text.indexOf(ch, from);
    if (found < 0) return null;
    score += found === last + 1 ? 3 : 1;
    last = found;
    from = found + 1;
  }
  return score;
}

function haystack(item: SwitcherItem): string {
  const { project, environment, app } = item.app;
  return [item.project, project, item.environment, environment, app].join(" ").toLowerCase();
}

/**
 * The items `query` matches, best first: every whitespace-separated term must match (fuzzily)
 * somewhere in the project, environment or app. Pinned and recent apps get a head start; equal
 * scores keep the given order (pinned, recent, catalog). A blank query keeps them all in order.
 */
export function filterItems(items: SwitcherItem[], query: string): SwitcherItem[] {
  const terms = searchTerms(query);
  if (terms.length === 0) return items;
  const scored: Array<{ item: SwitcherItem; score: number; index: number }> = [];
  items.forEach((item, index) => {
    const text = haystack(item);
    let score = item.pinned ? 8 : item.recent ? 4 : 0;
    for (const term of terms) {
      const s = fuzzyScore(term, text);
      if (s === null) return;
      score += s;
    }
    scored.push({ item, score, index });
  });
  scored.sort((a, b) => b.score - a.score || a.index - b.index);
  return scored.map((s) => s.item);
}

export class SwitcherPalette {
  readonly element: HTMLElement;
  readonly input: HTMLInputElement;
  private readonly list: HTMLElement;
  private readonly status: HTMLElement;
  private items: SwitcherItem[] = [];
  private shown: SwitcherItem[] = [];
  private selected = 0;
  private busy = false;

  constructor(private backend: Backend) {
    this.input = el("input", {
      type: "search",
      id: "switcher-query",
      class: "input switcher-query",
      placeholder: "Go to an app: type a project, environment or app",
      autocomplete: "off",
      spellcheck: "false",
      role: "combobox",
      "aria-expanded": "true",
      "aria-controls": "switcher-list",
      "aria-label": "Search apps",
    });
    this.list = el("ul", { id: "switcher-list", class: "switcher-list", role: "listbox", "aria-label": "Apps" });
    this.status = el("p", { id: "switcher-status", class: "switcher-status", role: "status" });
    const legend = el(
      "footer",
      { class: "switcher-keys", id: "switcher-keys" },
      ...KEYS.map((k) => el("span", { class: "switcher-key" }, el("kbd", {}, k.keys), " ", k.label)),
    );
    this.element = el("section", { class: "switcher", id: "switcher", "aria-label": "Quick switcher" }, this.input, this.status, this.list, legend);
    this.input.addEventListener("input", () => {
      this.selected = 0;
      this.render();
    });
    this.element.addEventListener("keydown", (e) => this.onKey(e));
  }

  /** Loads the apps and starts a new search. */
  async reset(): Promise<void> {
    this.input.value = "";
    this.selected = 0;
    this.busy = false;
    this.input.focus();
    this.status.textContent = "Loading apps…";
    this.list.replaceChildren();
    try {
      this.items = await this.backend.switcherItems();
      this.status.textContent = "";
      this.render();
    } catch (e) {
      this.items = [];
      this.shown = [];
      this.list.replaceChildren();
      this.status.textContent = describeError(e);
      this.status.classList.add("switcher-problem");
      return;
    }
    this.status.classList.remove("switcher-problem");
  }

  private render(): void {
    this.shown = filterItems(this.items, this.input.value);
    if (this.selected >= this.shown.length) this.selected = Math.max(0, this.shown.length - 1);
    this.list.replaceChildren(
      ...this.shown.map((item, i) => {
        const id = `switcher-item-${i}`;
        const row = el(
          "li",
          {
            id,
            class: `switcher-item${item.production ? " production" : ""}`,
            role: "option",
            "aria-selected": i === this.selected ? "true" : "false",
            "data-app": `${item.app.project}/${item.app.environment}/${item.app.app}`,
          },
          el("span", { class: "switcher-app" }, item.app.app),
          el("span", { class: "switcher-where" }, `${item.project} · `, el("span", { class: item.production ? "switcher-env prod" : "switcher-env" }, item.environment)),
          item.pinned ? el("span", { class: "switcher-tag" }, "pinned") : item.recent ? el("span", { class: "switcher-tag" }, "recent") : null,
        );
        row.addEventListener("mousedown", (e) => e.preventDefault());
        row.addEventListener("click", () => {
          this.selected = i;
          void this.run("terminal");
        });
        return row;
      }),
    );
    if (this.shown.length > 0) {
      this.input.setAttribute("aria-activedescendant", `switcher-item-${this.selected}`);
      this.list.children[this.selected]?.scrollIntoView?.({ block: "nearest" });
    } else {
      this.input.removeAttribute("aria-activedescendant");
    }
    if (this.items.length > 0 && this.shown.length === 0) this.status.textContent = "No app matches.";
    else if (this.items.length === 0 && this.status.textContent === "") this.status.textContent = "No running app to go to.";
    else if (this.shown.length > 0) this.status.textContent = "";
  }

  private move(by: number): void {
    if (this.shown.length === 0) return;
    this.selected = (this.selected + by + this.shown.length) % this.shown.length;
    this.render();
  }

  private onKey(e: KeyboardEvent): void {
    if (e.key === "Escape") {
      e.preventDefault();
      void this.backend.closeSwitcher();
      return;
    }
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      e.preventDefault();
      this.move(e.key === "ArrowDown" ? 1 : -1);
      return;
    }
    // Ctrl+C with text selected in the search copies that text, as anywhere else.
    if (e.ctrlKey && e.key.toLowerCase() === "c" && this.input.selectionStart !== this.input.selectionEnd) return;
    const action = actionFor(e);
    if (action) {
      e.preventDefault();
      void this.run(action);
    }
  }

  /** The chosen app's action; the window closes once it has started. */
  async run(action: SwitcherAction): Promise<void> {
    const item = this.shown[this.selected];
    if (!item || this.busy) return;
    this.busy = true;
    try {
      await this.backend.switcherRun(item.app, action);
    } catch (e) {
      this.busy = false;
      this.status.textContent = describeError(e);
      this.status.classList.add("switcher-problem");
    }
  }
}

/** Starts the switcher in `root` (the switcher window's page). */
export async function startSwitcher(root: HTMLElement, backend: Backend): Promise<SwitcherPalette> {
  document.documentElement.classList.add("switcher-window");
  const palette = new SwitcherPalette(backend);
  root.replaceChildren(palette.element);
  await backend.onSwitcherReset(() => void palette.reset()).catch(() => undefined);
  await palette.reset();
  return palette;
}
