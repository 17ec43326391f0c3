import * as pulumi from "@pulumi/pulumi";
import { raiseAlert } from "./adapters/alerts";
import type { AppRef, Deployer, HealthSpec } from "./adapters/deployer";
import { createDeployer, DeployerSettings } from "./adapters/deployers";
import { deleteSnapshot, removeFinishedHelpers, restoreSnapshot, snapshotInfo, SnapshotInfo, SnapshotOptions, takeSnapshot } from "./adapters/snapshots";
import { localNode } from "./adapters/nodes";
import { assertDomain, assertRecipeName, PINNED_NODE_KEY, stackNameForDomain, WARM_OWNER_KEY, WARM_OWNER_MARK } from "./naming";
import { inputChecker, lazyProvider, ResourceArgs, TypedResource, withoutUndefined } from "./provider-support";
import { CanaryOutcome, CanarySpec, runKeycloakCanary } from "./keycloak-canary";
import { isVersion } from "./versions";

/**
 * WarmApp: a live-warm shared app (the Keycloak, the Traefik) kept at the version the gate chose,
 * with health-gated upgrades. A failed upgrade rolls back — stateful apps restore the snapshot taken
 * before the upgrade — and raises an alert; a failed rollback raises a critical alert and keeps the
 * snapshot. The version running now is read from the swarm, never trusted from Pulumi state.
 */
export interface WarmAppInputs {
  /** The app's key in the warm stack's config, e.g. "keycloak"; alerts name it. */
  app: string;
  /** The recipe it is deployed from (a checkout under the deployer's ABRA_DIR). */
  recipe: string;
  /** Its domain; default in the warm config: <app>.<baseDomain>. Another domain is another app. */
  domain: string;
  /** stateful: upgrades snapshot its volumes first and restore them on a rollback; stateless: no data. */
  kind: "stateful" | "stateless";
  /** The version the gate chose for this up. */
  version: string;
  /** What answers when the app is up (through the proxy unless it names a listener). */
  health: HealthSpec;
  /** How long a deploy may take to converge before it counts as failed (and is rolled back). */
  deployTimeoutMs: number;
  /** Env keys the app needs beyond its recipe's sample, set when the app is created. Default: none. */
  env?: Record<string, string>;
  /** Values for the app's swarm secrets; missing ones are generated when it is created. Default: all generated. */
  secrets?: Record<string, string>;
  deployerSettings: DeployerSettings;
  operations: WarmOperations;
  /** Delete the volumes and the snapshot with the app. Default: false (they are kept). */
  purge?: boolean;
  /**
   * For the shared Keycloak (stateful): before its version moves, a canary on a copy of its data
   * must pass, or the app stays and is held (infra/keycloak-canary.ts). Default: no canary.
   */
  canary?: CanarySpec;
}

export type WarmAppArgs = ResourceArgs<WarmAppInputs>;

/** Where alerts and snapshots go; the webhook URL may carry a token, so it arrives as a secret. */
export interface WarmOperations {
  alertDir: string;
  /** Default: no webhook, alerts are only written to alertDir. */
  alertWebhook?: string;
  /** The docker volume holding snapshots, on the node with the app's volumes. */
  snapshotStore: string;
  snapshotHelperImage: string;
}

interface WarmAppOutputs extends WarmAppInputs {
  deployedVersion: string;
  lastGood: string;
  rolledBack: boolean;
  rollbackReason?: string;
  lastCheckedAt: string;
  snapshotId?: string;
  /** Every secret the app was given or generated when it was created (e.g. Keycloak's admin password). */
  appSecrets: Record<string, string>;
  /** The canary of the last upgrade that ran one. */
  canaryOutcome?: CanaryOutcome;
}

const warmAppProvider = lazyProvider<typeof import("./warm-app"), "WarmApp">("warm-app", "WarmApp", { diff: "diffLiveWarmApp" });

export class WarmApp extends TypedResource {
  declare public readonly deployedVersion: pulumi.Output<string>;
  declare public readonly lastGood: pulumi.Output<string>;
  declare public readonly rolledBack: pulumi.Output<boolean>;
  declare public readonly rollbackReason: pulumi.Output<string | undefined>;
  declare public readonly lastCheckedAt: pulumi.Output<string>;
  declare public readonly snapshotId: pulumi.Output<string | undefined>;
  declare public readonly appSecrets: pulumi.Output<Record<string, string>>;
  declare public readonly canaryOutcome: pulumi.Output<CanaryOutcome | undefined>;

