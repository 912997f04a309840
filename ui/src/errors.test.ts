import { describe, expect, it } from "vitest";
import { describeError, errorLead } from "./errors";

describe("describeError", () => {
  it.each([
    ["sign_in", "You need to sign in again."],
    ["step_up_mfa", "This needs multi-factor authentication."],
    ["step_up_sso", "This needs a sign-in through your organisation's single sign-on."],
    ["step_up_recent_login", "This needs a recent sign-in."],
    ["unreachable", "Cannot reach the platform."],
    ["usage", "That did not work."],
    ["other", "Something went wrong."],
    ["io", "Something went wrong."],
  ])("leads %s errors with %s", (code, lead) => {
    expect(errorLead(code)).toBe(lead);
    expect(describeError({ code, message: "details here" })).toBe(`${lead} Details here.`);
  });

  it("keeps a message's own punctuation", () => {
    expect(describeError({ code: "unreachable", message: "Timed out!" })).toBe("Cannot reach the platform. Timed out!");
    expect(describeError({ code: "usage", message: "no app named web." })).toBe("That did not work. No app named web.");
  });

  it("says only the lead when there is no message", () => {
    expect(describeError({ code: "sign_in", message: "  " })).toBe("You need to sign in again.");
  });

  it("words things that are not backend errors", () => {
    expect(describeError(new Error("boom"))).toBe("Something went wrong. Boom.");
    expect(describeError("plain")).toBe("Something went wrong. Plain.");
    expect(describeError(undefined)).toBe("Something went wrong.");
  });
});
