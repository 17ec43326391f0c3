import { existsSync } from "node:fs";
import { readdir, readFile, rm } from "node:fs/promises";
import * as path from "node:path";
import { ConcurrentUpdateError, LocalWorkspace } from "@pulumi/pulumi/automation";
import { Command } from "commander";
import { z } from "zod";
import { readEnvFile } from "../../infra/adapters/app-env";
import { CONFIG_NAMESPACE } from "../../infra/config";
import { listLeases, readLease, releaseLease } from "../../infra/adapters/leases";
import { StackDeployer } from "../../infra/adapters/stack-deployer";
import { domainSchema, parseRunStackName, recipeNameSchema, serverNameSchema, WARM_LEASE_HOLDER } from "../../infra/naming";
import { describeTarget, planReap, ReapDecision, ReapFacts, ReapPlan } from "../../infra/reaper";
import { putCanonicalBack, RUN_OWNER_KEY } from "../../infra/run-app";
import { adminConnection } from "../../infra/run-realm";
import { endRunProcesses } from "../processes";
import { isRegistrationLive, listRegistrations, runWorkDir, unregisterRun } from "../run-registry";
import { resultsRoot } from "../results";
import { pulumiEnv, RunnerSettings, runnerSettings, selectStack } from "../workspace";

/**
 * `warmstack reap`: removes what runs that are no longer alive left behind — their stacks (destroyed,
 * so their realms and apps go the normal way), then realms and apps found by their owner markers
 * (a killed run's provider may have finished a create its state never recorded), then the dead runs'
 * registrations. It judges only by live registrations and markers, never by age.
 */
const absoluteDir = z.string().refine((value) => path.isAbsolute(value) && !value.split("/").includes(".."), {
  error: "must be an absolute path without '..'",
});
const loopbackUrl = z
  .string()
  .refine((value) => URL.canParse(value) && /^http:\/\/(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|localhost)(:\d+)?\/?$/.test(value), {
    error: "must be an http URL on loopback, e.g. http://127.0.0.1:47080",
  });

const requestSchema = z.object({
  dryRun: z.boolean(),
  json: z.boolean(),
  recipe: recipeNameSchema.optional(),
  keycloakDomain: domainSchema.optional(),
  abraDir: absoluteDir,
  proxyUrl: loopbackUrl,
  stepTimeoutSeconds: z.coerce.number().int().min(10).max(3600),
  /** Unset (a run's own sweep): results are not looked at. */
  keepResultsDays: z.coerce.number().int().min(1).max(3650).optional(),
});
export type ReapRequest = z.infer<typeof requestSchema>;

