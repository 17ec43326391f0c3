import { randomBytes } from "node:crypto";
import { runCanaryRecipe, CanaryRunResult } from "./adapters/canary-runs";
import { coordinationAt, whileBeating } from "./adapters/coordination";
import type { AppRef, Deployer, HealthSpec } from "./adapters/deployer";
import { localNode } from "./adapters/nodes";
import { seedVolumes, SnapshotInfo, SnapshotOptions } from "./adapters/snapshots";
import { createStackVolume } from "./adapters/swarm";
import { PINNED_NODE_KEY, runDomain, runStackName, stackNameForDomain, volumeName } from "./naming";
import { RUN_OWNER_KEY } from "./run-app";

/**
 * The canary of a shared-Keycloak upgrade: a cold Keycloak at the target version whose data is the
 * live one's pre-upgrade snapshot (so the real migration runs on real data), then the catalogue's
 * canary recipes, each a whole cold run with its realm on that Keycloak. Green only when every run
 * passed. Whatever it made is removed either way; a killed canary is registered as a run (its app
 * carries that run's owner mark), so `warmstack reap` removes what it left.
 */
export interface CanarySpec {
  /** The catalogue's SSO recipes marked `canary: true`, run in this order. */
  recipes: string[];
  /** The runner's run command, e.g. [node, …/dist/runner/cli.js, "run"]; each recipe is one run of it. */
  runCommand: string[];
  /** The recipe catalogue those runs read. */
  catalogue: string;
  /** The runner's state directory: the canary registers there, its runs too. */
  stateDir: string;
  /** The canary Keycloak's domain is a run domain under it. */
  baseDomain: string;
  /** Bound on each canary run, from its start to its results. Default: 45 minutes. */
  runTimeoutSeconds?: number;
}

export interface CanaryOutcome {
  /** The Keycloak version the canary ran. */
  version: string;
  passed: boolean;
  /** One line: what passed, or what failed and where. */
  reason: string;
  durationMs: number;
  runs: CanaryRunResult[];
}

/** What the canary needs of the live Keycloak it stands in for. */
export interface CanaryTarget {
  deployer: Deployer;
  live: AppRef;
  /** The live one's pre-upgrade snapshot, taken just before. */
  snapshot: SnapshotInfo;
  snapshotOptions: SnapshotOptions;
  version: string;
  health: HealthSpec;
  deployTimeoutMs: number;
}

const DEFAULT_RUN_TIMEOUT_SECONDS = 2700;

export async function runKeycloakCanary(spec: CanarySpec, target: CanaryTarget): Promise<CanaryOutcome> {
  const startedAt = Date.now();
  const runId = randomBytes(3).toString("hex");
  const owner = runStackName(target.live.recipe, runId);
  const canary: AppRef = { recipe: target.live.recipe, domain: runDomain(target.live.recipe, runId, spec.baseDomain) };
  const coordination = coordinationAt(spec.stateDir);
  // Registered before anything exists: a reap never mistakes a live canary's app for a leftover.
  await coordination.register(owner);
  try {
    return await whileBeating(
      () => coordination.heartbeat(owner),
      async () => {
        try {
          const booted = await bootCanary(target, canary, owner);
          const runs = booted.ok ? await runRecipes(spec, canary) : [];
          return outcomeOf(target.version, booted, runs, Date.now() - startedAt);
        } finally {
          await removeCanary(target.deployer, canary);
        }
      },
    );
  } finally {
    await coordination.unregister(owner);
  }
}

/**
 * The canary Keycloak, with the live data, at the target version: on this runner's node, where the
 * warm stack keeps the live Keycloak's volumes and takes its snapshots.
 */
async function bootCanary(target: CanaryTarget, canary: AppRef, owner: string): Promise<{ ok: true } | { ok: false; why: string }> {
  const node = (await localNode()).hostname;
  await target.deployer.newApp(canary, { version: target.version, env: { [RUN_OWNER_KEY]: owner, [PINNED_NODE_KEY]: node } });
  await seedFromSnapshot(target, canary);
  try {
    await target.deployer.deploy(canary, { ref: target.version, health: target.health, timeoutMs: target.deployTimeoutMs });
    return { ok: true };
  } catch (error) {
    return { ok: false, why: `the canary Keycloak at ${target.version} on the live data did not come up: ${reasonOf(error)}` };
  }
}

/** Each volume of the snapshot fills the canary's volume of the same role (`<stack>_data` → `<canary stack>_data`). */
async function seedFromSnapshot(target: CanaryTarget, canary: AppRef): Promise<void> {
  const liveStack = stackNameForDomain(target.live.domain);
  const canaryStack = stackNameForDomain(canary.domain);
  const into: Record<string, string> = {};
  for (const volume of target.snapshot.volumes) {
    if (!volume.startsWith(`${liveStack}_`)) throw new Error(`the live Keycloak's snapshot holds volume ${volume}, which is not one of stack ${liveStack}`);
    into[volume] = volumeName(canaryStack, volume.slice(liveStack.length + 1));
  }
  for (const volume of Object.values(into)) await createStackVolume(canaryStack, volume);
  await seedVolumes({ app: target.snapshot.app }, into, target.snapshotOptions);
}

async function runRecipes(spec: CanarySpec, canary: AppRef): Promise<CanaryRunResult[]> {
  const results: CanaryRunResult[] = [];
  for (const recipe of spec.recipes) {
    results.push(
      await runCanaryRecipe({
        command: spec.runCommand,
        recipe,
        keycloakDomain: canary.domain,
        catalogue: spec.catalogue,
        stateDir: spec.stateDir,
        timeoutMs: (spec.runTimeoutSeconds ?? DEFAULT_RUN_TIMEOUT_SECONDS) * 1000,
      }),
    );
  }
  return results;
}

async function removeCanary(deployer: Deployer, canary: AppRef): Promise<void> {
  if ((await deployer.appEnv(canary)) === null) return;
  await deployer.undeploy(canary);
  await deployer.remove(canary, { volumes: true });
}

export function outcomeOf(version: string, booted: { ok: true } | { ok: false; why: string }, runs: readonly CanaryRunResult[], durationMs: number): CanaryOutcome {
  const seconds = `${Math.round(durationMs / 1000)} s`;
  if (!booted.ok) return { version, passed: false, reason: `${booted.why} (canary of ${seconds})`, durationMs, runs: [...runs] };
  const failed = runs.filter((run) => run.outcome !== "passed");
  const reason =
    failed.length === 0
      ? `the canary passed: ${runs.map((run) => run.recipe).join(", ")} green against a copy of the live Keycloak at ${version} (${seconds})`
      : `the canary failed: ${failed.map(describeFailure).join("; ")} — against a copy of the live Keycloak at ${version} (${seconds})`;
  return { version, passed: failed.length === 0 && runs.length > 0, reason, durationMs, runs: [...runs] };
}

function describeFailure(run: CanaryRunResult): string {
  const where = run.failedStep ? ` in step ${run.failedStep}` : "";
  return `${run.recipe} ${run.outcome}${where}${run.error ? ` (${run.error})` : ""}${run.resultsFile ? `, results in ${run.resultsFile}` : ""}`;
}

function reasonOf(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split("\n")[0]!.slice(0, 500);
}
