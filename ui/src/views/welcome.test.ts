import { afterEach, describe, expect, it } from "vitest";
import type { Account, WelcomeAnswer, WelcomeView } from "../backend/types";
import { sampleAccount, sampleWelcome, signedOutAccount } from "../backend/mock";
import { $, click, mount, settle, type Mounted } from "../test-utils";

let m: Mounted | undefined;
afterEach(() => m?.app.destroy());

/** A first start: the welcome under way, the backend's answers following the steps. */
async function firstStart(view: Partial<WelcomeView> = {}, account: Account = signedOutAccount()) {
  let current = sampleWelcome(view);
  let signedIn = account;
  m = await mount({
    account: async () => signedIn,
    signIn: async () => (signedIn = sampleAccount()),
    welcome: async () => current,
    welcomeStep: async (answer: WelcomeAnswer) => {
      if (answer.step === "platform") current = { ...current, platform_chosen: true };
      if (answer.step === "ssh_config") current = { ...current, ssh_config: { ...current.ssh_config, installed: answer.add } };
      if (answer.step === "finish") current = { ...current, under_way: false };
      return current;
    },
  });
  return m;
}

function step(root: HTMLElement): string {
  return $(root, ".welcome-card").dataset.step ?? "";
}

describe("first-run welcome", () => {
  it("walks through platform, sign-in, ssh config and start at login, then shows the app", async () => {
    const { root, backend } = await firstStart();
    // The window is the welcome: no tabs yet.
    expect(root.querySelector(".topbar")).toBeNull();
    expect(step(root)).toBe("platform");
    expect($(root, "[data-field=progress]").textContent).toBe("Step 1 of 4");
    expect(($(root, "#welcome-platform-platformsh") as HTMLInputElement).checked).toBe(true);
    expect(root.textContent).toContain("Upsun");
    await click(root, "#welcome-next");
    expect(backend.callsTo("welcomeStep")).toEqual([[{ step: "platform", profile: "platformsh" }]]);

    expect(step(root)).toBe("sign-in");
    expect($(root, "#welcome-title").textContent).toBe("Sign in to Platform.sh");
    await click(root, "#sign-in-mfa");
    expect(backend.callsTo("signIn")).toEqual([[{ mfa: true, method: "window" }]]);

    expect(step(root)).toBe("ssh-config");
    expect($(root, "[data-field=signed-in]").textContent).toBe("Signed in as Ada Lovelace.");
    // The exact lines, before anything is added.
    expect($(root, "#welcome-ssh-lines").textContent).toBe(sampleWelcome().ssh_config.lines);
    expect(root.textContent).toContain("/home/ada/.ssh/config");
    expect($(root, "#welcome-ssh-add").textContent).toBe("Add these lines");
    await click(root, "#welcome-ssh-add");
    expect(backend.callsTo("welcomeStep").at(-1)).toEqual([{ step: "ssh_config", add: true }]);

    expect(step(root)).toBe("login");
    const box = $(root, "#welcome-start-at-login") as HTMLInputElement;
    expect(box.checked).toBe(true);
    expect(root.textContent).toContain("On by default");
    await click(root, "#welcome-finish");
    expect(backend.callsTo("welcomeStep").at(-1)).toEqual([{ step: "finish", start_at_login: true }]);

    // Done: the usual window, signed in.
    expect(root.querySelector("#welcome")).toBeNull();
    expect($(root, "#account-state").textContent).toBe("Signed in");
    expect(root.querySelector("#search")).not.toBeNull();
  });

  it("asks nothing of a person who leaves the lines out and start at login off", async () => {
    const { root, backend } = await firstStart({ platform_chosen: true }, sampleAccount());
    // Chosen before a restart, and signed in already (the command line): the ssh config.
    expect(step(root)).toBe("ssh-config");
    expect($(root, "[data-field=progress]").textContent).toBe("Step 3 of 4");
    await click(root, "#welcome-ssh-skip");
    expect(backend.callsTo("welcomeStep")[0]).toEqual([{ step: "ssh_config", add: false }]);
    ($(root, "#welcome-start-at-login") as HTMLInputElement).click();
    await click(root, "#welcome-finish");
    expect(backend.callsTo("welcomeStep").at(-1)).toEqual([{ step: "finish", start_at_login: false }]);
  });

  it("skips the platform when the app was started with one, and says so", async () => {
    const { root } = await firstStart({
      platform_chosen: true,
      profile_given_by: "TETHER_PROFILE",
      active_profile: "/tmp/demo/profile.toml",
      profile_title: "Local platform (tether-sim)",
    });
    expect(step(root)).toBe("sign-in");
    expect($(root, "[data-field=progress]").textContent).toBe("Step 1 of 3");
    expect($(root, "#welcome-title").textContent).toBe("Sign in to Local platform (tether-sim)");
    expect($(root, "[data-field=profile-given]").textContent).toContain("as TETHER_PROFILE said when it started");
    await click(root, "#welcome-skip");
    expect(step(root)).toBe("ssh-config");
    await click(root, "#welcome-ssh-skip");
    // A start at login would not be given the profile: off, and said why.
    expect(($(root, "#welcome-start-at-login") as HTMLInputElement).checked).toBe(false);
    expect($(root, "[data-field=login-hint]").textContent).toContain("started with TETHER_PROFILE");
  });

  it("says the app restarts when another platform is chosen", async () => {
    const { root, backend } = await firstStart();
    ($(root, "#welcome-platform-upsun") as HTMLInputElement).click();
    await click(root, "#welcome-next");
    expect(backend.callsTo("welcomeStep")).toEqual([[{ step: "platform", profile: "upsun" }]]);
    expect(step(root)).toBe("restarting");
    expect(root.textContent).toContain("Tether restarts to serve Upsun");
  });

  it("offers to keep or remove lines that are there already", async () => {
    const { root, backend } = await firstStart(
      { platform_chosen: true, ssh_config: { ...sampleWelcome().ssh_config, installed: true } },
      sampleAccount(),
    );
    expect(root.textContent).toContain("These lines of Tether's are at the top of");
    expect($(root, "#welcome-ssh-add").textContent).toBe("Keep them");
    expect($(root, "#welcome-ssh-skip").textContent).toBe("Remove them");
    await click(root, "#welcome-ssh-skip");
    expect(backend.callsTo("welcomeStep")).toEqual([[{ step: "ssh_config", add: false }]]);
  });

  it("shows why a step failed and stays on it", async () => {
    m = await mount({
      welcome: async () => sampleWelcome({ platform_chosen: true }),
      welcomeStep: () => Promise.reject({ code: "other", message: "cannot edit /home/ada/.ssh/config: read-only" }),
    });
    expect(step(m.root)).toBe("ssh-config");
    await click(m.root, "#welcome-ssh-add");
    expect(step(m.root)).toBe("ssh-config");
    expect($(m.root, "[role=alert]").textContent).toContain("Cannot edit /home/ada/.ssh/config: read-only.");
  });

  it("goes on when the sign-in finished through the tray", async () => {
    let account = signedOutAccount();
    m = await mount({
      account: async () => account,
      welcome: async () => sampleWelcome({ platform_chosen: true }),
    });
    expect(step(m.root)).toBe("sign-in");
    m.backend.emitChanged();
    await settle();
    expect(step(m.root)).toBe("sign-in");
    account = sampleAccount();
    m.backend.emitChanged();
    await settle();
    expect(step(m.root)).toBe("ssh-config");
  });

  it("signs in as the tray asked when the tray could not (no keyring)", async () => {
    m = await mount({
      account: async () => signedOutAccount(),
      welcome: async () => sampleWelcome({ platform_chosen: true }),
    });
    m.backend.emitNavigate("sign-in-mfa");
    await settle();
    expect(m.backend.callsTo("signIn")).toEqual([[{ mfa: true, method: "window" }]]);
    // Other views wait for the welcome to end.
    m.backend.emitNavigate("settings");
    await settle();
    expect(step(m.root)).toBe("ssh-config");
    expect(m.root.querySelector("#settings")).toBeNull();
  });

  it("a window the tray opened for a sign-in starts it in the welcome", async () => {
    location.hash = "#sign-in";
    try {
      m = await mount({
        account: async () => signedOutAccount(),
        welcome: async () => sampleWelcome({ platform_chosen: true }),
      });
      expect(m.backend.callsTo("signIn")).toEqual([[{ mfa: false, method: "window" }]]);
    } finally {
      location.hash = "";
    }
  });

  it("a window without the welcome under way is the usual one", async () => {
    m = await mount();
    expect(m.root.querySelector("#welcome")).toBeNull();
    expect(m.root.querySelector(".topbar")).not.toBeNull();
  });
});