export interface ReapReport {
  dryRun: boolean;
  /** With --dry-run: what a reap would remove. */
  removed: ReapDecision[];
  kept: ReapDecision[];
  failed: (ReapDecision & { error: string })[];
  /** Facts that could not be gathered (e.g. no Keycloak configured): nothing of that kind was judged. */
  notChecked: string[];
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
 * The backend's stacks, and the ABRA_DIRs their run configs name: each run has its own, and a killed
 * run's provider may have created an app there that its state never recorded.
 */
async function backendStacks(settings: RunnerSettings): Promise<{ stacks: string[]; abraDirs: string[] }> {
  const workspace = await LocalWorkspace.create({ workDir: settings.projectDir, envVars: pulumiEnv(settings) });
  // A backend may qualify names as <org>/<project>/<stack>; the run's name is the last part.
  const stacks = (await workspace.listStacks()).map((summary) => summary.name.split("/").at(-1) ?? summary.name);
  const abraDirs: string[] = [];
  for (const stack of stacks.filter((name) => parseRunStackName(name) !== null)) {
    if (!existsSync(path.join(settings.projectDir, `Pulumi.${stack}.yaml`))) continue;
    const configured = absoluteDir.safeParse((await workspace.getAllConfig(stack))[`${CONFIG_NAMESPACE}:abraDir`]?.value);
    if (configured.success) abraDirs.push(configured.data);
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

/** The pids in a file backend's lock files for a stack (other backends keep locks elsewhere). */
async function lockOwners(settings: RunnerSettings, stack: string): Promise<{ pid: number; host: string }[]> {
  if (!settings.backendUrl.startsWith("file://")) return [];
  const locks = path.join(settings.backendUrl.slice("file://".length), ".pulumi", "locks");
  const entries = await readdir(locks, { withFileTypes: true, recursive: true }).catch(() => []);
  const owners: { pid: number; host: string }[] = [];
  for (const entry of entries.filter((e) => e.isFile() && path.basename(e.parentPath) === stack && e.name.endsWith(".json"))) {
    const lock = JSON.parse(await readFile(path.join(entry.parentPath, entry.name), "utf8")) as { pid?: unknown; hostname?: unknown };
    owners.push({ pid: Number(lock.pid), host: String(lock.hostname) });
  }
  return owners;
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
    if (!(error instanceof ConcurrentUpdateError)) throw error;
    const owners = await lockOwners(settings, name);
    const alive = owners.filter((owner) => isRegistrationLive({ stack: name, pid: owner.pid, host: owner.host, startedAt: "" }));
    if (owners.length === 0 || alive.length > 0) {
      throw new Error(`it is locked by ${owners.length === 0 ? "a process this backend does not name" : `live process ${alive.map((o) => `${o.pid}@${o.host}`).join(", ")}`}; left for a later reap`);
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
      const keycloak = await adminConnection({ keycloakDomain: request.keycloakDomain!, proxyUrl: request.proxyUrl, stateDir: settings.stateDir });
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
      const lease = await readLease(settings.stateDir, decision.recipe);
      // Taken over by another run since the facts were gathered: that run puts it back itself.
      if (lease?.stack !== decision.stack) return;
      if (decision.stack === WARM_LEASE_HOLDER) {
        // Another up of the warm stack may have taken it over since the facts were gathered.
        if (lease.pid === decision.pid) await releaseLease(settings.stateDir, decision.recipe, decision.stack);
        return;
      }
      await putCanonicalBack(decision.recipe, lease.canonical, lease.volumes);
      await releaseLease(settings.stateDir, decision.recipe, decision.stack);
      return;
    }
    case "registration":
      await rm(runWorkDir(settings.stateDir, decision.stack), { recursive: true, force: true });
      return unregisterRun(settings.stateDir, decision.stack);
    case "results":
      return rm(path.join(resultsRoot(settings.stateDir), decision.stack), { recursive: true, force: true });
  }
}

async function gather(request: ReapRequest, settings: RunnerSettings, scope: ReapScope): Promise<{ facts: ReapFacts; notChecked: string[] }> {
  const notChecked: string[] = [];
  const { stacks, abraDirs } = await backendStacks(settings);
  let realms: ReapFacts["realms"] = [];
  if (request.keycloakDomain === undefined) {
    notChecked.push("realms: no Keycloak named (--keycloak-domain or WARMSTACK_KEYCLOAK_DOMAIN)");
  } else {
    try {
      const keycloak = await adminConnection({ keycloakDomain: request.keycloakDomain, proxyUrl: request.proxyUrl, stateDir: settings.stateDir });
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
  const leases = (await listLeases(settings.stateDir)).map((lease) =>
    lease.stack === WARM_LEASE_HOLDER
      ? {
          recipe: lease.recipe,
          stack: lease.stack,
          pid: lease.pid,
          holderLive: lease.pid === undefined ? undefined : isRegistrationLive({ stack: lease.stack, pid: lease.pid, host: lease.host, startedAt: lease.takenAt }),
        }
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
  return (await listRegistrations(settings.stateDir)).map((registration) => ({
    registration,
    live: !(scope.assumeDead && registration.stack === scope.stack) && isRegistrationLive(registration),
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
  request: ReapRequest,
  settings: RunnerSettings,
  onAction: (line: string) => void,
  scope: ReapScope = { recipe: request.recipe },
): Promise<ReapReport> {
  if (!request.dryRun) await endDeadRuns(settings, scope);
  const { facts, notChecked } = await gather(request, settings, scope);
  const plan: ReapPlan = planReap(facts);
  // A run sweeping up after itself removes its own registration last, once it has written its results.
  const ownRegistration = (d: ReapDecision) => scope.assumeDead === true && d.kind === "registration";
  const removing = plan.remove.filter((d) => inScope(scope, d) && !ownRegistration(d)).sort((a, b) => ORDER.indexOf(a.kind) - ORDER.indexOf(b.kind));
  const report: ReapReport = { dryRun: request.dryRun, removed: [], kept: plan.keep.filter((d) => inScope(scope, d)), failed: [], notChecked };
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

export function registerReap(program: Command): void {
  program
    .command("reap")
    .description("Remove run stacks, realms, run apps and registrations that belong to no live run")
    .option("--dry-run", "list what would be removed, remove nothing", false)
    .option("--json", "print the report as JSON", false)
    .option("--recipe <recipe>", "only what runs of this recipe left")
    .option("--keycloak-domain <domain>", "the shared Keycloak whose realms to judge (default: WARMSTACK_KEYCLOAK_DOMAIN)")
    .option("--abra-dir <dir>", "an ABRA_DIR whose run apps to judge, besides those the run stacks' configs name (default: WARMSTACK_ABRA_DIR or <stateDir>/abra)")
    .option("--proxy-url <url>", "the proxy on loopback that reaches the apps and Keycloak (default: WARMSTACK_PROXY_URL)")
    .option("--step-timeout-seconds <n>", "deadline of each destroy, refresh and undeploy", "600")
    .option("--keep-results-days <n>", "keep finished runs' results (under <stateDir>/results) this many days", "30")
    .action(async (options: Record<string, unknown>) => {
      const settings = runnerSettings();
      const parsed = requestSchema.safeParse({
        dryRun: options.dryRun === true,
        json: options.json === true,
        recipe: options.recipe,
        keycloakDomain: options.keycloakDomain ?? (process.env.WARMSTACK_KEYCLOAK_DOMAIN || undefined),
        abraDir: options.abraDir ?? process.env.WARMSTACK_ABRA_DIR ?? path.join(settings.stateDir, "abra"),
        proxyUrl: options.proxyUrl ?? process.env.WARMSTACK_PROXY_URL ?? "http://127.0.0.1:47080",
        stepTimeoutSeconds: options.stepTimeoutSeconds,
        keepResultsDays: options.keepResultsDays,
      });
      if (!parsed.success) {
        throw new Error(parsed.error.issues.map((issue) => `--${String(issue.path[0]).replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}: ${issue.message}`).join("; "));
      }
      const request = parsed.data;
      const report = await reap(request, settings, request.json ? () => undefined : (line) => process.stdout.write(`${line}\n`));
      if (request.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      if (report.failed.length > 0) process.exitCode = 1;
    });
}
