import * as pulumi from "@pulumi/pulumi";
import type { AppRef, Deployer, HealthSpec } from "./adapters/deployer";
import { createDeployer, DeployerSettings } from "./adapters/deployers";
import { releaseLease, waitForLease } from "./adapters/leases";
import { parseLeasedCanonical } from "./config";
import { deleteSnapshot, restoreSnapshot, snapshotInfo, SnapshotInfo, SnapshotOptions, SnapshotTarget, takeSnapshot } from "./adapters/snapshots";
import { assertDomain, assertRecipeName, stackNameForDomain, WARM_LEASE_HOLDER, WARM_OWNER_KEY, WARM_OWNER_MARK } from "./naming";
import { inputChecker, withoutUndefined } from "./provider-support";
import { compareVersions, isVersion, parseVersion } from "./versions";

/**
 * Canonical: the data-warm copy of an enrolled recipe at `warm-<recipe>.<base>`. Idle means
 * undeployed with its volumes kept, the env file naming the known-good version, and exactly one
 * snapshot of those volumes: the known-good snapshot that quick runs restore. The known-good and its
 * snapshot change only when a new version converged healthy and its snapshot completed.
 */
export interface CanonicalArgs {
  recipe: pulumi.Input<string>;
  knownGood: pulumi.Input<string>;
  /** The stable domain, canonicalDomain(recipe, baseDomain). */
  domain: pulumi.Input<string>;
  health: pulumi.Input<HealthSpec>;
  deployTimeoutMs: pulumi.Input<number>;
  deployerSettings: pulumi.Input<DeployerSettings>;
  snapshot: pulumi.Input<CanonicalSnapshotSettings>;
  /** Where quick runs lease canonicals, and how long a change waits for one to give it back. */
  leases: pulumi.Input<CanonicalLeaseSettings>;
}

export interface CanonicalLeaseSettings {
  stateDir: string;
  waitMs: number;
}

export interface CanonicalSnapshotSettings {
  /** Docker volume holding the snapshots, on the node that holds the canonical's volumes. */
  store: string;
  helperImage: string;
}

interface CanonicalInputs {
  recipe: string;
  knownGood: string;
  domain: string;
  health: HealthSpec;
  deployTimeoutMs: number;
  deployerSettings: DeployerSettings;
  snapshot: CanonicalSnapshotSettings;
  /** Absent in the state of canonicals created before changes waited for quick runs. */
  leases?: CanonicalLeaseSettings;
}

interface CanonicalOutputs extends CanonicalInputs {
  /** sha256 of the known-good snapshot's tar. */
  snapshotId: string;
  snapshotBytes: number;
  /** When the known-good snapshot was taken (ISO). */
  seededAt: string;
}

// The provider's code is stored in state and used again for deletes, possibly by a later version
// of warmstack: the closures only load this module at run time and call its named steps.
function steps(): typeof import("./canonical") {
  const path = require("node:path");
  // The provider process runs in the directory of the program's main: dist/stacks with
  // Pulumi.yaml's main, the project root for an inline program whose main is the project.
  const besideStacks = path.resolve("../infra/canonical.js");
  return require(require("node:fs").existsSync(besideStacks) ? besideStacks : path.resolve("dist/infra/canonical.js"));
}

const canonicalProvider: pulumi.dynamic.ResourceProvider = {
  check: async (_olds: CanonicalInputs, news: CanonicalInputs) => steps().checkCanonical(news),
  diff: async (_id: string, olds: CanonicalOutputs, news: CanonicalInputs) => steps().diffCanonical(olds, news),
  create: async (inputs: CanonicalInputs) => steps().createCanonical(inputs),
  update: async (_id: string, olds: CanonicalOutputs, news: CanonicalInputs) => steps().updateCanonical(olds, news),
  delete: async (_id: string, props: CanonicalOutputs) => steps().deleteCanonical(props),
};

export class Canonical extends pulumi.dynamic.Resource {
  declare public readonly recipe: pulumi.Output<string>;
  declare public readonly knownGood: pulumi.Output<string>;
  declare public readonly domain: pulumi.Output<string>;
  declare public readonly snapshotId: pulumi.Output<string>;
  declare public readonly snapshotBytes: pulumi.Output<number>;
  declare public readonly seededAt: pulumi.Output<string>;

  constructor(name: string, args: CanonicalArgs, opts?: pulumi.CustomResourceOptions) {
    super(canonicalProvider, name, { ...args, snapshotId: undefined, snapshotBytes: undefined, seededAt: undefined }, opts);
  }
}

// The steps below run in the dynamic-provider process.

function appRef(inputs: CanonicalInputs): AppRef {
  return { recipe: inputs.recipe, domain: inputs.domain };
}

/** The canonical's key in the snapshot store: its stack name. */
function snapshotKey(inputs: CanonicalInputs): string {
  return stackNameForDomain(inputs.domain);
}

function snapshotOptions(settings: CanonicalSnapshotSettings): SnapshotOptions {
  return { store: settings.store, helperImage: settings.helperImage };
}

