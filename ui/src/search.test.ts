import { describe, expect, it } from "vitest";
import { sampleCatalog } from "./backend/mock";
import { filterCatalog, pinnedApps, searchTerms, withoutPinned } from "./search";
import { appKey } from "./format";

const keys = (query: string) =>
  filterCatalog(sampleCatalog(), query).flatMap((p) =>
    p.environments.flatMap((e) => (e.apps.length ? e.apps.map((a) => appKey(a.app)) : [`${p.id}/${e.id}`])),
  );

describe("filterCatalog", () => {
  it("keeps everything for a blank query", () => {
    expect(filterCatalog(sampleCatalog(), "   ")).toEqual(sampleCatalog());
    expect(searchTerms("  A  b ")).toEqual(["a", "b"]);
  });

  it("matches project titles and ids, case-insensitively", () => {
    expect(keys("SHOP")).toEqual(["abc123/main/web", "abc123/main/worker", "abc123/feature-x"]);
    expect(keys("def4")).toEqual(["def456/staging/app", "def456/old"]);
  });

  it("matches environment ids and titles", () => {
    expect(keys("staging")).toEqual(["def456/staging/app"]);
    expect(keys("feature x")).toEqual(["abc123/feature-x"]);
  });

  it("matches app names", () => {
    expect(keys("worker")).toEqual(["abc123/main/worker"]);
  });

  it("needs every term to match somewhere in project, environment and app", () => {
    expect(keys("shop web")).toEqual(["abc123/main/web"]);
    expect(keys("shop main wor")).toEqual(["abc123/main/worker"]);
    expect(keys("blog web")).toEqual([]);
    expect(keys("nothing-like-this")).toEqual([]);
  });

  it("does not change the catalog it filters", () => {
    const catalog = sampleCatalog();
    filterCatalog(catalog, "web");
    expect(catalog).toEqual(sampleCatalog());
  });
});

describe("pinned apps", () => {
  it("are listed on their own and left out of their environment", () => {
    const catalog = sampleCatalog();
    expect(pinnedApps(catalog).map((p) => appKey(p.app.app))).toEqual(["abc123/main/worker"]);
    const rest = withoutPinned(catalog);
    expect(rest[0].environments[0].apps.map((a) => a.app.app)).toEqual(["web"]);
    // Environments without apps (not running) stay.
    expect(rest[0].environments.map((e) => e.id)).toEqual(["main", "feature-x"]);
  });

  it("drop an environment whose apps are all pinned", () => {
    const catalog = sampleCatalog();
    catalog[1].environments[0].apps[0].pinned = true;
    expect(withoutPinned(catalog)[1].environments.map((e) => e.id)).toEqual(["old"]);
  });
});

describe("projects whose environments could not be listed", () => {
  it("are kept when the search names them, with their problem", () => {
    const found = filterCatalog(sampleCatalog(), "vault");
    expect(found.map((p) => p.id)).toEqual(["vault1"]);
    expect(found[0].problem?.message).toContain("multi-factor");
    expect(filterCatalog(sampleCatalog(), "shop").map((p) => p.id)).toEqual(["abc123"]);
  });
});