  constructor(name: string, args: WarmAppArgs, opts?: pulumi.CustomResourceOptions) {
    const outputs = ["deployedVersion", "lastGood", "rolledBack", "rollbackReason", "lastCheckedAt", "snapshotId", "appSecrets", "canaryOutcome"] satisfies (keyof WarmAppOutputs)[];
    super(warmAppProvider, "WarmApp", name, args, { outputs, secretOutputs: ["secrets", "appSecrets", "operations"] }, opts);
  }
}

// The steps below run in the dynamic-provider process.

function deployerFor(inputs: WarmAppInputs): Deployer {
  return createDeployer(inputs.deployerSettings);
}

function appRef(inputs: WarmAppInputs): AppRef {
  return { recipe: inputs.recipe, domain: inputs.domain };
}

export async function checkWarmApp(news: WarmAppInputs): Promise<pulumi.dynamic.CheckResult> {
  const { check, failures } = inputChecker();
  check("recipe", () => assertRecipeName(news.recipe));
  check("domain", () => assertDomain(news.domain));
  check("version", () => {
    if (!isVersion(news.version)) throw new Error(`"${news.version}" is not a recipe version (X.Y.Z+UPSTREAM)`);
  });
  check("kind", () => {
    if (news.kind !== "stateful" && news.kind !== "stateless") throw new Error(`kind must be stateful or stateless`);
  });
  check("canary", () => {
    if (news.canary && news.kind !== "stateful") throw new Error("a canary runs on a copy of the app's data: only a stateful app can have one");
  });
  return { inputs: news, failures };
}

/** What the swarm shows of a warm app when its diff is made. */
export interface LiveWarmApp {
  /** The version running now; null when it is not deployed. */
  version: string | null;
  /** Whether it answers its health path; only looked at when it runs the wanted version. */
  healthy: boolean;
}

/** The provider's diff: looks at the swarm, then decides with diffWarmApp. */
export async function diffLiveWarmApp(olds: WarmAppOutputs, news: WarmAppInputs): Promise<pulumi.dynamic.DiffResult> {
  const version = await deployerFor(news).currentVersion(appRef(news));
  const healthy = version === news.version ? await isHealthy(news) : true;
  return diffWarmApp(olds, news, { version, healthy });
}

export function diffWarmApp(olds: WarmAppOutputs, news: WarmAppInputs, live: LiveWarmApp): pulumi.dynamic.DiffResult {
  const replaces = (["recipe", "domain", "kind"] as const).filter((key) => olds[key] !== news[key]);
  const healthChanged = JSON.stringify(olds.health) !== JSON.stringify(news.health);
  const versionChanged = live.version !== news.version || olds.deployedVersion !== news.version;
  // An app that is down at its version (after a host restart Swarm may have given up on it) is
  // brought back by the update: the plan must show it rather than report nothing to do.
  const down = !versionChanged && !live.healthy;
  // A rollback recorded by the last up is cleared by the next one, or every later run would fail on it.
  const rollbackRecorded = olds.rolledBack === true;
  return {
    changes: replaces.length > 0 || healthChanged || versionChanged || down || rollbackRecorded,
    replaces,
    deleteBeforeReplace: true,
  };
}

export async function createWarmApp(inputs: WarmAppInputs): Promise<pulumi.dynamic.CreateResult> {
  const deployer = deployerFor(inputs);
  const app = appRef(inputs);
  const appSecrets = await ensureApp(deployer, inputs);
  const live = await deployer.currentVersion(app);
  const healthy = live === inputs.version && (await isHealthy(inputs));
  if (!healthy) await deployer.deploy(app, deployOptions(inputs, inputs.version, live === inputs.version));
  return { id: `${inputs.deployerSettings.server}/${inputs.domain}`, outs: outputsAfter(inputs, { deployed: inputs.version, appSecrets }) };
}

/** Creates the app's env file (and secrets) unless this stack already did; refuses a stranger's. */
async function ensureApp(deployer: Deployer, inputs: WarmAppInputs): Promise<Record<string, string>> {
  const app = appRef(inputs);
  const env = await deployer.appEnv(app);
  if (env === null) {
    // Its data stays where its first deploy puts it: on the runner's node, whose CLI takes its snapshots.
    const pin: Record<string, string> = inputs.kind === "stateful" ? { [PINNED_NODE_KEY]: (await localNode()).hostname } : {};
    const created = await deployer.newApp(app, {
      version: inputs.version,
      env: { ...inputs.env, [WARM_OWNER_KEY]: WARM_OWNER_MARK, ...pin },
      secrets: inputs.secrets,
    });
    return created.secrets;
  }
  if (env[WARM_OWNER_KEY] !== WARM_OWNER_MARK) {
    throw new Error(`app ${inputs.domain} exists and is not this warm stack's (${WARM_OWNER_KEY}=${env[WARM_OWNER_KEY] ?? "<unset>"}); refusing to adopt it`);
  }
  return { ...inputs.secrets };
}

