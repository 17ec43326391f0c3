import { releasedVersions, resolveCommit } from "../infra/adapters/recipes";
import { CatalogueEntry, LeasedCanonical, parseLeasedCanonical, WarmConfig } from "../infra/config";
import { warmConfig, warmResources } from "./warm-state";
import type { RunnerContext } from "./context";
import { Stack } from "@pulumi/pulumi/automation";
import { selectStack, stackExists } from "./workspace";

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
  /** The warm stack's ABRA_DIR: its recipe checkouts, kept fetched, are where a run clones its own from. */
  abraDir: string;
  /** The shared Keycloak's domain, when the warm stack has one. */
  keycloakDomain?: string;
  /**
   * Its admin password, when the warm stack made that Keycloak (a secret output of the stack). Kept in
   * memory only, and handed to the processes that need it in their environment.
   */
  keycloakAdminPassword?: string;
  enrolled: string[];
  canonicals: Record<string, LeasedCanonical>;
}

export async function warmContext(context: RunnerContext): Promise<WarmContext> {
  const { settings, defaults } = context;
  if (!(await stackExists("warm", settings))) {
    return {
      baseDomain: defaults.baseDomain.value,
      server: "default",
      proxyUrl: defaults.proxyUrl.value,
      dnsrrEndpoints: true,
      abraDir: defaults.abraDir.value,
      enrolled: [],
      canonicals: {},
    };
  }
  const stack = await selectStack("warm", settings);
  const config = await warmConfig(stack);
  const canonicals: Record<string, LeasedCanonical> = {};
  const resources = await warmResources(stack);
  for (const recipe of Object.keys(config.canonicals)) {
    const outputs = resources.find((resource) => resource.type === "Canonical" && resource.name === recipe)?.outputs;
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
    keycloakAdminPassword: await keycloakAdminPasswordOf(stack),
    enrolled: Object.keys(config.canonicals),
    canonicals,
  };
}

async function keycloakAdminPasswordOf(stack: Stack): Promise<string | undefined> {
  const value = (await stack.outputs()).keycloakAdminPassword?.value;
  return typeof value === "string" && value !== "" ? value : undefined;
}

/**
 * The shared Keycloak's admin password warmstack hands on: none when the operator gave one
 * (WARMSTACK_KEYCLOAK_ADMIN_PASSWORD[_FILE], for a Keycloak warmstack did not make), else the warm
 * stack's.
 */
export function warmKeycloakPassword(warm: WarmContext, env: NodeJS.ProcessEnv): string | undefined {
  return env.WARMSTACK_KEYCLOAK_ADMIN_PASSWORD || env.WARMSTACK_KEYCLOAK_ADMIN_PASSWORD_FILE ? undefined : warm.keycloakAdminPassword;
}

/** The same, as the environment of a process that needs it (a run stack's engine and providers). */
export function keycloakAdminEnv(warm: WarmContext, env: NodeJS.ProcessEnv): Record<string, string> {
  const password = warmKeycloakPassword(warm, env);
  return password === undefined ? {} : { WARMSTACK_KEYCLOAK_ADMIN_PASSWORD: password };
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
