import { describe, expect, it } from "vitest";
import { agentNote, appKey, certificateLine, clockTime, formatBytes, formatDuration, plural } from "./format";

describe("formatDuration", () => {
  it.each([
    [0, "less than a minute"],
    [59, "less than a minute"],
    [60, "1m"],
    [45 * 60 + 30, "45m"],
    [3600, "1h 0m"],
    [3 * 3600 + 25 * 60 + 59, "3h 25m"],
    [86400 + 4 * 3600, "1d 4h"],
    [-10, "less than a minute"],
  ])("%d s is %s", (s, text) => expect(formatDuration(s)).toBe(text));
});

describe("certificateLine", () => {
  const local = (h: number, m: number) => new Date(2024, 4, 2, h, m, 0).getTime() / 1000;

  it("says until when and how long is left", () => {
    expect(certificateLine(local(14, 5), local(10, 40))).toBe("Certificate valid until 14:05 (3h 25m left)");
  });

  it("pads the clock", () => {
    expect(clockTime(new Date(2024, 0, 1, 9, 5))).toBe("09:05");
    expect(certificateLine(local(9, 5), local(8, 50))).toBe("Certificate valid until 09:05 (15m left)");
  });

  it("says when it expired", () => {
    expect(certificateLine(local(9, 5), local(9, 5))).toBe("Certificate expired at 09:05");
    expect(certificateLine(local(9, 5), local(12, 0))).toBe("Certificate expired at 09:05");
  });
});

describe("formatBytes", () => {
  it.each([
    [0, "0 B"],
    [1, "1 B"],
    [512, "512 B"],
    [1023, "1023 B"],
    [1024, "1 KB"],
    [1536, "1.5 KB"],
    [12 * 1024 + 300, "12 KB"],
    [1024 * 1024 - 1, "1 MB"],
    [3.25 * 1024 ** 2, "3.3 MB"],
    [1024 ** 3 * 2, "2 GB"],
    [1024 ** 4 * 150, "150 TB"],
    [-1, "0 B"],
    [Number.NaN, "0 B"],
  ])("%d bytes is %s", (n, text) => expect(formatBytes(n)).toBe(text));
});

describe("small helpers", () => {
  it("names apps as project/environment/app", () => {
    expect(appKey({ project: "p", environment: "e", app: "a" })).toBe("p/e/a");
  });

  it("pluralises", () => {
    expect(plural(1, "connection")).toBe("1 connection");
    expect(plural(0, "connection")).toBe("0 connections");
  });
});

describe("agentNote", () => {
  it("names the agent's pid when known", () => {
    expect(agentNote({ headless_agent: 42 })).toBe("Using the tether agent already running (pid 42)");
    expect(agentNote({ headless_agent: null })).toBe("Using the tether agent already running");
  });
});
