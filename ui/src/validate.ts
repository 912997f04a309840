// Client-side checks of the settings, mirroring core's `DesktopSettings::check`.
import type { DesktopSettings } from "./backend/types";

export const MIN_HOURS = 1;
export const MAX_HOURS = 720;

/** Like Rust's `Ipv4Addr::from_str`: four decimal octets, no leading zeros. */
export function isIpv4(text: string): boolean {
  const parts = text.split(".");
  return (
    parts.length === 4 &&
    parts.every((p) => /^(0|[1-9][0-9]{0,2})$/.test(p) && Number(p) <= 255)
  );
}

/** Like Rust's `Ipv6Addr::from_str`: hex groups, one `::` at most, an IPv4 tail allowed. */
export function isIpv6(text: string): boolean {
  if (!/^[0-9A-Fa-f:.]+$/.test(text)) return false;
  const halves = text.split("::");
  if (halves.length > 2) return false;
  const groups = (half: string): string[] | null => (half === "" ? [] : half.split(":"));
  const head = groups(halves[0]);
  const tail = halves.length === 2 ? groups(halves[1]) : [];
  if (head === null || tail === null) return false;
  const all = [...head, ...tail];
  let count = 0;
  for (let i = 0; i < all.length; i++) {
    const g = all[i];
    const last = i === all.length - 1 && (halves.length === 1 || tail.length > 0);
    if (last && g.includes(".")) {
      if (!isIpv4(g)) return false;
      count += 2;
    } else if (/^[0-9A-Fa-f]{1,4}$/.test(g)) {
      count += 1;
    } else {
      return false;
    }
  }
  return halves.length === 2 ? count < 8 : count === 8;
}

/** Whether Rust's `IpAddr` would parse `text` (trimmed, as the Rust side trims). */
export function isIpAddress(text: string): boolean {
  const t = text.trim();
  return isIpv4(t) || isIpv6(t);
}

/** Whether tunnels bound to `text` stay on this machine (127.0.0.0/8, ::1). */
export function isLoopback(text: string): boolean {
  const t = text.trim();
  return (isIpv4(t) && t.startsWith("127.")) || t === "::1";
}

/** A warning for a bind address that other machines can reach, or null. */
export function bindWarning(text: string): string | null {
  if (!isIpAddress(text) || isLoopback(text)) return null;
  return `Tunnels on ${text.trim()} can be reached from other machines, and they carry your services' credentials. Use 127.0.0.1 unless you mean to share them.`;
}

export interface SettingsProblem {
  field: keyof DesktopSettings;
  message: string;
}

/** What is wrong with `s`, field by field (empty when Rust should accept it). */
export function validateSettings(s: DesktopSettings): SettingsProblem[] {
  const problems: SettingsProblem[] = [];
  if (!isIpAddress(s.bind_address)) {
    problems.push({
      field: "bind_address",
      message: "The bind address must be an IP address: 127.0.0.1 (only this machine) or another address of this machine.",
    });
  }
  const h = s.inactivity_limit_hours;
  if (!Number.isInteger(h) || h < MIN_HOURS || h > MAX_HOURS) {
    problems.push({
      field: "inactivity_limit_hours",
      message: `The inactivity limit must be a whole number of hours between ${MIN_HOURS} and ${MAX_HOURS}.`,
    });
  }
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f]/.test(s.terminal)) {
    problems.push({
      field: "terminal",
      message: "The terminal command must be on one line, with {} where the ssh command goes.",
    });
  }
  return problems;
}
