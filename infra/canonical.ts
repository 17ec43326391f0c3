import * as pulumi from "@pulumi/pulumi";
import type { AppRef, Deployer, HealthSpec } from "./adapters/deployer";
import { createDeployer, DeployerSettings } from "./adapters/deployers";
import { coordinationAt, waitForLease, whileBeating } from "./adapters/coordination";
import { parseLeasedCanonical } from "./config";
import { localNode, NodeGoneError, NodeRef, resolveNode } from "./adapters/nodes";
import { deleteSnapshot, removeFinishedHelpers, restoreSnapshot, snapshotInfo, SnapshotInfo, SnapshotOptions, SnapshotTarget, takeSnapshot } from "./adapters/snapshots";
import { assertDomain, assertNodeName, assertRecipeName, PINNED_NODE_KEY, stackNameForDomain, WARM_LEASE_HOLDER, WARM_OWNER_KEY, WARM_OWNER_MARK } from "./naming";
import { inputChecker, lazyProvider, ResourceArgs, TypedResource, withoutUndefined } from "./provider-support";
import { compareVersions, isVersion, parseVersion } from "./versions";

/**
 * Canonical: the data-warm copy of an enrolled recipe at `warm-<recipe>.<base>`. Idle means
 * undeployed with its volumes kept, the env file naming the known-good version, and exactly one
 * snapshot of those volumes: the known-good snapshot that quick runs restore. The known-good and its
 * snapshot change only when a new version converged healthy and its snapshot completed.
 */
export interface CanonicalInputs {
  /** The enrolled recipe; the resource is named after it. Another recipe is another canonical. */
  recipe: string;
  /** The version its data and snapshot are of; advanced only by a promote (after a green cold run). */
  knownGood: string;
  /** The stable domain, canonicalDomain(recipe, baseDomain). Another domain is another canonical. */
  domain: string;
  health: HealthSpec;
  /** How long the known-good may take to converge when it is seeded or promoted. */
  deployTimeoutMs: number;
  deployerSettings: DeployerSettings;
  snapshot: CanonicalSnapshotSettings;
  /**
   * The swarm node (hostname) to seed it on; default: the node the runner's docker CLI talks to. It
   * stays there — named volumes are node-local — so another node later is refused, not a move.
   */
  node?: string;
  /**
   * Where quick runs lease canonicals, and how long a change waits for one to give it back. Absent in
   * the state of canonicals created before changes waited for quick runs: such a change does not wait.
   */
  leases?: CanonicalLeaseSettings;
}

export type CanonicalArgs = ResourceArgs<CanonicalInputs>;

export interface CanonicalLeaseSettings {
  /** The runner's state directory, whose leases/ quick runs take. */
  stateDir: string;
  /** Default in the warm config: warmstack:leaseWaitSeconds (1800 s). */
  waitMs: number;
}

export interface CanonicalSnapshotSettings {
  /** Docker volume holding the snapshots, on the node that holds the canonical's volumes. */
  store: string;
  helperImage: string;
}

interface CanonicalOutputs extends CanonicalInputs {
  /** sha256 of the known-good snapshot's tar. */
  snapshotId: string;
  snapshotBytes: number;
  /** When the known-good snapshot was taken (ISO). */
  seededAt: string;
  /** The node its volumes and snapshots are on; absent in the state of canonicals seeded before pinning. */
  pinnedNode?: string;
}

const canonicalProvider = lazyProvider<typeof import("./canonical"), "Canonical">("canonical", "Canonical");

export class Canonical extends TypedResource {
  declare public readonly recipe: pulumi.Output<string>;
  declare public readonly knownGood: pulumi.Output<string>;
  declare public readonly domain: pulumi.Output<string>;
  declare public readonly snapshotId: pulumi.Output<string>;
  declare public readonly snapshotBytes: pulumi.Output<number>;
  declare public readonly seededAt: pulumi.Output<string>;
  declare public readonly pinnedNode: pulumi.Output<string | undefined>;