/** A stateful app from before pinning has its volumes on the runner's node, the only one it used. */
async function pinWhereItsDataIs(deployer: Deployer, inputs: WarmAppInputs): Promise<void> {
  const app = appRef(inputs);
  if ((await deployer.pinnedNode(app)) === undefined) await deployer.pinToNode(app, (await localNode()).hostname);
}

function deployOptions(inputs: WarmAppInputs, ref: string, force: boolean) {
  return { ref, health: inputs.health, timeoutMs: inputs.deployTimeoutMs, force };
}

async function isHealthy(inputs: WarmAppInputs): Promise<boolean> {
  return (await deployerFor(inputs).probeHealth(appRef(inputs), inputs.health)).ok;
}

function outputsAfter(
  inputs: WarmAppInputs,
  outcome: { deployed: string; appSecrets: Record<string, string>; rollbackReason?: string; snapshotId?: string; lastGood?: string; canaryOutcome?: CanaryOutcome },
): WarmAppOutputs {
  return withoutUndefined({
    ...inputs,
    deployedVersion: outcome.deployed,
    lastGood: outcome.lastGood ?? outcome.deployed,
    rolledBack: outcome.rollbackReason !== undefined,
    rollbackReason: outcome.rollbackReason,
    lastCheckedAt: new Date().toISOString(),
    snapshotId: outcome.snapshotId,
    appSecrets: outcome.appSecrets,
    canaryOutcome: outcome.canaryOutcome,
  });
}


export async function updateWarmApp(olds: WarmAppOutputs, news: WarmAppInputs): Promise<pulumi.dynamic.UpdateResult> {
  const deployer = deployerFor(news);
  const app = appRef(news);
  if (news.kind === "stateful") {
    await pinWhereItsDataIs(deployer, news);
    // Helpers a killed up never removed; this up holds the stack's lock, so none of them is anyone's.
    await removeFinishedHelpers(stackNameForDomain(news.domain));
  }
  const cutOff = news.kind === "stateful" ? await cutOffRestore(olds, news) : undefined;
  if (cutOff) return finishRollback(deployer, olds, news, cutOff);
  const previous = (await deployer.currentVersion(app)) ?? olds.deployedVersion;
  const keep = { appSecrets: olds.appSecrets, snapshotId: olds.snapshotId };
  if (previous === news.version) {
    if (!(await isHealthy(news))) {
      try {
        await bringBack(deployer, news);
      } catch (error) {
        // It runs a version the state never recorded: an upgrade a crash cut off, which does not
        // answer. It ends as that up would have ended it: rolled back to what the state last had.
        if (previous === olds.deployedVersion) throw error;
        return rollBackInterrupted(deployer, olds, news, previous, error);
      }
    }
    return { outs: outputsAfter(news, { ...keep, deployed: news.version }) };
  }
  return news.kind === "stateful" ? upgradeStateful(deployer, olds, news, previous) : upgradeStateless(deployer, olds, news, previous);
}

function snapshotSettingsOf(inputs: WarmAppInputs): SnapshotOptions {
  return { store: inputs.operations.snapshotStore, helperImage: inputs.operations.snapshotHelperImage };
}

/** The pre-upgrade snapshot, when a rollback's restore from it was cut off (the volumes are half-written). */
async function cutOffRestore(olds: WarmAppOutputs, news: WarmAppInputs): Promise<SnapshotInfo | undefined> {
  const snapshot = await snapshotInfo(stackNameForDomain(news.domain), snapshotSettingsOf(news));
  return snapshot?.restoreCutOff && snapshot.version === olds.deployedVersion ? snapshot : undefined;
}

