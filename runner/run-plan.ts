import * as path from "node:path";
import { probeHttp } from "../infra/adapters/health";
import { swarmNodes } from "../infra/adapters/nodes";
import { Catalogue, CatalogueEntry, CONFIG_NAMESPACE, LeasedCanonical, RunConfig } from "../infra/config";
import { runStackName, runStackNameSchema } from "../infra/naming";
import { nodeUsable } from "../infra/placement";
import { catalogueEntry, loadCatalogue } from "./catalogue";
import type { RunnerContext } from "./context";
import { remoteAccess } from "./recipe-sources";
import type { RunResults } from "./results";
import { cloneForRun, ensureHead } from "./run-sources";
import { quickLaneFor, WarmContext, warmContext } from "./warm-context";

/** One CI run, as asked for by `warmstack run`, a PR comment or the nightly. */
export interface RunRequest {
  recipe: string;
  /** The PR head commit; "" for the recipe's latest release. */
  ref: string;
  pr?: number;
  /** The PR's head repository, for a PR from a fork; default: the recipe's remote. */
  repo?: string;
  quick: boolean;
  catalogue: string;
  /** The shared Keycloak; default: the warm stack's. */
  keycloakDomain?: string;
  /** How long a quick run waits for the canonical's lease before it runs cold. */
  leaseTimeoutSeconds: number;
  /** Where results.json and summary.md go; default: <stateDir>/results/<run stack>. */
  resultsDir?: string;
  /** A run of the shared Keycloak's canary (against a copy of it): it never promotes. */
  canary?: boolean;
}

/** Everything decided before anything is created. */
export interface RunPlan {
  request: RunRequest;
  entry: CatalogueEntry;
  catalogueDir: string;
  stack: string;
  runId: string;
  /** The run's own ABRA_DIR, with its clones of the recipes it deploys. */
  abraDir: string;
  warm: WarmContext;
  keycloakDomain?: string;
  canonical?: LeasedCanonical;
  sso: RunConfig["sso"];
  ssoFallback?: string;
  /** Fallbacks decided while planning: quick → cold, the shared Keycloak → a cold one. */
  fallbacks: RunResults["fallbacks"];
}

/**
 * Which Keycloak a recipe's realm goes on: the shared one when it answers, else a cold one of the
 * run's own (the cold fallback), with what was found as the reason.
 */
export async function ssoPath(needsSso: boolean, keycloakDomain: string | undefined, proxyUrl: string): Promise<{ sso: RunConfig["sso"]; ssoFallback?: string }> {
  if (!needsSso) return { sso: "none" };
  if (!keycloakDomain) return { sso: "cold-keycloak", ssoFallback: "no shared Keycloak is configured" };
  const probe = await probeHttp({ baseUrl: proxyUrl, path: "/realms/master", host: keycloakDomain });
  if (probe.ok) return { sso: "warm-keycloak" };
  return { sso: "cold-keycloak", ssoFallback: `the shared Keycloak at ${keycloakDomain} answers /realms/master with ${probe.detail}` };
}

async function quickCanonical(context: RunnerContext, catalogue: Catalogue, plan: Pick<RunPlan, "request" | "entry" | "warm" | "fallbacks">): Promise<LeasedCanonical | undefined> {
  const { request } = plan;
  if (!request.quick) return undefined;
  const lane = quickLaneFor(request.recipe, plan.entry, plan.warm);
  if ("fallback" in lane) {
    plan.fallbacks.push({ from: "quick", to: "cold", reason: lane.fallback });
    return undefined;
  }
  const node = lane.canonical.node;
  if (node !== undefined) {
    const placed = nodeUsable((await swarmNodes()).find((candidate) => candidate.hostname === node));
    if (!placed.usable) {
      plan.fallbacks.push({ from: "quick", to: "cold", reason: `the canonical's volumes are on swarm node ${node}, which ${placed.why}` });
      return undefined;
    }
  }
  // The canonical deploys from the warm stack's checkout: the PR head must be there too.
  const checkout = path.join(lane.canonical.deployerSettings.abraDir, "recipes", request.recipe);
  if (!request.ref) return lane.canonical;
  try {
    await ensureHead(checkout, catalogue, request.recipe, request, remoteAccess(context));
    return lane.canonical;
  } catch (error) {
    plan.fallbacks.push({ from: "quick", to: "cold", reason: `the canonical's checkout ${checkout} does not have commit ${request.ref}: ${error instanceof Error ? error.message : String(error)}` });
    return undefined;
  }
}