  /** `name` is the recipe's; untyped, canonicals were named `canonical-<recipe>` beside the WarmApps. */
  constructor(name: string, args: CanonicalArgs, opts?: pulumi.CustomResourceOptions) {
    const outputs = ["snapshotId", "snapshotBytes", "seededAt", "pinnedNode"] satisfies (keyof CanonicalOutputs)[];
    super(canonicalProvider, "Canonical", name, args, { outputs, untypedName: `canonical-${name}` }, opts);
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

function snapshotOptions(settings: CanonicalSnapshotSettings, node?: NodeRef): SnapshotOptions & { node?: string } {
  return withoutUndefined({ store: settings.store, helperImage: settings.helperImage, node: node?.id });
}

/**
 * The node the canonical's volumes are on, as its env file names it. An app from before pinning is
 * pinned where its volumes are: on the node the runner's docker CLI talks to, the only one it used.
 */
async function pinnedNode(deployer: Deployer, inputs: CanonicalInputs): Promise<NodeRef> {
  const app = appRef(inputs);
  let hostname = await deployer.pinnedNode(app);
  if (hostname === undefined) {
    hostname = (await localNode()).hostname;
    await deployer.pinToNode(app, hostname);
  }
  if (inputs.node !== undefined && inputs.node !== hostname) {
    throw new Error(
      `canonical ${inputs.recipe}: its volumes are on swarm node ${hostname}, not ${inputs.node}; a canonical does not move between nodes: ` +
        `set warmstack:canonicals.${inputs.recipe}.node back to ${hostname}, or de-enrol and re-enrol the recipe to seed it on ${inputs.node}`,
    );
  }
  return resolveNode(hostname);
}

/** The node of a canonical as its state records it, for a refresh (undefined: seeded before pinning, on the runner's node). */
async function recordedNode(props: CanonicalOutputs): Promise<NodeRef | undefined> {
  return props.pinnedNode === undefined ? undefined : resolveNode(props.pinnedNode);
}

export async function checkCanonical(news: CanonicalInputs): Promise<pulumi.dynamic.CheckResult> {
  const { check, failures } = inputChecker();
  check("recipe", () => assertRecipeName(news.recipe));
  check("domain", () => stackNameForDomain(assertDomain(news.domain)));
  check("knownGood", () => {
    if (!isVersion(news.knownGood)) throw new Error(`"${news.knownGood}" is not a recipe version (X.Y.Z+UPSTREAM)`);
  });
  if (news.node !== undefined) check("node", () => assertNodeName(news.node));
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
  const changed: string[] = compared.filter((key) => JSON.stringify(olds[key]) !== JSON.stringify(news[key]));
  // An update refuses it, naming the node the volumes are on.
  if (news.node !== undefined && news.node !== (olds.pinnedNode ?? olds.node)) changed.push("node");
  return { changes: replaces.length > 0 || changed.length > 0, replaces, deleteBeforeReplace: false };
}

export async function createCanonical(inputs: CanonicalInputs): Promise<pulumi.dynamic.CreateResult> {
  const deployer = createDeployer(inputs.deployerSettings);
  const app = appRef(inputs);
  // A node that is not in the swarm, or that the runner cannot reach, is refused before anything exists.
  await ensureApp(deployer, inputs, (await resolveNode(inputs.node ?? (await localNode()).hostname)).hostname);
  let snapshot: SnapshotInfo;
  let node: NodeRef;
  try {
    node = await pinnedNode(deployer, inputs);
    snapshot = await seed(deployer, inputs, node);
  } catch (error) {
    // No known-good exists yet; what matters is that a failed seed does not keep running.
    await deployer.undeploy(app).catch(() => undefined);
    throw new Error(`canonical ${inputs.recipe} (${inputs.domain}): seeding ${inputs.knownGood} failed: ${reasonOf(error)}`);
  }
  return { id: `${inputs.deployerSettings.server}/${inputs.domain}`, outs: outputsOf(inputs, snapshot, node.hostname) };
}

/** Creates the app's env file unless this warm stack already did (a crashed create); refuses a stranger's. */
async function ensureApp(deployer: Deployer, inputs: CanonicalInputs, node: string): Promise<void> {
  const app = appRef(inputs);
  const env = await deployer.appEnv(app);
  if (env === null) {
    await deployer.newApp(app, { version: inputs.knownGood, env: { [WARM_OWNER_KEY]: WARM_OWNER_MARK, [PINNED_NODE_KEY]: node } });
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
async function seed(deployer: Deployer, inputs: CanonicalInputs, node: NodeRef): Promise<SnapshotInfo> {
  const app = appRef(inputs);
  await removeFinishedHelpers(snapshotKey(inputs));
  // A crashed earlier attempt may have left it running at this version: redeploying it is intended.
  const live = await deployer.currentVersion(app);
  await deployer.deploy(app, { ref: inputs.knownGood, health: inputs.health, timeoutMs: inputs.deployTimeoutMs, force: live === inputs.knownGood });
  await deployer.undeploy(app);
  return takeSnapshot({ ...(await snapshotTarget(deployer, inputs, node)), version: inputs.knownGood }, snapshotOptions(inputs.snapshot));
}

async function snapshotTarget(deployer: Deployer, inputs: CanonicalInputs, node: NodeRef): Promise<SnapshotTarget> {
  const volumes = await deployer.volumes(appRef(inputs));
  if (volumes.length === 0) {
    throw new Error(`recipe ${inputs.recipe} left no volumes on ${inputs.domain} (node ${node.hostname}): a canonical keeps data-warm volumes, and this recipe has none to keep`);
  }
  return { app: snapshotKey(inputs), volumes, node: node.id };
}

function outputsOf(inputs: CanonicalInputs, snapshot: { id: string; bytes: number; takenAt: string }, node: string | undefined): CanonicalOutputs {
  return withoutUndefined({ ...inputs, snapshotId: snapshot.id, snapshotBytes: snapshot.bytes, seededAt: snapshot.takenAt, pinnedNode: node });
}

function reasonOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export async function updateCanonical(olds: CanonicalOutputs, news: CanonicalInputs): Promise<pulumi.dynamic.UpdateResult> {
  const promoted = olds.knownGood !== news.knownGood;
  const moved = olds.snapshot.store !== news.snapshot.store;
  const known = { id: olds.snapshotId, bytes: olds.snapshotBytes, takenAt: olds.seededAt };
  if (!promoted && !moved && (news.node === undefined || news.node === olds.pinnedNode)) return { outs: outputsOf(news, known, olds.pinnedNode) };

  if (promoted && compareVersions(parseVersion(news.knownGood), parseVersion(olds.knownGood)) < 0) {
    // Data that a newer version has migrated may not work with an older one.
    throw new Error(
      `canonical ${news.recipe}: refusing to move the known-good back from ${olds.knownGood} to ${news.knownGood}; ` +
        `set warmstack:canonicals.${news.recipe}.knownGood to ${olds.knownGood} again, or de-enrol and re-enrol the recipe to start over`,
    );
  }
  return whileNotLent(news, olds.knownGood, async () => {
    if (promoted || moved) return changeKnownGood(olds, news, promoted, moved);
    // Only the node was named: it must be the one the volumes are on (else pinnedNode refuses).
    const node = await pinnedNode(createDeployer(news.deployerSettings), news);
    return { outs: outputsOf(news, known, node.hostname) };
  });
}

async function changeKnownGood(olds: CanonicalOutputs, news: CanonicalInputs, promoted: boolean, moved: boolean): Promise<pulumi.dynamic.UpdateResult> {
  const deployer = createDeployer(news.deployerSettings);
  const app = appRef(news);
  // Idle by contract; a crashed earlier attempt may have left it deployed, and its helpers behind.
  const node = await pinnedNode(deployer, news);
  await deployer.undeploy(app);
  await removeFinishedHelpers(snapshotKey(news));
  const target = await snapshotTarget(deployer, news, node);
  const oldStore = snapshotOptions(olds.snapshot, node);
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
    snapshot = await takeSnapshot({ ...target, version: promoted ? news.knownGood : olds.knownGood }, snapshotOptions(news.snapshot));
  } catch (error) {
    await backToKnownGood(deployer, olds, target, hasKnownGood, error);
    const what = promoted ? `${news.knownGood} did not become the known-good` : `moving its snapshot to store ${news.snapshot.store} failed`;
    throw new Error(
      `canonical ${news.recipe}: ${what}: ${reasonOf(error)}. ` +
        `The known-good stays ${olds.knownGood} with its snapshot ${olds.snapshotId}; the canonical is idle at ${olds.knownGood}.`,
    );
  }
  if (moved) await deleteSnapshot(target.app, oldStore);
  return { outs: outputsOf(news, snapshot, node.hostname) };
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
  const coordination = coordinationAt(leases.stateDir);
  const waited = await waitForLease(coordination, inputs.recipe, WARM_LEASE_HOLDER, parsed.data, leases.waitMs);
  if (waited.lease === null) {
    throw new Error(
      `canonical ${inputs.recipe}: a quick run kept it for more than ${Math.round(leases.waitMs / 1000)}s (${waited.holder}); ` +
        `nothing was changed. Run again once it is back, or raise warmstack:leaseWaitSeconds.`,
    );
  }
  try {
    // Its heartbeat tells other hosts the hold is alive: a change takes minutes.
    return await whileBeating(() => coordination.heartbeatLease(inputs.recipe, WARM_LEASE_HOLDER), change);
  } finally {
    await coordination.releaseLease(inputs.recipe, WARM_LEASE_HOLDER);
  }
}

/**
 * `pulumi refresh`: the known-good snapshot as the store holds it. A snapshot the state does not know
 * (a promote killed after its snapshot completed) is taken with the version it records as the
 * known-good; a canonical whose app and snapshot are both gone is gone.
 */
export async function readCanonical(id: string, props: CanonicalOutputs): Promise<pulumi.dynamic.ReadResult> {
  const deployer = createDeployer(props.deployerSettings);
  const snapshot = await snapshotInfo(snapshotKey(props), snapshotOptions(props.snapshot, await recordedNode(props)));
  if (snapshot === null) return (await deployer.appEnv(appRef(props))) === null ? { id: "", props: {} } : { id, props };
  if (snapshot.id === props.snapshotId) return { id, props };
  const knownGood = snapshot.version !== undefined && isVersion(snapshot.version) ? snapshot.version : props.knownGood;
  return { id, props: outputsOf({ ...props, knownGood }, snapshot, props.pinnedNode) };
}

/** De-enrolled: this canonical's app, volumes and snapshot go; nothing else is touched. */
export async function deleteCanonical(props: CanonicalOutputs): Promise<void> {
  await whileNotLent(props, props.knownGood, async () => {
    const deployer = createDeployer(props.deployerSettings);
    const app = appRef(props);
    // De-enrolling a canonical whose node has left the swarm removes what is left of it here.
    const node = await recordedNode(props).catch((error: unknown) => {
      if (error instanceof NodeGoneError) return null;
      throw error;
    });
    await deployer.undeploy(app);
    await deployer.remove(app, { volumes: true });
    if (node !== null) await deleteSnapshot(snapshotKey(props), snapshotOptions(props.snapshot, node));
    await removeFinishedHelpers(snapshotKey(props));
  });
}
