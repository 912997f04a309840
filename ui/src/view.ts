import type { Backend, BackendError, Profile } from "./backend";

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  node.append(...children);
  return node;
}

function profileCard(p: Profile): HTMLElement {
  return el(
    "li",
    { class: "profile", "data-profile": p.name },
    el("div", { class: "profile-title" }, p.title),
    el("div", { class: "profile-detail" }, `API ${p.api_url}`),
    el("div", { class: "profile-detail" }, `SSH ${p.ssh_host_patterns.join(" ")}`),
  );
}

/** Renders the app's home screen into `root` from what the backend reports. */
export async function render(root: HTMLElement, backend: Backend): Promise<void> {
  root.replaceChildren(
    el("header", {}, el("h1", {}, "Tether"), el("p", { class: "tagline" }, "Secure SSH to your environments")),
  );
  try {
    const profiles = await backend.profiles();
    root.append(
      el("h2", {}, "Platforms"),
      el("ul", { class: "profiles", id: "profiles" }, ...profiles.map(profileCard)),
    );
  } catch (e) {
    const err = e as BackendError;
    root.append(el("p", { class: "error", role: "alert" }, `${err.message} (${err.code})`));
  }
}
