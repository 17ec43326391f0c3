import * as pulumi from "@pulumi/pulumi";
import type { AppRef, Deployer, HealthSpec } from "./adapters/deployer";
import { createDeployer, DeployerSettings } from "./adapters/deployers";
import { coordinationAt, waitForLease } from "./adapters/coordination";
import { isCommitRef, releasedVersions } from "./adapters/recipes";
import { recordRunProgress } from "./adapters/run-progress";
import { removeFinishedHelpers, restoreSnapshot, snapshotInfo } from "./adapters/snapshots";
import { resolveNode } from "./adapters/nodes";
import type { LeasedCanonical } from "./config";
import { assertDomain, assertRecipeName, parseRunStackName, stackNameForDomain, WARM_OWNER_KEY, WARM_OWNER_MARK } from "./naming";
import { inputChecker, lazyProvider, ResourceArgs, TypedResource, withoutUndefined } from "./provider-support";
import { isVersion } from "./versions";

/**
 * RunApp: the app under test in a run stack.
 * - Cold lane: a fresh app on the run's own domain, with fresh volumes and generated secrets, deployed
 *   at a released version or a commit and converged; removed with its volumes on delete.
 * - Quick lane: borrows the recipe's canonical under its lease — the known-good is deployed on the
 *   stable domain (Swarm reattaches its data-warm volumes), then upgraded to the ref and converged. On
 *   delete the canonical is put back: undeployed, its volumes restored from the known-good snapshot,
 *   its env file naming the known-good again, and only then is the lease released. A lease that stays
 *   held past its deadline makes the run fall back to the cold lane, which the outputs say.
 * Nothing it creates outlives the run: a failed create undoes what it did before failing.
 */
export interface RunAppInputs {
  recipe: string;
  /** The run stack that owns the app (run-<recipe>-<runId>); marks the app so the reaper can judge it. */
  stack: string;
  /** The cold lane's domain (the run's own). */
  domain: string;
  /** A released version, a commit of the recipe, or "" for the newest release. */
  ref: string;
  health: HealthSpec;
  /** Probed after health, when the recipe names one (e.g. an app that answers before it is usable). Default: none. */
  ready?: HealthSpec;
  /** How long each deploy may take to converge. */
  deployTimeoutMs: number;
  /** Env values for the app's deploys (e.g. its OIDC issuer); a borrowed canonical's file never keeps them. Default: none. */
  env?: Record<string, string>;
  deployerSettings: DeployerSettings;
  /** Set for the quick lane: the canonical to borrow, and where its lease lives. Default: the cold lane. */
  quick?: QuickLane;
  /** Where the lane taken and each deploy started are recorded as they happen (the runner reads it). Default: not recorded. */
  progressFile?: string;
}

export type RunAppArgs = ResourceArgs<RunAppInputs>;

export interface QuickLane {
  canonical: LeasedCanonical;
  /** Directory of the leases (the runner's state dir). */
  stateDir: string;
  /** How long to wait for another quick run's lease before falling back to the cold lane. */
  leaseTimeoutMs: number;
}

type Lane = "cold" | "quick";

interface RunAppOutputs extends RunAppInputs {
  lane: Lane;
  /** The domain the app answers on: the run's own (cold) or the canonical's stable one (quick). */
  appDomain: string;
  /** Why a quick run went to the cold lane after all (its lease stayed held). */
  laneFallback?: string;
  /** The version or commit that was deployed (the newest release when ref was empty). */
  deployed: string;
  deployCount: number;
  deployMs: number;
  leaseWaitMs: number;
  /** Every secret the app was given or generated (cold lane). */
  appSecrets: Record<string, string>;
}

/** The env key naming the run stack that owns an app: the reaper's evidence, besides the stack. */
export const RUN_OWNER_KEY = "WARMSTACK_RUN";

const runAppProvider = lazyProvider<typeof import("./run-app"), "RunApp">("run-app", "RunApp");

export class RunApp extends TypedResource {
  declare public readonly lane: pulumi.Output<Lane>;
  declare public readonly appDomain: pulumi.Output<string>;
  declare public readonly laneFallback: pulumi.Output<string | undefined>;
  declare public readonly deployed: pulumi.Output<string>;
  declare public readonly deployCount: pulumi.Output<number>;
  declare public readonly deployMs: pulumi.Output<number>;
  declare public readonly leaseWaitMs: pulumi.Output<number>;
  declare public readonly appSecrets: pulumi.Output<Record<string, string>>;

  constructor(name: string, args: RunAppArgs, opts?: pulumi.CustomResourceOptions) {
    const outputs = ["lane", "appDomain", "laneFallback", "deployed", "deployCount", "deployMs", "leaseWaitMs", "appSecrets"] satisfies (keyof RunAppOutputs)[];
    super(runAppProvider, "RunApp", name, args, { outputs, secretOutputs: ["appSecrets"] }, opts);
  }
}

