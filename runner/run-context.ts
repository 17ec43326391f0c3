import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import * as path from "node:path";
import { execa } from "execa";
import { releasedVersions, resolveCommit } from "../infra/adapters/recipes";
import { CatalogueEntry, LeasedCanonical, parseLeasedCanonical, WarmConfig } from "../infra/config";
import { canonicalResourceName } from "../stacks/canonicals";
import { runWorkDir } from "./run-registry";
import { warmConfig, warmResources } from "./warm-state";
import { RunnerSettings, selectStack, stackExists } from "./workspace";

/**
 * What a run takes from the warm stack: where apps live (base domain, proxy, server), the shared
 * Keycloak, and the recipe's canonical. Without a warm stack a run still works, cold, on the local
 * defaults the warm stack would use.
 */
export interface WarmContext {
  baseDomain: string;
  server: string;
  proxyUrl: string;
  dnsrrEndpoints: boolean;
  /** The warm stack's ABRA_DIR: its recipe checkouts are the source of a run's own. */
  abraDir: string;
  /** The shared Keycloak's domain, when the warm stack has one. */
  keycloakDomain?: string;
  enrolled: string[];
  canonicals: Record<string, LeasedCanonical>;
}

export async function warmContext(settings: RunnerSettings, env: NodeJS.ProcessEnv = process.env): Promise<WarmContext> {
  if (!(await stackExists("warm", settings))) {
    const baseDomain = env.WARMSTACK_BASE_DOMAIN ?? "warm.test";
    return {
      baseDomain,
      server: "default",
      proxyUrl: env.WARMSTACK_PROXY_URL ?? "http://127.0.0.1:47080",
      dnsrrEndpoints: true,
      abraDir: env.WARMSTACK_ABRA_DIR ?? path.join(settings.stateDir, "abra"),
      enrolled: [],
      canonicals: {},
    };
  }
  const stack = await selectStack("warm", settings);
  const config = await warmConfig(stack);
  const canonicals: Record<string, LeasedCanonical> = {};
  const resources = await warmResources(stack);
  for (const recipe of Object.keys(config.canonicals)) {
    const outputs = resources.find((resource) => resource.name === canonicalResourceName(recipe))?.outputs;
    const parsed = leasedCanonicalOf(outputs);
    if (parsed) canonicals[recipe] = parsed;
  }
  return {
    baseDomain: config.baseDomain,
    server: config.server,
    proxyUrl: config.proxyUrl,
    dnsrrEndpoints: config.dnsrrEndpoints,
    abraDir: config.abraDir,
    keycloakDomain: sharedKeycloakDomain(config),
    enrolled: Object.keys(config.canonicals),
    canonicals,
  };
}

function sharedKeycloakDomain(config: WarmConfig): string | undefined {
  const keycloak = config.apps.keycloak;
  return keycloak ? (keycloak.domain ?? `keycloak.${config.baseDomain}`) : undefined;
}

/** A seeded canonical's state, as the quick lane needs it; undefined when it was never seeded. */
export function leasedCanonicalOf(outputs: Record<string, unknown> | undefined): LeasedCanonical | undefined {
  if (!outputs?.snapshotId) return undefined;
  const parsed = parseLeasedCanonical(outputs);
  return parsed.success ? parsed.data : undefined;
}

/** The quick lane's canonical, or why the run goes to the cold lane instead. */
export function quickLaneFor(recipe: string, entry: CatalogueEntry, warm: WarmContext): { canonical: LeasedCanonical } | { fallback: string } {
  if (!entry.canonical) return { fallback: `${recipe} is not marked canonical in the recipe catalogue` };
  if (!warm.enrolled.includes(recipe)) return { fallback: `${recipe} is not enrolled in the warm stack (warmstack:canonicals)` };
  const canonical = warm.canonicals[recipe];
  if (!canonical) return { fallback: `${recipe}'s canonical has not been seeded yet (run an up of the warm stack)` };
  return { canonical };
}

/** A run's own ABRA_DIR with clones of the recipes it deploys: concurrent runs never share a checkout. */
export async function prepareRunAbraDir(settings: RunnerSettings, stack: string, warm: WarmContext, recipes: string[], env: NodeJS.ProcessEnv = process.env) {
  const abraDir = path.join(runWorkDir(settings.stateDir, stack), "abra");
  await mkdir(path.join(abraDir, "recipes"), { recursive: true, mode: 0o700 });
  for (const recipe of recipes) {
    const source = recipeSource(warm, recipe, env);
    await execa("git", ["clone", "-q", source, path.join(abraDir, "recipes", recipe)]);
  }
  return abraDir;
}

/** The warm stack's checkout of the recipe, else the operator's recipe source (the bed's fixture repositories). */
export function recipeSource(warm: WarmContext, recipe: string, env: NodeJS.ProcessEnv = process.env): string {
  const warmCheckout = path.join(warm.abraDir, "recipes", recipe);
  if (existsSync(warmCheckout)) return warmCheckout;
  const source = path.join(env.WARMSTACK_RECIPE_SOURCE ?? "/var/cache/warmstack-bed/recipes", recipe);
  if (existsSync(source)) return source;
  throw new Error(`--recipe: no checkout of recipe ${recipe}: neither ${warmCheckout} nor ${source} exists`);
}

/** Whether the ref is a commit of the recipe checkout; a ref that is not is refused before anything is created. */
export async function hasCommit(recipeDir: string, ref: string): Promise<boolean> {
  return resolveCommit(recipeDir, ref).then(
    () => true,
    () => false,
  );
}

/**
 * The newest release, when the deployed ref is it (by version, or by being the commit it tags):
 * only a green cold run on the latest promotes.
 */
export async function latestReleaseDeployed(recipeDir: string, deployed: string): Promise<{ latest: string; isLatest: boolean }> {
  const newest = (await releasedVersions(recipeDir)).versions.at(-1)?.raw;
  if (!newest) return { latest: "", isLatest: false };
  if (deployed === newest) return { latest: newest, isLatest: true };
  const [newestCommit, deployedCommit] = await Promise.all([resolveCommit(recipeDir, newest), resolveCommit(recipeDir, deployed).catch(() => "")]);
  return { latest: newest, isLatest: newestCommit === deployedCommit };
}
