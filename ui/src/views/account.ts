// The account strip shown while signed in: who, the certificate's time left, sign out.
import type { Account } from "../backend/types";
import { button, el } from "../dom";
import { agentNote, certificateLine } from "../format";

export interface AccountStrip {
  element: HTMLElement;
  /** Re-reads the time left, `now` in Unix seconds on the app's clock. */
  tick(now: number): void;
}

export function certificateText(account: Account, now: number): string {
  return account.certificate ? certificateLine(account.certificate.valid_before, now) : "No certificate yet";
}

/** `#account`: the user, their certificate and `#sign-out`. */
export function accountStrip(account: Account, now: number, onSignOut: () => void): AccountStrip {
  const user = account.user;
  const name = user ? user.display_name || user.username : "Signed in";
  const cert = el("span", { class: "cert", "data-field": "certificate" }, certificateText(account, now));
  const element = el(
    "section",
    { id: "account", class: "account", "aria-label": "Account" },
    el(
      "div",
      { class: "account-who" },
      el("span", { class: "account-name", "data-field": "name" }, name),
      user && user.display_name && user.username
        ? el("span", { class: "muted account-username" }, user.username)
        : null,
      user && user.email ? el("span", { class: "muted account-email", "data-field": "email" }, user.email) : null,
    ),
    el(
      "div",
      { class: "account-cert" },
      cert,
      account.certificate?.has_mfa
        ? el("span", { class: "badge badge-ok", "data-field": "mfa", title: "Signed in with multi-factor authentication" }, "MFA")
        : null,
      account.using_headless_agent
        ? el("span", { class: "muted agent-note" }, agentNote(account))
        : null,
    ),
    button("Sign out", { id: "sign-out", class: "btn btn-small" }, onSignOut),
  );
  return {
    element,
    tick: (n: number) => {
      cert.textContent = certificateText(account, n);
    },
  };
}