// The steps below run in the dynamic-provider process.

function appRef(recipe: string, domain: string): AppRef {
  return { recipe, domain };
}

export async function checkRunApp(news: RunAppInputs): Promise<pulumi.dynamic.CheckResult> {
  const { check, failures } = inputChecker();
  check("recipe", () => assertRecipeName(news.recipe));
  check("domain", () => assertDomain(news.domain));
  check("stack", () => {
    if (!parseRunStackName(news.stack)) throw new Error(`"${news.stack}" is not a run stack name (run-<recipe>-<runId>)`);
  });
  check("ref", () => {
    if (news.ref !== "" && !isVersion(news.ref) && !isCommitRef(news.ref)) {
      throw new Error(`"${news.ref}" is neither a version (X.Y.Z+UPSTREAM) nor a commit (7–40 hex digits)`);
    }
  });
  if (news.quick) {
    const quick = news.quick;
    check("quick.canonical.domain", () => assertDomain(quick.canonical.domain));
    check("quick.canonical.knownGood", () => {
      if (!isVersion(quick.canonical.knownGood)) throw new Error(`"${quick.canonical.knownGood}" is not a recipe version`);
    });
  }
  return { inputs: news, failures };
}

export async function diffRunApp(olds: RunAppOutputs, news: RunAppInputs): Promise<pulumi.dynamic.DiffResult> {
  // A run app is never changed in place: any change is a new app (runs are short and disposable).
  const keys = ["recipe", "stack", "domain", "ref", "health", "ready", "quick"] as const;
  const replaces = keys.filter((key) => JSON.stringify(olds[key]) !== JSON.stringify(news[key]));
  return { changes: replaces.length > 0, replaces, deleteBeforeReplace: true };
}

async function resolveRef(deployer: Deployer, recipe: string, ref: string): Promise<string> {
  if (ref !== "") return ref;
  const newest = (await releasedVersions(deployer.recipeDir(recipe))).versions.at(-1);
  if (!newest) throw new Error(`recipe ${recipe} has no released version`);
  return newest.raw;
}

export async function createRunApp(inputs: RunAppInputs): Promise<pulumi.dynamic.CreateResult> {
  const outs = inputs.quick ? await quickLane(inputs, inputs.quick) : await coldLane(inputs, { leaseWaitMs: 0 });
  return { id: `${inputs.deployerSettings.server}/${outs.appDomain}`, outs: withoutUndefined(outs) };
}

async function coldLane(inputs: RunAppInputs, extra: { laneFallback?: string; leaseWaitMs: number }): Promise<RunAppOutputs> {
  const deployer = createDeployer(inputs.deployerSettings);
  const app = appRef(inputs.recipe, inputs.domain);
  const started = Date.now();
  const ref = await resolveRef(deployer, inputs.recipe, inputs.ref);
  const existing = await deployer.appEnv(app);
  if (existing && existing[RUN_OWNER_KEY] !== inputs.stack) {
    throw new Error(`app ${inputs.domain} exists and belongs to ${existing[RUN_OWNER_KEY] ?? "no run"}; refusing to adopt it`);
  }
  let appSecrets: Record<string, string> = {};
  let deployCount = 0;
  await recordRunProgress(inputs.progressFile, { lane: "cold" });
  try {
    if (!existing) {
      const version = isVersion(ref) ? ref : undefined;
      const created = await deployer.newApp(app, { version, env: { [RUN_OWNER_KEY]: inputs.stack } });
      appSecrets = created.secrets;
    }
    if ((await deployer.currentVersion(app)) !== ref) {
      await recordRunProgress(inputs.progressFile, { deploy: ref });
      await deployer.deploy(app, { ref, health: inputs.health, ready: inputs.ready, timeoutMs: inputs.deployTimeoutMs, env: inputs.env });
      deployCount += 1;
    }
  } catch (error) {
    await removeColdApp(deployer, app);
    throw error;
  }
  return { ...inputs, lane: "cold", appDomain: inputs.domain, ...extra, deployed: ref, deployCount, deployMs: Date.now() - started, appSecrets };
}

async function removeColdApp(deployer: Deployer, app: AppRef): Promise<void> {
  await deployer.undeploy(app);
  await deployer.remove(app, { volumes: true });
}

