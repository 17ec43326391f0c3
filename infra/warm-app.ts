import * as pulumi from "@pulumi/pulumi";
import { raiseAlert } from "./adapters/alerts";
import type { AppRef, Deployer, HealthSpec } from "./adapters/deployer";
import { createDeployer, DeployerSettings } from "./adapters/deployers";
import { deleteSnapshot, restoreSnapshot, takeSnapshot } from "./adapters/snapshots";
import { assertDomain, assertRecipeName, stackNameForDomain, WARM_OWNER_KEY, WARM_OWNER_MARK } from "./naming";
import { inputChecker, withoutUndefined } from "./provider-support";
import { isVersion } from "./versions";

/**
 * WarmApp: a live-warm shared app (the Keycloak, the Traefik) kept at the version the gate chose,
 * with health-gated upgrades. A failed upgrade rolls back — stateful apps restore the snapshot taken
 * before the upgrade — and raises an alert; a failed rollback raises a critical alert and keeps the
 * snapshot. The version running now is read from the swarm, never trusted from Pulumi state.
 */
export interface WarmAppArgs {
  /** The app's key in the warm stack's config, e.g. "keycloak". */
  app: pulumi.Input<string>;
  recipe: pulumi.Input<string>;
  domain: pulumi.Input<string>;
  kind: pulumi.Input<"stateful" | "stateless">;
  /** The version the gate chose for this run. */
  version: pulumi.Input<string>;
  health: pulumi.Input<HealthSpec>;
  deployTimeoutMs: pulumi.Input<number>;
  /** Env keys the app needs beyond its recipe's sample, set when the app is created. */
  env?: pulumi.Input<Record<string, pulumi.Input<string>>>;
  /** Secret values for the app's swarm secrets; missing ones are generated when it is created. */
  secrets?: pulumi.Input<Record<string, pulumi.Input<string>>>;
  deployerSettings: pulumi.Input<DeployerSettings>;
  operations: pulumi.Input<WarmOperations>;
  /** Delete the volumes and the snapshot with the app. Default: keep them. */
  purge?: pulumi.Input<boolean>;
}

/** Where alerts and snapshots go; the webhook URL may carry a token, so it arrives as a secret. */
export interface WarmOperations {
  alertDir: string;
  alertWebhook?: string;
  snapshotStore: string;
  snapshotHelperImage: string;
}

interface WarmAppInputs {
  app: string;
  recipe: string;
  domain: string;
  kind: "stateful" | "stateless";
  version: string;
  health: HealthSpec;
  deployTimeoutMs: number;
  env?: Record<string, string>;
  secrets?: Record<string, string>;
  deployerSettings: DeployerSettings;
  operations: WarmOperations;
  purge?: boolean;
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
}

// The provider's code is stored in state and used again for deletes, possibly by a later version
// of warmstack: the closures only load this module at run time and call its named steps.
function steps(): typeof import("./warm-app") {
  const path = require("node:path");
  // The provider process runs in the directory of the program's main: dist/stacks with
  // Pulumi.yaml's main, the project root for an inline program whose main is the project.
  const besideStacks = path.resolve("../infra/warm-app.js");
  return require(require("node:fs").existsSync(besideStacks) ? besideStacks : path.resolve("dist/infra/warm-app.js"));
}

const warmAppProvider: pulumi.dynamic.ResourceProvider = {
  check: async (_olds: WarmAppInputs, news: WarmAppInputs) => steps().checkWarmApp(news),
  diff: async (_id: string, olds: WarmAppOutputs, news: WarmAppInputs) => steps().diffWarmApp(olds, news),
  create: async (inputs: WarmAppInputs) => steps().createWarmApp(inputs),
  update: async (_id: string, olds: WarmAppOutputs, news: WarmAppInputs) => steps().updateWarmApp(olds, news),
  delete: async (_id: string, props: WarmAppOutputs) => steps().deleteWarmApp(props),
};

export class WarmApp extends pulumi.dynamic.Resource {
  declare public readonly deployedVersion: pulumi.Output<string>;
  declare public readonly lastGood: pulumi.Output<string>;
  declare public readonly rolledBack: pulumi.Output<boolean>;
  declare public readonly rollbackReason: pulumi.Output<string | undefined>;
  declare public readonly lastCheckedAt: pulumi.Output<string>;
  declare public readonly snapshotId: pulumi.Output<string | undefined>;
  declare public readonly appSecrets: pulumi.Output<Record<string, string>>;

