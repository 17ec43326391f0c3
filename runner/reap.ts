import { existsSync } from "node:fs";
import { readdir, readFile, rm } from "node:fs/promises";
import * as path from "node:path";
import { LocalWorkspace } from "@pulumi/pulumi/automation";
import { readEnvFile } from "../infra/adapters/app-env";
import { CONFIG_NAMESPACE } from "../infra/config";
import { coordinationAt } from "../infra/adapters/coordination";
import { StackDeployer } from "../infra/adapters/stack-deployer";
import { domainSchema, parseRunStackName, serverNameSchema, WARM_LEASE_HOLDER } from "../infra/naming";
import { describeTarget, planReap, ReapDecision, ReapFacts, ReapPlan } from "../infra/reaper";
import { putCanonicalBack, RUN_OWNER_KEY } from "../infra/run-app";
import { adminConnection } from "../infra/run-realm";
import type { RunnerContext } from "./context";
import { engineFailure } from "./engine-errors";
import { endRunProcesses, warmOperationMark } from "./processes";
import { recoverWarmStack } from "./warm-recovery";
import { runWorkDir } from "./run-plan";
import { resultsRoot } from "./results";
import { describeLock, stackLocks } from "./stack-locks";
import { warmContext, warmKeycloakPassword } from "./warm-context";
import { pulumiEnv, RunnerSettings, selectStack, stackExists } from "./workspace";

/**
 * Reap: removes what runs that are no longer alive left behind — their stacks (destroyed,
 * so their realms and apps go the normal way), then realms and apps found by their owner markers
 * (a killed run's provider may have finished a create its state never recorded), then the dead runs'
 * registrations. It judges only by live registrations and markers, never by age.
 */
export interface ReapRequest {
  /** List what would be removed, remove nothing. */
  dryRun: boolean;
  /** Only what runs of this recipe left. */
  recipe?: string;
  /** The shared Keycloak whose realms to judge; unset, realms are not checked (and the report says so). */
  keycloakDomain?: string;
  /** Its admin password when the warm stack made it; else the environment's. Never reported. */
  keycloakAdminPassword?: string;
  /** An ABRA_DIR whose run apps to judge, besides those the run stacks' configs name. */
  abraDir: string;
  /** The proxy on loopback that reaches the apps and Keycloak. */
  proxyUrl: string;
  /** Deadline of each destroy, refresh and undeploy. */
  stepTimeoutSeconds: number;
  /** Unset (a run's own sweep): results are not looked at. */
  keepResultsDays?: number;
}

export interface ReapReport {
  dryRun: boolean;
  /** With --dry-run: what a reap would remove. */
  removed: ReapDecision[];
  kept: ReapDecision[];
  failed: (ReapDecision & { error: string })[];
  /** Facts that could not be gathered (e.g. no Keycloak configured): nothing of that kind was judged. */
  notChecked: string[];
  /** What a crashed operation of the warm stack had left (its dead lock, its stray processes), settled by this reap. */
  warmStack?: { clearedLocks: string[]; endedPids: number[]; refreshed: boolean; heldBy: string[] };
}

/** Limits a reap to one recipe's runs, or to one run (the runner cleaning up after itself). */
export interface ReapScope {
  recipe?: string;
  stack?: string;
  /** For a run cleaning up after itself: its own registration must not keep its leftovers alive. */
  assumeDead?: boolean;
}

function ownerOf(decision: ReapDecision): string {
  return decision.kind === "realm" ? `run-${decision.realm}` : decision.kind === "app" ? decision.owner : decision.stack;
}

function inScope(scope: ReapScope, decision: ReapDecision): boolean {
  // A run sweeping up after itself keeps its own report, whatever its age.
  if (decision.kind === "results" && scope.stack !== undefined) return false;
  // The warm stack's lease belongs to no run: a run sweeping up after itself never frees it.
  if (decision.kind === "lease" && decision.stack === WARM_LEASE_HOLDER) return scope.stack === undefined && (scope.recipe === undefined || decision.recipe === scope.recipe);
  const owner = ownerOf(decision);
  if (scope.stack !== undefined && owner !== scope.stack) return false;
  return scope.recipe === undefined || parseRunStackName(owner)?.recipe === scope.recipe;
}

/**
 * The backend's stacks, and the ABRA_DIRs their configs name: each run has its own, and a killed
 * run's provider may have created an app there that its state never recorded; the warm stack's
 * holds the apps of its Keycloak canaries, each marked with the run it registered as.
 */