export async function checkCanonical(news: CanonicalInputs): Promise<pulumi.dynamic.CheckResult> {
  const { check, failures } = inputChecker();
  check("recipe", () => assertRecipeName(news.recipe));
  check("domain", () => stackNameForDomain(assertDomain(news.domain)));
  check("knownGood", () => {
    if (!isVersion(news.knownGood)) throw new Error(`"${news.knownGood}" is not a recipe version (X.Y.Z+UPSTREAM)`);
  });
  check("deployTimeoutMs", () => {
    if (!Number.isInteger(news.deployTimeoutMs) || news.deployTimeoutMs <= 0) throw new Error("must be a positive number of milliseconds");
  });
  return { inputs: news, failures };
}

/**
 * A new recipe or domain is another canonical: the new one is seeded before the old one is deleted.
 * Everything else is an update; only a new known-good or a new snapshot store costs a deploy or a
 * snapshot.
 */
export function diffCanonical(olds: CanonicalOutputs, news: CanonicalInputs): pulumi.dynamic.DiffResult {
  const replaces = (["recipe", "domain"] as const).filter((key) => olds[key] !== news[key]);
  const compared = ["knownGood", "health", "deployTimeoutMs", "deployerSettings", "snapshot"] as const;
  const changed = compared.filter((key) => JSON.stringify(olds[key]) !== JSON.stringify(news[key]));
  return { changes: replaces.length > 0 || changed.length > 0, replaces, deleteBeforeReplace: false };
}

export async function createCanonical(inputs: CanonicalInputs): Promise<pulumi.dynamic.CreateResult> {
  const deployer = createDeployer(inputs.deployerSettings);
  const app = appRef(inputs);
  await ensureApp(deployer, inputs);
  let snapshot: SnapshotInfo;
  try {
    snapshot = await seed(deployer, inputs);
  } catch (error) {
    // No known-good exists yet; what matters is that a failed seed does not keep running.
    await deployer.undeploy(app).catch(() => undefined);
    throw new Error(`canonical ${inputs.recipe} (${inputs.domain}): seeding ${inputs.knownGood} failed: ${reasonOf(error)}`);
  }
  return { id: `${inputs.deployerSettings.server}/${inputs.domain}`, outs: outputsOf(inputs, snapshot) };
}

/** Creates the app's env file unless this warm stack already did (a crashed create); refuses a stranger's. */
async function ensureApp(deployer: Deployer, inputs: CanonicalInputs): Promise<void> {
  const app = appRef(inputs);
  const env = await deployer.appEnv(app);
  if (env === null) {
    await deployer.newApp(app, { version: inputs.knownGood, env: { [WARM_OWNER_KEY]: WARM_OWNER_MARK } });
    return;
  }
  if (env[WARM_OWNER_KEY] !== WARM_OWNER_MARK) {
    throw new Error(`app ${inputs.domain} exists and is not this warm stack's (${WARM_OWNER_KEY}=${env[WARM_OWNER_KEY] ?? "<unset>"}); refusing to adopt it`);
  }
}

/**
 * Deploys the known-good on the stable domain (Swarm reattaches the stack's named volumes when
 * they exist), converges, undeploys, waits until gone and snapshots: the snapshot is only ever of
 * data a healthy known-good left behind.
 */
async function seed(deployer: Deployer, inputs: CanonicalInputs): Promise<SnapshotInfo> {
  const app = appRef(inputs);
  // A crashed earlier attempt may have left it running at this version: redeploying it is intended.
  const live = await deployer.currentVersion(app);
  await deployer.deploy(app, { ref: inputs.knownGood, health: inputs.health, timeoutMs: inputs.deployTimeoutMs, force: live === inputs.knownGood });
  await deployer.undeploy(app);
  return takeSnapshot(await snapshotTarget(deployer, inputs), snapshotOptions(inputs.snapshot));
}

async function snapshotTarget(deployer: Deployer, inputs: CanonicalInputs): Promise<SnapshotTarget> {
  const volumes = await deployer.volumes(appRef(inputs));
  if (volumes.length === 0) {
    throw new Error(`recipe ${inputs.recipe} left no volumes on ${inputs.domain}: a canonical keeps data-warm volumes, and this recipe has none to keep`);
  }
  return { app: snapshotKey(inputs), volumes };
}

function outputsOf(inputs: CanonicalInputs, snapshot: { id: string; bytes: number; takenAt: string }): CanonicalOutputs {
  return withoutUndefined({ ...inputs, snapshotId: snapshot.id, snapshotBytes: snapshot.bytes, seededAt: snapshot.takenAt });
}

function reasonOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export async function updateCanonical(olds: CanonicalOutputs, news: CanonicalInputs): Promise<pulumi.dynamic.UpdateResult> {
  const promoted = olds.knownGood !== news.knownGood;
  const moved = olds.snapshot.store !== news.snapshot.store;
  const known = { id: olds.snapshotId, bytes: olds.snapshotBytes, takenAt: olds.seededAt };
  if (!promoted && !moved) return { outs: outputsOf(news, known) };

  if (promoted && compareVersions(parseVersion(news.knownGood), parseVersion(olds.knownGood)) < 0) {
    // Data that a newer version has migrated may not work with an older one.
    throw new Error(
      `canonical ${news.recipe}: refusing to move the known-good back from ${olds.knownGood} to ${news.knownGood}; ` +
        `set warmstack:canonicals.${news.recipe}.knownGood to ${olds.knownGood} again, or de-enrol and re-enrol the recipe to start over`,
    );
  }
  return whileNotLent(news, olds.knownGood, () => changeKnownGood(olds, news, promoted, moved));
}

async function changeKnownGood(olds: CanonicalOutputs, news: CanonicalInputs, promoted: boolean, moved: boolean): Promise<pulumi.dynamic.UpdateResult> {
  const deployer = createDeployer(news.deployerSettings);
  const app = appRef(news);
  // Idle by contract; a crashed earlier attempt may have left it deployed.
  await deployer.undeploy(app);
  const target = await snapshotTarget(deployer, news);
  const oldStore = snapshotOptions(olds.snapshot);
  const hasKnownGood = (await snapshotInfo(target.app, oldStore)) !== null;
  let snapshot: SnapshotInfo;
  try {
    // Start from exactly the known-good data, so nothing but the new version's own migration can
    // end up in the new snapshot.
    if (hasKnownGood) await restoreSnapshot(target, oldStore);
    if (promoted) {
      await deployer.deploy(app, { ref: news.knownGood, health: news.health, timeoutMs: news.deployTimeoutMs });
      await deployer.undeploy(app);
    }
    snapshot = await takeSnapshot(target, snapshotOptions(news.snapshot));
  } catch (error) {
    await backToKnownGood(deployer, olds, target, hasKnownGood, error);
    const what = promoted ? `${news.knownGood} did not become the known-good` : `moving its snapshot to store ${news.snapshot.store} failed`;
    throw new Error(
      `canonical ${news.recipe}: ${what}: ${reasonOf(error)}. ` +
        `The known-good stays ${olds.knownGood} with its snapshot ${olds.snapshotId}; the canonical is idle at ${olds.knownGood}.`,
    );
  }
  if (moved) await deleteSnapshot(target.app, oldStore);
  return { outs: outputsOf(news, snapshot) };
}

/** Undeploys the failed attempt and puts the known-good's data and version back; the snapshot itself is never written. */
async function backToKnownGood(deployer: Deployer, olds: CanonicalOutputs, target: SnapshotTarget, hasKnownGood: boolean, failure: unknown) {
  const app = appRef(olds);
  try {
    await deployer.undeploy(app);
    if (hasKnownGood) await restoreSnapshot(target, snapshotOptions(olds.snapshot));
    await deployer.setEnvVersion(app, olds.knownGood);
  } catch (restoreError) {
    throw new Error(
      `canonical ${olds.recipe}: promoting failed (${reasonOf(failure)}) and putting the known-good ${olds.knownGood} back failed too: ` +
        `${reasonOf(restoreError)}. The known-good snapshot ${olds.snapshotId} is untouched: undeploy ${olds.domain}, restore it and set TYPE by hand.`,
    );
  }
}

/**
 * Runs a change of the canonical while holding its lease, so no quick run borrows it meanwhile and
 * the change does not start under one: a quick run that has it is waited for, up to the deadline.
 */
async function whileNotLent<T>(inputs: CanonicalInputs, knownGood: string, change: () => Promise<T>): Promise<T> {
  const leases = inputs.leases;
  if (leases === undefined) return change();
  const parsed = parseLeasedCanonical({ ...inputs, knownGood });
  if (!parsed.success) throw new Error(`canonical ${inputs.recipe}: cannot describe it for its lease: ${parsed.error.issues[0]?.message ?? "invalid"}`);
  const waited = await waitForLease(leases.stateDir, inputs.recipe, WARM_LEASE_HOLDER, parsed.data, leases.waitMs);
  if (waited.lease === null) {
    throw new Error(
      `canonical ${inputs.recipe}: a quick run kept it for more than ${Math.round(leases.waitMs / 1000)}s (${waited.holder}); ` +
        `nothing was changed. Run again once it is back, or raise warmstack:leaseWaitSeconds.`,
    );
  }
  try {
    return await change();
  } finally {
    await releaseLease(leases.stateDir, inputs.recipe, WARM_LEASE_HOLDER);
  }
}

/** De-enrolled: this canonical's app, volumes and snapshot go; nothing else is touched. */
export async function deleteCanonical(props: CanonicalOutputs): Promise<void> {
  await whileNotLent(props, props.knownGood, async () => {
    const deployer = createDeployer(props.deployerSettings);
    const app = appRef(props);
    await deployer.undeploy(app);
    await deployer.remove(app, { volumes: true });
    await deleteSnapshot(snapshotKey(props), snapshotOptions(props.snapshot));
  });
}