/** A crash cut a rollback off in its restore: restore again, then redeploy the version the state has. */
async function finishRollback(deployer: Deployer, olds: WarmAppOutputs, news: WarmAppInputs, snapshot: SnapshotInfo) {
  const app = appRef(news);
  await deployer.undeploy(app);
  await restoreSnapshot({ app: snapshot.app, volumes: snapshot.volumes }, snapshotSettingsOf(news));
  await deployer.deploy(app, deployOptions(news, olds.deployedVersion, true));
  const reason = `a crashed up was rolling back to ${olds.deployedVersion}: its restore was cut off half-way and has been finished`;
  await alert(news, { from: olds.deployedVersion, to: news.version, outcome: "rolled-back", severity: "warning", reason });
  return { outs: outputsAfter(news, { deployed: olds.deployedVersion, lastGood: olds.lastGood, appSecrets: olds.appSecrets, snapshotId: snapshot.id, rollbackReason: reason }) };
}

/** An upgrade to `running` that a crash cut off and that does not answer: rolled back as a failed upgrade is. */
async function rollBackInterrupted(deployer: Deployer, olds: WarmAppOutputs, news: WarmAppInputs, running: string, failure: unknown) {
  const app = appRef(news);
  const good = olds.deployedVersion;
  const upgradeError = new Error(`an up cut off by a crash had started the upgrade to ${running}, which does not answer: ${reasonOf(failure)}`);
  if (news.kind === "stateless") {
    await rollBack({ ...news, version: running }, good, upgradeError, () => deployer.deploy(app, deployOptions(news, good, true)));
    return { outs: outputsAfter(news, { deployed: good, lastGood: olds.lastGood, appSecrets: olds.appSecrets, rollbackReason: reasonOf(upgradeError) }) };
  }
  const snapshot = await snapshotInfo(stackNameForDomain(news.domain), snapshotSettingsOf(news));
  if (snapshot?.version !== good) throw new Error(`${news.app}: ${reasonOf(upgradeError)}; and there is no snapshot of ${good} to roll back to (the store has ${snapshot?.version ?? "none"}): restore by hand`);
  await rollBack({ ...news, version: running }, good, upgradeError, async () => {
    await deployer.undeploy(app);
    await restoreSnapshot({ app: snapshot.app, volumes: snapshot.volumes }, snapshotSettingsOf(news));
    await deployer.deploy(app, deployOptions(news, good, true));
  });
  return { outs: outputsAfter(news, { deployed: good, lastGood: olds.lastGood, appSecrets: olds.appSecrets, snapshotId: snapshot.id, rollbackReason: reasonOf(upgradeError) }) };
}

/**
 * The app runs the right version but does not answer: restart what Swarm gave up on, then redeploy
 * the same version and wait for health. No snapshot or rollback: nothing changes version.
 */
async function bringBack(deployer: Deployer, news: WarmAppInputs): Promise<void> {
  const app = appRef(news);
  const revived = await deployer.revive(app);
  await deployer.deploy(app, deployOptions(news, news.version, true));
  const how = revived.length ? `restarted ${revived.join(", ")}, which Swarm had given up on` : "it answered again within the deploy timeout";
  await alert(news, { from: news.version, to: news.version, outcome: "restarted", severity: "warning", reason: `was down at ${news.version}; ${how}` });
}

async function upgradeStateless(deployer: Deployer, olds: WarmAppOutputs, news: WarmAppInputs, previous: string) {
  const app = appRef(news);
  try {
    await deployer.deploy(app, deployOptions(news, news.version, false));
  } catch (upgradeError) {
    await rollBack(news, previous, upgradeError, () => deployer.deploy(app, deployOptions(news, previous, true)));
    return { outs: outputsAfter(news, { deployed: previous, lastGood: olds.lastGood, appSecrets: olds.appSecrets, rollbackReason: reasonOf(upgradeError) }) };
  }
  await alert(news, { from: previous, to: news.version, outcome: "upgraded", severity: "info", reason: "healthy after upgrade" });
  return { outs: outputsAfter(news, { deployed: news.version, appSecrets: olds.appSecrets }) };
}

/**
 * Undeploy, snapshot, upgrade; on any failure undeploy, restore the snapshot, redeploy previous. With
 * a canary, the live app serves again at `previous` while the canary runs on that snapshot; a red
 * canary leaves it there (held), a green one is followed by the upgrade from a fresh snapshot.
 */
