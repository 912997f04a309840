import { describe, expect, it } from "vitest";
import { sampleSettings } from "./backend/mock";
import { bindWarning, isIpAddress, validateSettings } from "./validate";

describe("isIpAddress (as Rust's IpAddr parses)", () => {
  it.each(["127.0.0.1", "0.0.0.0", "192.168.1.20", " 10.0.0.1 ", "::1", "::", "fe80::1", "2001:db8::8a2e:370:7334", "1:2:3:4:5:6:7:8", "::ffff:192.168.0.1", "1:2:3:4:5:6:7::"])(
    "accepts %s",
    (a) => expect(isIpAddress(a)).toBe(true),
  );

  it.each(["", "localhost", "127.0.0", "127.0.0.1.1", "256.0.0.1", "01.2.3.4", "1.2.3.-4", "::1::", "1:2:3:4:5:6:7:8:9", "12345::", "[::1]", "fe80::1%eth0", "1.2.3.4::", "1:2:3:4:5:6:7:8::", ":1::2", "1:::2", "g::1"])(
    "refuses %s",
    (a) => expect(isIpAddress(a)).toBe(false),
  );
});

describe("validateSettings", () => {
  const base = () => sampleSettings().settings;

  it("accepts good settings", () => {
    expect(validateSettings(base())).toEqual([]);
  });

  it("refuses a bind address that is not an IP", () => {
    expect(validateSettings({ ...base(), bind_address: "localhost" }).map((p) => p.field)).toEqual(["bind_address"]);
  });

  it.each([0, 721, 1.5, Number.NaN])("refuses %d hours", (h) => {
    expect(validateSettings({ ...base(), inactivity_limit_hours: h }).map((p) => p.field)).toEqual(["inactivity_limit_hours"]);
  });

  it.each([1, 720])("accepts %d hours", (h) => {
    expect(validateSettings({ ...base(), inactivity_limit_hours: h })).toEqual([]);
  });

  it("refuses a terminal command on several lines", () => {
    expect(validateSettings({ ...base(), terminal: "xterm\n-e {}" }).map((p) => p.field)).toEqual(["terminal"]);
  });
});

describe("bindWarning", () => {
  it("warns only for addresses other machines can reach", () => {
    for (const quiet of ["127.0.0.1", " 127.0.0.2 ", "::1", "not an address"]) expect(bindWarning(quiet)).toBeNull();
    expect(bindWarning("0.0.0.0")).toContain("can be reached from other machines");
    expect(bindWarning("192.168.1.5")).toContain("192.168.1.5");
  });
});
