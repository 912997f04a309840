// Helpers for the component tests (not part of the app bundle).
import { startApp, type App } from "./app";
import type { Backend } from "./backend/types";
import { mockBackend, type MockBackend } from "./backend/mock";

/** Lets pending promises and zero-delay timers run. */
export async function settle(rounds = 6): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise((r) => setTimeout(r, 0));
}

export interface Mounted {
  root: HTMLElement;
  app: App;
  backend: MockBackend;
}

/** Starts the whole app on a mock backend in a fresh `<main>` attached to the document. */
export async function mount(overrides: Partial<Backend> = {}): Promise<Mounted> {
  document.body.replaceChildren();
  const root = document.createElement("main");
  root.id = "app";
  document.body.append(root);
  const backend = mockBackend(overrides);
  const app = await startApp(root, backend);
  await settle();
  return { root, app, backend };
}

export function $(root: ParentNode, selector: string): HTMLElement {
  const found = root.querySelector<HTMLElement>(selector);
  if (!found) throw new Error(`nothing matches ${selector}`);
  return found;
}

export async function click(root: ParentNode, selector: string): Promise<void> {
  $(root, selector).click();
  await settle();
}

export function key(target: EventTarget, k: string): void {
  target.dispatchEvent(new KeyboardEvent("keydown", { key: k, bubbles: true, cancelable: true }));
}
