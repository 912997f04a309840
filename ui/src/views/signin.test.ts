import { afterEach, describe, expect, it } from "vitest";
import type { Account } from "../backend/types";
import { sampleAccount, signedOutAccount } from "../backend/mock";
import { $, click, mount, settle, type Mounted } from "../test-utils";
import { SIGNING_IN } from "./signin";

let m: Mounted | undefined;
afterEach(() => m?.app.destroy());

describe("signed-out screen", () => {
  it("asks to sign in to the profile", async () => {
    m = await mount({ account: async () => signedOutAccount() });
    expect($(m.root, ".signin").textContent).toContain("Sign in to Platform.sh");
    expect($(m.root, "#sign-in").textContent).toBe("Sign in");
    expect($(m.root, "#sign-in-mfa").textContent).toBe("Sign in with MFA");
    expect($(m.root, "#sign-in-browser").textContent).toBe("Use my browser instead");
    expect(m.root.querySelector("#account")).toBeNull();
    expect($(m.root, "#account-state").textContent).toBe("Signed out");
    expect(m.backend.callsTo("catalog")).toEqual([]);
  });

  it("says why when the session ended", async () => {
    m = await mount({ account: async () => signedOutAccount({ session: "needs_sign_in" }) });
    expect($(m.root, ".signin").textContent).toContain("Your session ended: sign in again");
    expect($(m.root, "#account-state").textContent).toBe("Sign-in needed");
  });

  it.each([
    ["#sign-in", { mfa: false, method: "window" }],
    ["#sign-in-mfa", { mfa: true, method: "window" }],
    ["#sign-in-browser", { mfa: false, method: "browser" }],
  ])("%s signs in with %o, then shows the environments", async (selector, request) => {
    m = await mount({ account: async () => signedOutAccount() });
    await click(m.root, selector);
    expect(m.backend.callsTo("signIn")).toEqual([[request]]);
    expect(m.root.querySelector(".signin")).toBeNull();
    expect($(m.root, "#account").textContent).toContain("Ada Lovelace");
    expect(m.root.querySelector("#search")).not.toBeNull();
    expect(m.backend.callsTo("catalog")).toEqual([[false]]);
  });

  it("waits for the sign-in with the buttons disabled", async () => {
    let finish: (a: Account) => void = () => {};
    m = await mount({
      account: async () => signedOutAccount(),
      signIn: () => new Promise<Account>((resolve) => (finish = resolve)),
    });
    await click(m.root, "#sign-in");
    expect(m.root.textContent).toContain(SIGNING_IN);
    for (const id of ["#sign-in", "#sign-in-mfa", "#sign-in-browser"]) {
      expect(($(m.root, id) as HTMLButtonElement).disabled).toBe(true);
    }
    // A changed event while it runs keeps the card waiting.
    m.backend.emitChanged();
    await settle();
    expect(m.root.textContent).toContain(SIGNING_IN);
    finish(sampleAccount());
    await settle();
    expect(m.root.querySelector("#account")).not.toBeNull();
  });

  it("shows a failed sign-in in words and lets one try again", async () => {
    m = await mount({
      account: async () => signedOutAccount(),
      signIn: async () => Promise.reject({ code: "unreachable", message: "the connection timed out" }),
    });
    await click(m.root, "#sign-in-mfa");
    expect($(m.root, "[role=alert]").textContent).toBe("Cannot reach the platform. The connection timed out.");
    expect(($(m.root, "#sign-in") as HTMLButtonElement).disabled).toBe(false);
    expect(m.root.textContent).not.toContain(SIGNING_IN);
  });

  it("says nothing when the user closes the sign-in window", async () => {
    m = await mount({
      account: async () => signedOutAccount(),
      signIn: async () => Promise.reject({ code: "cancelled", message: "the sign-in was cancelled" }),
    });
    await click(m.root, "#sign-in");
    expect(m.root.querySelector("[role=alert]")).toBeNull();
    expect(($(m.root, "#sign-in") as HTMLButtonElement).disabled).toBe(false);
  });

  it("explains an API token from the environment", async () => {
    m = await mount({ account: async () => signedOutAccount({ session: "needs_sign_in", can_sign_in: false }) });
    expect($(m.root, "[data-field=token-note]").textContent).toContain("API token from the environment");
    expect(($(m.root, "#sign-in") as HTMLButtonElement).disabled).toBe(true);
  });

  it("names the headless agent in use", async () => {
    m = await mount({ account: async () => signedOutAccount({ using_headless_agent: true, headless_agent: 4242 }) });
    expect($(m.root, ".signin").textContent).toContain("Using the tether agent already running (pid 4242)");
  });

  it("follows the agent: signed in elsewhere (the tray), the card goes away", async () => {
    let account = signedOutAccount();
    m = await mount({ account: async () => account });
    expect(m.root.querySelector(".signin")).not.toBeNull();
    account = sampleAccount();
    m.backend.emitChanged();
    await settle();
    expect(m.root.querySelector(".signin")).toBeNull();
    expect(m.root.querySelector("[data-app]")).not.toBeNull();
  });

  it("asks where to keep the sign-in when the keyring cannot, then signs in with the file", async () => {
    let keyring = false;
    m = await mount({
      account: async () => signedOutAccount(),
      signIn: async () => {
        if (!keyring) throw { code: "token_store", message: "Tether keeps your sign-in in your desktop's keyring, and it is missing or locked (no Secret Service)." };
        return sampleAccount();
      },
      useTokenStore: async () => {
        keyring = true;
        return signedOutAccount();
      },
    });
    await click(m.root, "#sign-in-mfa");
    const question = $(m.root, "#token-store");
    expect(question.textContent).toContain("Your keyring cannot keep a sign-in");
    expect($(m.root, "[data-field=store-problem]").textContent).toContain("missing or locked (no Secret Service)");
    expect(question.textContent).toContain("private file");
    // Nothing else to click while the question stands.
    expect(m.root.querySelector("#sign-in")).toBeNull();
    await click(m.root, "#keep-in-file");
    expect(m.backend.callsTo("useTokenStore")).toEqual([[true]]);
    // The sign-in goes on as it was asked for (with MFA).
    expect(m.backend.callsTo("signIn")).toEqual([
      [{ mfa: true, method: "window" }],
      [{ mfa: true, method: "window" }],
    ]);
    expect($(m.root, "#account").textContent).toContain("Ada Lovelace");
  });

  it("tries the keyring again when asked (after unlocking it)", async () => {
    let tries = 0;
    m = await mount({
      account: async () => signedOutAccount(),
      signIn: async () => {
        tries += 1;
        if (tries === 1) throw { code: "token_store", message: "locked" };
        return sampleAccount();
      },
    });
    await click(m.root, "#sign-in");
    await click(m.root, "#retry-keyring");
    expect(m.backend.callsTo("useTokenStore")).toEqual([]);
    expect(m.backend.callsTo("signIn")).toHaveLength(2);
    expect(m.root.querySelector("#token-store")).toBeNull();
  });

  it("keeps a finished sign-in the keyring refused, in the file or the keyring", async () => {
    for (const [choice, file] of [
      ["#keep-in-file", true],
      ["#retry-keyring", false],
    ] as const) {
      m?.app.destroy();
      m = await mount({
        account: async () => signedOutAccount(),
        signIn: async () => Promise.reject({ code: "sign_in_held", message: "You signed in, but your keyring did not take the sign-in." }),
      });
      await click(m.root, "#sign-in");
      expect($(m.root, "#token-store").textContent).toContain("Where should Tether keep your sign-in?");
      await click(m.root, choice);
      // The sign-in is not asked for again: the one that finished is kept.
      expect(m.backend.callsTo("signIn")).toHaveLength(1);
      expect(m.backend.callsTo("useTokenStore")).toEqual([[file]]);
      expect($(m.root, "#account").textContent).toContain("Ada Lovelace");
    }
  });

  it("signs in or keeps a held sign-in as the tray asks", async () => {
    m = await mount({ account: async () => signedOutAccount() });
    m.backend.emitNavigate("sign-in-mfa");
    await settle();
    expect(m.backend.callsTo("signIn")).toEqual([[{ mfa: true, method: "window" }]]);
    m.app.destroy();
    m = await mount({ account: async () => signedOutAccount() });
    m.backend.emitNavigate("sign-in-held");
    await settle();
    expect($(m.root, "#token-store").textContent).toContain("Where should Tether keep your sign-in?");
  });
});