async function backendStacks(settings: RunnerSettings): Promise<{ stacks: string[]; abraDirs: string[] }> {
  const workspace = await LocalWorkspace.create({ workDir: settings.projectDir, envVars: pulumiEnv(settings) });
  // A backend may qualify names as <org>/<project>/<stack>; the run's name is the last part.
  const stacks = (await workspace.listStacks()).map((summary) => summary.name.split("/").at(-1) ?? summary.name);
  const abraDirs: string[] = [];
  for (const stack of stacks.filter((name) => parseRunStackName(name) !== null || name === "warm")) {
    if (!existsSync(path.join(settings.projectDir, `Pulumi.${stack}.yaml`))) continue;
    const configured = (await workspace.getAllConfig(stack))[`${CONFIG_NAMESPACE}:abraDir`]?.value;
    if (configured !== undefined && path.isAbsolute(configured) && !configured.split("/").includes("..")) abraDirs.push(configured);
  }
  return { stacks, abraDirs };
}

async function runApps(abraDir: string): Promise<ReapFacts["runApps"][number][]> {
  const serversDir = path.join(abraDir, "servers");
  const servers = await readdir(serversDir).catch((error: NodeJS.ErrnoException) => {
    if (error.code === "ENOENT") return [] as string[];
    throw error;
  });
  const apps: ReapFacts["runApps"][number][] = [];
  for (const server of servers.filter((name) => serverNameSchema.safeParse(name).success)) {
    for (const file of (await readdir(path.join(serversDir, server))).filter((name) => name.endsWith(".env"))) {
      const domain = file.slice(0, -".env".length);
      if (!domainSchema.safeParse(domain).success) continue;
      const owner = (await readEnvFile(path.join(serversDir, server, file))).get(RUN_OWNER_KEY);
      if (owner !== undefined) apps.push({ abraDir, server, domain, owner });
    }
  }
  return apps;
}

/** Destroys and removes a run stack whose run is over, whatever state a killed run left it in. */
export async function destroyRunStack(name: string, settings: RunnerSettings, timeoutMs: number): Promise<void> {
  // The engine a killed runner started keeps running (and holds the lock) until it is ended.
  await endRunProcesses(name);
  const stack = await selectStack(name, settings);
  // A killed run leaves a pending create behind (the provider may even have finished it unobserved):
  // clearing it lets destroy proceed; the markers let the realm and app passes find the thing itself.
  const refresh = () => stack.refresh({ clearPendingCreates: true, signal: AbortSignal.timeout(timeoutMs) });
  try {
    await refresh();
  } catch (error) {
    if (engineFailure(error).kind !== "locked") throw error;
    const locks = await stackLocks(settings, name);
    const kept = locks.filter((lock) => lock.owner !== "dead");
    if (locks.length === 0 || kept.length > 0) {
      throw new Error(`it is locked by ${locks.length === 0 ? "a process this backend does not name" : kept.map(describeLock).join(", ")}; left for a later reap`);
    }
    await stack.cancel();
    await refresh();
  }
  await stack.destroy({ signal: AbortSignal.timeout(timeoutMs) });
  await stack.workspace.removeStack(name);
}

async function remove(decision: ReapDecision, request: ReapRequest, settings: RunnerSettings): Promise<void> {
  const timeoutMs = request.stepTimeoutSeconds * 1000;
  switch (decision.kind) {
    case "stack":
      return destroyRunStack(decision.stack, settings, timeoutMs);
    case "realm": {
      const keycloak = await adminConnection({ keycloakDomain: request.keycloakDomain!, proxyUrl: request.proxyUrl, stateDir: settings.stateDir }, request.keycloakAdminPassword);
      try {
        await keycloak.deleteRealm(decision.realm);
      } finally {
        await keycloak.close();
      }
      return;
    }
    case "app": {
      const deployer = new StackDeployer({ abraDir: decision.abraDir, server: decision.server, proxyUrl: request.proxyUrl });
      const app = { recipe: parseRunStackName(decision.owner)!.recipe, domain: decision.domain };
      await deployer.undeploy(app, { timeoutMs });
      await deployer.remove(app, { volumes: true });
      return;
    }
    case "lease": {
      const coordination = coordinationAt(settings.stateDir);
      const lease = await coordination.readLease(decision.recipe);
      // Taken over by another run since the facts were gathered: that run puts it back itself.
      if (lease?.stack !== decision.stack) return;
      if (decision.stack === WARM_LEASE_HOLDER) {
        // Another up of the warm stack may have taken it over since the facts were gathered.
        if (lease.pid === decision.pid) await coordination.releaseLease(decision.recipe, decision.stack);
        return;
      }
      await putCanonicalBack(decision.recipe, lease.canonical, lease.volumes);
      await coordination.releaseLease(decision.recipe, decision.stack);
      return;
    }
    case "registration":
      await rm(runWorkDir(settings.stateDir, decision.stack), { recursive: true, force: true });
      return coordinationAt(settings.stateDir).unregister(decision.stack);
    case "results":
      return rm(path.join(resultsRoot(settings.stateDir), decision.stack), { recursive: true, force: true });
  }
}

