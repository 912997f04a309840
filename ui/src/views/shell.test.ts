import { afterEach, describe, expect, it } from "vitest";
import type { ShellView } from "../backend/types";
import { $, click, mount, settle, type Mounted } from "../test-utils";
import { TRAY_EXTENSION } from "./shell";

let m: Mounted | undefined;
afterEach(() => m?.app.destroy());

const build = { version: "1.2.3", commit: "abc1234" };

describe("shell info", () => {
  it("shows the build and no notice when a tray hosts the app", async () => {
    m = await mount({ shell: async () => ({ ...build, tray_host: true }) });
    expect($(m.root, "#about").textContent).toBe("Tether 1.2.3 (abc1234)");
    expect($(m.root, "#tray-notice").hidden).toBe(true);
  });

  it("says why there is no tray icon and how to get one, and the notice goes when a tray comes", async () => {
    let shell: ShellView = { ...build, tray_host: false };
    m = await mount({ shell: async () => shell });
    const notice = $(m.root, "#tray-notice");
    expect(notice.hidden).toBe(false);
    expect(notice.textContent).toContain("No tray icon on this desktop");
    expect(notice.textContent).toContain("closing it only hides it");
    expect(notice.textContent).toContain(TRAY_EXTENSION);
    shell = { ...build, tray_host: true };
    m.backend.emitChanged();
    await settle();
    expect(notice.hidden).toBe(true);
  });

  it("quits from the notice, the tray's Quit being out of reach", async () => {
    m = await mount({ shell: async () => ({ ...build, tray_host: false }) });
    await click(m.root, "#quit");
    expect(m.backend.callsTo("quit")).toHaveLength(1);
  });

  it("shows a failure to read the build as an error", async () => {
    m = await mount({
      shell: async () => {
        throw { code: "other", message: "the app is gone" };
      },
    });
    expect($(m.root, "#error").textContent).toContain("The app is gone");
  });
});