async function upgradeStateful(deployer: Deployer, olds: WarmAppOutputs, news: WarmAppInputs, previous: string) {
  const app = appRef(news);
  const target = { app: stackNameForDomain(news.domain), volumes: await deployer.volumes(app) };
  const snapshotOptions = snapshotSettingsOf(news);
  await deployer.undeploy(app);
  let snapshot = await takeSnapshot({ ...target, version: previous }, snapshotOptions);
  let canaryOutcome: CanaryOutcome | undefined;
  if (news.canary) {
    canaryOutcome = await canaryBeforeUpgrade(deployer, news, news.canary, previous, snapshot);
    if (!canaryOutcome.passed) {
      await alert(news, { from: previous, to: news.version, outcome: "canary-failed", severity: "warning", reason: canaryOutcome.reason });
      return { outs: outputsAfter(news, { deployed: previous, lastGood: olds.lastGood, appSecrets: olds.appSecrets, snapshotId: snapshot.id, canaryOutcome }) };
    }
    await deployer.undeploy(app);
    snapshot = await takeSnapshot({ ...target, version: previous }, snapshotOptions);
  }
  try {
    await deployer.deploy(app, deployOptions(news, news.version, false));
  } catch (upgradeError) {
    await rollBack(news, previous, upgradeError, async () => {
      await deployer.undeploy(app);
      await restoreSnapshot(target, snapshotOptions);
      await deployer.deploy(app, deployOptions(news, previous, true));
    });
    return {
      outs: outputsAfter(news, {
        deployed: previous,
        lastGood: olds.lastGood,
        appSecrets: olds.appSecrets,
        snapshotId: snapshot.id,
        rollbackReason: reasonOf(upgradeError),
        canaryOutcome,
      }),
    };
  }
  const healthy = canaryOutcome ? `healthy after upgrade; ${canaryOutcome.reason}` : "healthy after upgrade";
  await alert(news, { from: previous, to: news.version, outcome: "upgraded", severity: "info", reason: healthy });
  return { outs: outputsAfter(news, { deployed: news.version, appSecrets: olds.appSecrets, snapshotId: snapshot.id, canaryOutcome }) };
}

/** The live app back at `previous` (runs keep their Keycloak), then the canary on the snapshot of it. */
async function canaryBeforeUpgrade(deployer: Deployer, news: WarmAppInputs, canary: CanarySpec, previous: string, snapshot: SnapshotInfo): Promise<CanaryOutcome> {
  const app = appRef(news);
  await deployer.deploy(app, deployOptions(news, previous, true));
  return runKeycloakCanary(canary, {
    deployer,
    live: app,
    snapshot,
    snapshotOptions: snapshotSettingsOf(news),
    version: news.version,
    health: news.health,
    deployTimeoutMs: news.deployTimeoutMs,
  });
}

function reasonOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Rolls back; the alert says what happened. A failed rollback is critical and fails the update. */
async function rollBack(news: WarmAppInputs, previous: string, upgradeError: unknown, restore: () => Promise<unknown>) {
  try {
    await restore();
  } catch (rollbackError) {
    const reason = `upgrade failed: ${reasonOf(upgradeError)}; ROLLBACK FAILED: ${reasonOf(rollbackError)}`;
    await alert(news, { from: previous, to: news.version, outcome: "rollback-failed", severity: "critical", reason });
    throw new Error(`${news.app}: ${reason}. The pre-upgrade snapshot is kept untouched; restore by hand.`);
  }
  await alert(news, { from: previous, to: news.version, outcome: "rolled-back", severity: "warning", reason: `upgrade failed: ${reasonOf(upgradeError)}` });
}

async function alert(
  inputs: WarmAppInputs,
  record: { from: string; to: string; outcome: "upgraded" | "rolled-back" | "rollback-failed" | "restarted" | "canary-failed"; severity: "info" | "warning" | "critical"; reason: string },
) {
  await raiseAlert(inputs.operations.alertDir, { app: inputs.app, ...record }, inputs.operations.alertWebhook);
}

/**
 * `pulumi refresh`: the version the swarm runs now becomes the state's (a version deployed by hand
 * shows up as drift, and the next up moves it to the gate's target); an app whose env file is gone
 * is gone. An undeployed app keeps the version it had: the next up deploys it again.
 */
export async function readWarmApp(id: string, props: WarmAppOutputs): Promise<pulumi.dynamic.ReadResult> {
  const deployer = deployerFor(props);
  const app = appRef(props);
  if ((await deployer.appEnv(app)) === null) return { id: "", props: {} };
  const live = await deployer.currentVersion(app);
  return { id, props: { ...props, deployedVersion: live ?? props.deployedVersion } };
}

export async function deleteWarmApp(props: WarmAppOutputs): Promise<void> {
  const deployer = deployerFor(props);
  const app = appRef(props);
  await deployer.undeploy(app);
  if (!props.purge) return;
  await deployer.remove(app, { volumes: true });
  await deleteSnapshot(stackNameForDomain(props.domain), snapshotSettingsOf(props));
}