async function gather(request: ReapRequest, settings: RunnerSettings, scope: ReapScope): Promise<{ facts: ReapFacts; notChecked: string[] }> {
  const notChecked: string[] = [];
  const { stacks, abraDirs } = await backendStacks(settings);
  let realms: ReapFacts["realms"] = [];
  if (request.keycloakDomain === undefined) {
    notChecked.push("realms: no Keycloak named (--keycloak-domain, WARMSTACK_KEYCLOAK_DOMAIN, or the warm stack's)");
  } else {
    try {
      const keycloak = await adminConnection({ keycloakDomain: request.keycloakDomain, proxyUrl: request.proxyUrl, stateDir: settings.stateDir }, request.keycloakAdminPassword);
      try {
        realms = await keycloak.listRealms();
      } finally {
        await keycloak.close();
      }
    } catch (error) {
      // A Keycloak that is down holds no realm a reap could delete now; the rest is still reaped.
      notChecked.push(`realms on ${request.keycloakDomain}: ${error instanceof Error ? error.message.split("\n")[0] : String(error)}`);
    }
  }
  const apps: ReapFacts["runApps"][number][] = [];
  for (const abraDir of new Set([request.abraDir, ...abraDirs].map((dir) => path.resolve(dir)))) apps.push(...(await runApps(abraDir)));
  // Read last: a run registers before it creates anything, so whatever was seen above that belongs
  // to a run still starting already has its registration here.
  const coordination = coordinationAt(settings.stateDir);
  const leases = (await coordination.listLeases()).map((lease) =>
    lease.stack === WARM_LEASE_HOLDER
      ? { recipe: lease.recipe, stack: lease.stack, pid: lease.pid, holderLive: lease.pid === undefined && lease.heartbeatAt === undefined ? undefined : coordination.isLive(lease) }
      : { recipe: lease.recipe, stack: lease.stack },
  );
  const registrations = await judgedRegistrations(settings, scope);
  const facts: ReapFacts = { stacks, registrations, realms, runApps: apps, leases };
  if (request.keepResultsDays !== undefined) {
    facts.results = await finishedResults(settings.stateDir);
    facts.resultsExpireBefore = new Date(Date.now() - request.keepResultsDays * 86_400_000).toISOString();
  }
  return { facts, notChecked };
}

/** The run result directories under the state dir, with when each run finished (null: unreadable). */
async function finishedResults(stateDir: string): Promise<NonNullable<ReapFacts["results"]>[number][]> {
  const root = resultsRoot(stateDir);
  const stacks = (await readdir(root).catch(() => [] as string[])).filter((name) => parseRunStackName(name) !== null);
  return Promise.all(
    stacks.map(async (stack) => {
      const text = await readFile(path.join(root, stack, "results.json"), "utf8").catch(() => "");
      let finishedAt: unknown;
      try {
        finishedAt = (JSON.parse(text) as { finishedAt?: unknown }).finishedAt;
      } catch {
        finishedAt = null;
      }
      return { stack, finishedAt: typeof finishedAt === "string" && !Number.isNaN(Date.parse(finishedAt)) ? finishedAt : null };
    }),
  );
}

async function judgedRegistrations(settings: RunnerSettings, scope: ReapScope): Promise<ReapFacts["registrations"][number][]> {
  const coordination = coordinationAt(settings.stateDir);
  return (await coordination.listRegistrations()).map((registration) => ({
    registration,
    live: !(scope.assumeDead && registration.stack === scope.stack) && coordination.isLive(registration),
  }));
}

/**
 * A dead run's engine may still be running on this host and take a lease or create an app while the
 * facts are gathered: its processes (and its tests') are ended first, so the facts stay true while
 * they are acted on, and nothing later has to end them again.
 */
async function endDeadRuns(settings: RunnerSettings, scope: ReapScope): Promise<void> {
  for (const { registration, live } of await judgedRegistrations(settings, scope)) {
    if (!live && inScope(scope, { kind: "registration", ...registration, reason: "" })) await endRunProcesses(registration.stack);
  }
}

