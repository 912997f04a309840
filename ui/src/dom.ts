// Small DOM helpers: the UI builds its elements with these, no framework, no inline styles.

export type Attrs = Record<string, string | number | boolean | null | undefined>;
export type Child = Node | string | null | undefined | false;

/**
 * An element with attributes and children. `true` sets an empty attribute, `false`, null and
 * undefined leave it out; falsy children are skipped.
 */
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === false || v === null || v === undefined) continue;
    node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const child of children) {
    if (child !== null && child !== undefined && child !== false) node.append(child);
  }
  return node;
}

/** A `type=button` button that runs `onClick`. */
export function button(label: Child | Child[], attrs: Attrs, onClick: (event: MouseEvent) => void): HTMLButtonElement {
  const b = el("button", { type: "button", ...attrs }, ...(Array.isArray(label) ? label : [label]));
  b.addEventListener("click", onClick);
  return b;
}

/** Whether keyboard input goes to a text field (so single-key shortcuts must not fire). */
export function isTyping(target: EventTarget | null): boolean {
  if (!(target instanceof HTMLElement)) return false;
  if (target.isContentEditable) return true;
  if (target instanceof HTMLTextAreaElement || target instanceof HTMLSelectElement) return true;
  if (target instanceof HTMLInputElement) {
    return !["checkbox", "radio", "button", "submit", "reset"].includes(target.type);
  }
  return false;
}
