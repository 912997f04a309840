// Errors in words: every failure the UI shows goes through `describeError`.
import type { BackendError } from "./backend/types";

const LEADS: Record<string, string> = {
  sign_in: "You need to sign in again.",
  step_up_mfa: "This needs multi-factor authentication.",
  step_up_sso: "This needs a sign-in through your organisation's single sign-on.",
  step_up_recent_login: "This needs a recent sign-in.",
  unreachable: "Cannot reach the platform.",
  usage: "That did not work.",
};

export const GENERIC_LEAD = "Something went wrong.";

/** The lead sentence for an error code. */
export function errorLead(code: string): string {
  return LEADS[code] ?? GENERIC_LEAD;
}

/** Whether `e` is a `{code, message}` as the backend throws it. */
export function isBackendError(e: unknown): e is BackendError {
  if (typeof e !== "object" || e === null) return false;
  const { code, message } = e as { code?: unknown; message?: unknown };
  return typeof code === "string" && typeof message === "string";
}

/** A message as a sentence: a capital first letter and a closing full stop. */
function sentence(message: string): string {
  const m = message.trim();
  if (!m) return "";
  const capital = m.charAt(0).toUpperCase() + m.slice(1);
  return /[.!?…]$/.test(capital) ? capital : `${capital}.`;
}

/** "Cannot reach the platform. The connection timed out." */
export function describeError(e: unknown): string {
  const err: BackendError = isBackendError(e)
    ? e
    : { code: "other", message: e instanceof Error ? e.message : String(e ?? "") };
  const lead = errorLead(err.code);
  const message = sentence(err.message);
  return message ? `${lead} ${message}` : lead;
}