// Stacks go first: their destroy removes realms and apps and puts canonicals back the normal way;
// a registration goes last so a reap that fails midway still knows the run is dead next time.
const ORDER: ReapDecision["kind"][] = ["stack", "realm", "app", "lease", "registration", "results"];

export async function reap(
  context: RunnerContext,
  request: ReapRequest,
  onAction: (line: string) => void,
  scope: ReapScope = { recipe: request.recipe },
): Promise<ReapReport> {
  const { settings } = context;
  if (!request.dryRun) await endDeadRuns(settings, scope);
  // Only an operator's reap settles the warm stack; a run sweeping up after itself never touches it.
  const warmStack = scope.stack === undefined ? await settleWarmStack(context, request.dryRun, onAction) : undefined;
  const { facts, notChecked } = await gather(request, settings, scope);
  const plan: ReapPlan = planReap(facts);
  // A run sweeping up after itself removes its own registration last, once it has written its results.
  const ownRegistration = (d: ReapDecision) => scope.assumeDead === true && d.kind === "registration";
  const removing = plan.remove.filter((d) => inScope(scope, d) && !ownRegistration(d)).sort((a, b) => ORDER.indexOf(a.kind) - ORDER.indexOf(b.kind));
  const report: ReapReport = { dryRun: request.dryRun, removed: [], kept: plan.keep.filter((d) => inScope(scope, d)), failed: [], notChecked, ...(warmStack ? { warmStack } : {}) };
  const failedStacks = new Set<string>();
  for (const decision of removing) {
    // A registration is the only record that its run died; keep it while that run's leftovers remain.
    if (decision.kind === "registration" && failedStacks.has(decision.stack)) {
      report.kept.push({ ...decision, reason: "its run stack could not be removed yet" });
      continue;
    }
    if (request.dryRun) {
      onAction(`would remove ${describeTarget(decision)}: ${decision.reason}`);
      report.removed.push(decision);
      continue;
    }
    try {
      await remove(decision, request, settings);
      onAction(`removed ${describeTarget(decision)}: ${decision.reason}`);
      report.removed.push(decision);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      onAction(`FAILED to remove ${describeTarget(decision)} (${decision.reason}): ${message}`);
      report.failed.push({ ...decision, error: message });
      if (decision.kind !== "registration") failedStacks.add(ownerOf(decision));
    }
  }
  for (const decision of report.kept) onAction(`kept ${describeTarget(decision)}: ${decision.reason}`);
  for (const what of notChecked) onAction(`not checked: ${what}`);
  return report;
}

/**
 * The warm stack's lock of a dead owner is cleared and its stray processes ended, as before any warm
 * operation; a lock whose owner lives is reported and left alone (a reap waits for nothing).
 */
async function settleWarmStack(context: RunnerContext, dryRun: boolean, onAction: (line: string) => void): Promise<ReapReport["warmStack"]> {
  if (!(await stackExists("warm", context.settings))) return undefined;
  if (dryRun) {
    const locks = await stackLocks(context.settings, "warm");
    for (const lock of locks.filter((entry) => entry.owner === "dead")) onAction(`would clear the warm stack's lock of ${describeLock(lock)}: its owner is gone`);
    return { clearedLocks: [], endedPids: [], refreshed: false, heldBy: locks.filter((entry) => entry.owner !== "dead").map(describeLock) };
  }
  const stack = await selectStack("warm", context.settings, warmOperationMark());
  const recovered = await recoverWarmStack(stack, context.settings, { say: onAction }, null);
  for (const lock of recovered.heldBy) onAction(`kept the warm stack's lock of ${describeLock(lock)}: its owner is alive, or on another host`);
  return { clearedLocks: recovered.clearedLocks.map(describeLock), endedPids: recovered.endedPids, refreshed: recovered.refreshed, heldBy: recovered.heldBy.map(describeLock) };
}

/** A reap on the runner's defaults and the warm stack's Keycloak: what the bridge calls after a run it saw die. */
export async function reapDeadRuns(context: RunnerContext, scope: ReapScope, onAction: (line: string) => void): Promise<ReapReport> {
  const warm = await warmContext(context);
  const request: ReapRequest = {
    dryRun: false,
    keycloakDomain: context.defaults.keycloakDomain?.value ?? warm.keycloakDomain,
    keycloakAdminPassword: warmKeycloakPassword(warm, context.env),
    abraDir: warm.abraDir,
    proxyUrl: warm.proxyUrl,
    stepTimeoutSeconds: 600,
  };
  return reap(context, request, onAction, scope);
}