  constructor(name: string, args: WarmAppArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      warmAppProvider,
      name,
      {
        ...args,
        deployedVersion: undefined,
        lastGood: undefined,
        rolledBack: undefined,
        rollbackReason: undefined,
        lastCheckedAt: undefined,
        snapshotId: undefined,
        appSecrets: undefined,
      },
      { ...opts, additionalSecretOutputs: ["secrets", "appSecrets", "operations"] },
    );
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
  return { inputs: news, failures };
}

export async function diffWarmApp(olds: WarmAppOutputs, news: WarmAppInputs): Promise<pulumi.dynamic.DiffResult> {
  const live = await deployerFor(news).currentVersion(appRef(news));
  const replaces = (["recipe", "domain", "kind"] as const).filter((key) => olds[key] !== news[key]);
  const healthChanged = JSON.stringify(olds.health) !== JSON.stringify(news.health);
  const versionChanged = live !== news.version || olds.deployedVersion !== news.version;
  // An app that is down at its version (after a host restart Swarm may have given up on it) is
  // brought back by the update: the plan must show it rather than report nothing to do.
  const down = !versionChanged && !(await isHealthy(news));
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
    const created = await deployer.newApp(app, {
      version: inputs.version,
      env: { ...inputs.env, [WARM_OWNER_KEY]: WARM_OWNER_MARK },
      secrets: inputs.secrets,
    });
    return created.secrets;
  }
  if (env[WARM_OWNER_KEY] !== WARM_OWNER_MARK) {
    throw new Error(`app ${inputs.domain} exists and is not this warm stack's (${WARM_OWNER_KEY}=${env[WARM_OWNER_KEY] ?? "<unset>"}); refusing to adopt it`);
  }
  return { ...inputs.secrets };
}

function deployOptions(inputs: WarmAppInputs, ref: string, force: boolean) {
  return { ref, health: inputs.health, timeoutMs: inputs.deployTimeoutMs, force };
}

async function isHealthy(inputs: WarmAppInputs): Promise<boolean> {
  return (await deployerFor(inputs).probeHealth(appRef(inputs), inputs.health)).ok;
}

function outputsAfter(
  inputs: WarmAppInputs,
  outcome: { deployed: string; appSecrets: Record<string, string>; rollbackReason?: string; snapshotId?: string; lastGood?: string },
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
  });
}


export async function updateWarmApp(olds: WarmAppOutputs, news: WarmAppInputs): Promise<pulumi.dynamic.UpdateResult> {
  const deployer = deployerFor(news);
  const app = appRef(news);
  const previous = (await deployer.currentVersion(app)) ?? olds.deployedVersion;
  const keep = { appSecrets: olds.appSecrets, snapshotId: olds.snapshotId };
  if (previous === news.version) {
    if (!(await isHealthy(news))) await bringBack(deployer, news);
    return { outs: outputsAfter(news, { ...keep, deployed: news.version }) };
  }
  return news.kind === "stateful" ? upgradeStateful(deployer, olds, news, previous) : upgradeStateless(deployer, olds, news, previous);
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

/** Undeploy, snapshot, upgrade; on any failure undeploy, restore the snapshot, redeploy previous. */
async function upgradeStateful(deployer: Deployer, olds: WarmAppOutputs, news: WarmAppInputs, previous: string) {
  const app = appRef(news);
  const target = { app: stackNameForDomain(news.domain), volumes: await deployer.volumes(app) };
  const snapshotOptions = { store: news.operations.snapshotStore, helperImage: news.operations.snapshotHelperImage };
  await deployer.undeploy(app);
  const snapshot = await takeSnapshot(target, snapshotOptions);
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
      }),
    };
  }
  await alert(news, { from: previous, to: news.version, outcome: "upgraded", severity: "info", reason: "healthy after upgrade" });
  return { outs: outputsAfter(news, { deployed: news.version, appSecrets: olds.appSecrets, snapshotId: snapshot.id }) };
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
  record: { from: string; to: string; outcome: "upgraded" | "rolled-back" | "rollback-failed" | "restarted"; severity: "info" | "warning" | "critical"; reason: string },
) {
  await raiseAlert(inputs.operations.alertDir, { app: inputs.app, ...record }, inputs.operations.alertWebhook);
}

export async function deleteWarmApp(props: WarmAppOutputs): Promise<void> {
  const deployer = deployerFor(props);
  const app = appRef(props);
  await deployer.undeploy(app);
  if (!props.purge) return;
  await deployer.remove(app, { volumes: true });
  await deleteSnapshot(stackNameForDomain(props.domain), { store: props.operations.snapshotStore, helperImage: props.operations.snapshotHelperImage });
}
