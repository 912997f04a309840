// The environments search: pure, so the list can be filtered at every keystroke.
import type { AppView, EnvironmentView, ProjectView } from "./backend/types";

/** The query's terms, lower-cased; blank queries have none. */
export function searchTerms(query: string): string[] {
  return query.toLowerCase().split(/\s+/).filter(Boolean);
}

function haystack(project: ProjectView, env: EnvironmentView | null, app: AppView | null): string {
  return [project.title, project.id, env?.id ?? "", env?.title ?? "", app?.app.app ?? ""].join("\n").toLowerCase();
}

/** Whether every term occurs somewhere in the project, the environment or the app. */
export function matches(terms: string[], project: ProjectView, env: EnvironmentView | null, app: AppView | null): boolean {
  if (terms.length === 0) return true;
  const text = haystack(project, env, app);
  return terms.every((t) => text.includes(t));
}

/**
 * The catalog narrowed to what `query` matches (case-insensitive, all whitespace-separated
 * terms must match): apps that match, environments with a matching app (or, with no apps,
 * matching themselves), projects with such an environment. Order is kept.
 */
export function filterCatalog(projects: ProjectView[], query: string): ProjectView[] {
  const terms = searchTerms(query);
  if (terms.length === 0) return projects;
  const result: ProjectView[] = [];
  for (const project of projects) {
    const environments: EnvironmentView[] = [];
    for (const env of project.environments) {
      if (env.apps.length === 0) {
        if (matches(terms, project, env, null)) environments.push(env);
        continue;
      }
      const apps = env.apps.filter((app) => matches(terms, project, env, app));
      if (apps.length > 0) environments.push({ ...env, apps });
    }
    if (environments.length > 0) result.push({ ...project, environments });
    // A project whose environments could not be listed still shows, with why.
    else if (project.problem && project.environments.length === 0 && matches(terms, project, null, null)) result.push(project);
  }
  return result;
}

export interface Located {
  project: ProjectView;
  environment: EnvironmentView;
  app: AppView;
}

/** The pinned apps of `projects`, in catalog order. */
export function pinnedApps(projects: ProjectView[]): Located[] {
  const found: Located[] = [];
  for (const project of projects) {
    for (const environment of project.environments) {
      for (const app of environment.apps) if (app.pinned) found.push({ project, environment, app });
    }
  }
  return found;
}

/** The catalog without its pinned apps (they are listed in their own group), empty groups dropped. */
export function withoutPinned(projects: ProjectView[]): ProjectView[] {
  const result: ProjectView[] = [];
  for (const project of projects) {
    const environments = project.environments
      .map((env) => ({ ...env, apps: env.apps.filter((a) => !a.pinned), hadApps: env.apps.length > 0 }))
      .filter((env) => !env.hadApps || env.apps.length > 0)
      .map(({ hadApps: _, ...env }) => env);
    if (environments.length > 0 || project.problem) result.push({ ...project, environments });
  }
  return result;
}
