// Pure formatting helpers: time left on the certificate, byte counts, app names.
import type { AppRef } from "./backend/types";

/** `project/environment/app`, the key the tray, the settings and the DOM use for an app. */
export function appKey(app: AppRef): string {
  return `${app.project}/${app.environment}/${app.app}`;
}

/** A duration in words: "3h 25m", "45m", "2d 4h", "less than a minute". */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return "less than a minute";
  const minutes = Math.floor(s / 60) % 60;
  const hours = Math.floor(s / 3600) % 24;
  const days = Math.floor(s / 86400);
  if (days > 0) return `${days}d ${hours}h`;
  if (hours > 0) return `${hours}h ${minutes}m`;
  return `${minutes}m`;
}

/** A local wall-clock time, "09:05". */
export function clockTime(date: Date): string {
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

/**
 * What the account strip says about the certificate, both times in Unix seconds:
 * "Certificate valid until 14:05 (3h 25m left)", or "Certificate expired at 14:05".
 */
export function certificateLine(validBefore: number, now: number): string {
  const until = clockTime(new Date(validBefore * 1000));
  if (validBefore <= now) return `Certificate expired at ${until}`;
  return `Certificate valid until ${until} (${formatDuration(validBefore - now)} left)`;
}

const UNITS = ["B", "KB", "MB", "GB", "TB", "PB"];

/** A byte count for people (base 1024): "0 B", "512 B", "1.5 KB", "12 KB", "3.2 GB". */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 0) return "0 B";
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  if (unit === 0) return `${Math.round(value)} B`;
  // One decimal below 10 ("1.5 KB"), none above ("12 KB"); never "1024 KB".
  let text = value < 10 ? value.toFixed(1) : String(Math.round(value));
  if (text === "1024" && unit < UNITS.length - 1) {
    text = "1.0";
    unit++;
  }
  return `${text.replace(/\.0$/, "")} ${UNITS[unit]}`;
}

/** "1 connection", "3 connections". */
export function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

/** The note for an app that uses a `tether agent` already running (its pid when known). */
export function agentNote(account: { headless_agent: number | null }): string {
  const pid = account.headless_agent === null ? "" : ` (pid ${account.headless_agent})`;
  return `Using the tether agent already running${pid}`;
}