async function quickLane(inputs: RunAppInputs, quick: QuickLane): Promise<RunAppOutputs> {
  const { canonical } = quick;
  const coordination = coordinationAt(quick.stateDir);
  const waited = await waitForLease(coordination, inputs.recipe, inputs.stack, canonical, quick.leaseTimeoutMs, (holder) =>
    recordRunProgress(inputs.progressFile, { leaseHeldBy: holder.stack }),
  );
  if (waited.lease === null) {
    const laneFallback = `the canonical's lease stayed held for ${Math.round(quick.leaseTimeoutMs / 1000)}s (${waited.holder}): ran in the cold lane`;
    return coldLane(inputs, { laneFallback, leaseWaitMs: waited.waitedMs });
  }
  const deployer = createDeployer(canonical.deployerSettings);
  const app = appRef(inputs.recipe, canonical.domain);
  const started = Date.now();
  let deployCount = 0;
  let ref = "";
  let lentVolumes = waited.lease.volumes;
  await recordRunProgress(inputs.progressFile, { lane: "quick" });
  try {
    // Our own lease from a create that a crash left unobserved: start again from the known-good.
    if (waited.adopted) await putCanonicalBack(inputs.recipe, canonical, lentVolumes);
    await requireIdleCanonical(deployer, app, canonical);
    lentVolumes = await deployer.volumes(app);
    await coordination.recordLeasedVolumes(inputs.recipe, inputs.stack, lentVolumes);
    ref = await resolveRef(deployer, inputs.recipe, inputs.ref);
    const deploy = async (to: string) => {
      await recordRunProgress(inputs.progressFile, { deploy: to });
      await deployer.deploy(app, { ref: to, health: inputs.health, ready: inputs.ready, timeoutMs: inputs.deployTimeoutMs, env: inputs.env });
      deployCount += 1;
    };
    await deploy(canonical.knownGood);
    if (ref !== canonical.knownGood) await deploy(ref);
  } catch (error) {
    await putCanonicalBack(inputs.recipe, canonical, lentVolumes);
    await coordination.releaseLease(inputs.recipe, inputs.stack);
    throw error;
  }
  return { ...inputs, lane: "quick", appDomain: canonical.domain, deployed: ref, deployCount, deployMs: Date.now() - started, leaseWaitMs: waited.waitedMs, appSecrets: {} };
}

/** Only an idle canonical of the warm stack is borrowed: undeployed, ours, at the known-good. */
async function requireIdleCanonical(deployer: Deployer, app: AppRef, canonical: LeasedCanonical): Promise<void> {
  const env = await deployer.appEnv(app);
  if (env === null || env[WARM_OWNER_KEY] !== WARM_OWNER_MARK) {
    throw new Error(`canonical ${app.domain} does not exist or is not the warm stack's: seed it with an up of the warm stack first`);
  }
  const live = await deployer.currentVersion(app);
  if (live !== null) throw new Error(`canonical ${app.domain} is deployed (at ${live}) although its lease was free: it is not idle`);
  const envVersion = await deployer.envVersion(app);
  if (envVersion !== canonical.knownGood) {
    throw new Error(`canonical ${app.domain} names ${envVersion ?? "no version"} in its env file, not its known-good ${canonical.knownGood}`);
  }
}

/**
 * Puts a borrowed canonical back as the known-good left it: undeployed, every volume the snapshot
 * holds restored from it, any volume a tested version added removed, and the env file naming the
 * known-good. Safe to repeat: the run's own cleanup and the reaper call it for a dead run's lease.
 * Only the lease holder calls it, so any stopped snapshot helper of the canonical is a killed run's.
 */
export async function putCanonicalBack(recipe: string, canonical: LeasedCanonical, lentVolumes?: string[]): Promise<void> {
  const deployer = createDeployer(canonical.deployerSettings);
  const app = appRef(recipe, canonical.domain);
  const key = stackNameForDomain(canonical.domain);
  // Its volumes and snapshot are on its node; a canonical seeded before pinning has them on this CLI's.
  const node = canonical.node === undefined ? undefined : (await resolveNode(canonical.node)).id;
  const options = { store: canonical.snapshotStore, helperImage: canonical.helperImage };
  await deployer.undeploy(app);
  // The idle canonical's volumes are its snapshot's; ask the store only when the lease does not say.
  const volumes = lentVolumes ?? (await snapshotInfo(key, { ...options, node }))?.volumes;
  if (!volumes) throw new Error(`canonical ${canonical.domain} has no known-good snapshot in store ${canonical.snapshotStore}: it cannot be put back`);
  for (const volume of await deployer.volumes(app)) {
    if (!volumes.includes(volume)) await deployer.removeVolume(app, volume);
  }
  await restoreSnapshot({ app: key, volumes, node }, options);
  await deployer.setEnvVersion(app, canonical.knownGood);
  await removeFinishedHelpers(key);
}

export async function deleteRunApp(props: RunAppOutputs): Promise<void> {
  if (props.lane === "cold") {
    await removeColdApp(createDeployer(props.deployerSettings), appRef(props.recipe, props.domain));
    return;
  }
  const quick = props.quick!;
  // Someone else's lease means the canonical was already put back (by the reaper) and lent again.
  const coordination = coordinationAt(quick.stateDir);
  const lease = await coordination.readLease(props.recipe);
  if (lease?.stack !== props.stack) return;
  await putCanonicalBack(props.recipe, lease.canonical, lease.volumes);
  await coordination.releaseLease(props.recipe, props.stack);
}