/**
 * Everything checked before the run stack is created: the catalogue entry, the run's own clones with
 * the PR head fetched, the lane and the SSO path. A bad recipe, ref or catalogue creates no stack;
 * the caller removes the run's working directory when this throws.
 */
export async function planRun(context: RunnerContext, request: RunRequest, runId: string): Promise<RunPlan> {
  const loaded = await loadCatalogue(request.catalogue);
  const entry = catalogueEntry(loaded, request.recipe);
  const warm = await warmContext(context);
  const stack = runStackName(request.recipe, runId);
  const abraDir = path.join(runWorkDir(context.settings.stateDir, stack), "abra");
  const access = remoteAccess(context);
  const checkout = await cloneForRun(abraDir, warm.abraDir, loaded.catalogue, request.recipe, access);
  if (request.ref) await ensureHead(checkout, loaded.catalogue, request.recipe, request, access);
  const fallbacks: RunResults["fallbacks"] = [];
  const canonical = await quickCanonical(context, loaded.catalogue, { request, entry, warm, fallbacks });
  const keycloakDomain = request.keycloakDomain ?? warm.keycloakDomain;
  const sso = await ssoPath(entry.sso, keycloakDomain, warm.proxyUrl);
  if (sso.ssoFallback) fallbacks.push({ from: "warm-keycloak", to: "cold-keycloak", reason: sso.ssoFallback });
  if (sso.sso === "cold-keycloak" && request.recipe !== "keycloak") await cloneForRun(abraDir, warm.abraDir, loaded.catalogue, "keycloak", access);
  return { request, entry, catalogueDir: loaded.dir, stack, runId, abraDir, warm, keycloakDomain, canonical, ...sso, fallbacks };
}

/** A run's own working files (its ABRA_DIR, its progress): removed with its registration. */
export function runWorkDir(stateDir: string, stack: string): string {
  return path.join(stateDir, "runs", runStackNameSchema.parse(stack));
}

/** Where the run's app records its lane and deploys as they happen. */
export function runProgressFile(stateDir: string, stack: string): string {
  return path.join(runWorkDir(stateDir, stack), "progress.jsonl");
}

/** The run stack's config (warmstack:<key>), as stacks/run.ts reads it. */
export function runStackConfig(plan: RunPlan, abraDir: string, stateDir: string): Record<string, { value: string }> {
  const { request, entry, warm } = plan;
  const config: Record<string, string> = {
    recipe: request.recipe,
    runId: plan.runId,
    ref: request.ref,
    mode: plan.canonical ? "quick" : "cold",
    baseDomain: warm.baseDomain,
    server: warm.server,
    abraDir,
    proxyUrl: warm.proxyUrl,
    dnsrrEndpoints: String(warm.dnsrrEndpoints),
    stateDir,
    sso: plan.sso,
    app: JSON.stringify({ health: entry.health, ...(entry.ready ? { ready: entry.ready } : {}), deployTimeoutSeconds: entry.deployTimeoutSeconds }),
    leaseTimeoutSeconds: String(request.leaseTimeoutSeconds),
    progressFile: runProgressFile(stateDir, plan.stack),
  };
  if (request.pr !== undefined) config.pr = String(request.pr);
  if (plan.ssoFallback) config.ssoFallback = plan.ssoFallback;
  if (plan.sso === "warm-keycloak" && plan.keycloakDomain) config.keycloakDomain = plan.keycloakDomain;
  if (plan.canonical) config.canonical = JSON.stringify(plan.canonical);
  return Object.fromEntries(Object.entries(config).map(([key, value]) => [`${CONFIG_NAMESPACE}:${key}`, { value }]));
}
