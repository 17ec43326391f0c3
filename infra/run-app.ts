import * as pulumi from "@pulumi/pulumi";
import type { AppRef, Deployer, HealthSpec } from "./adapters/deployer";
import { createDeployer, DeployerSettings } from "./adapters/deployers";
import { isCommitRef, releasedVersions } from "./adapters/recipes";
import { assertDomain, assertRecipeName, parseRunStackName } from "./naming";
import { inputChecker, withoutUndefined } from "./provider-support";
import { isVersion } from "./versions";

/**
 * RunApp, cold lane: a fresh app on the run's own domain, with fresh volumes and generated secrets,
 * deployed at a released version or a commit and converged; removed with its volumes on delete.
 * Nothing it creates outlives the run: a failed create removes what it made before failing.
 */
export interface RunAppArgs {
  recipe: pulumi.Input<string>;
  /** The run stack that owns the app (run-<recipe>-<hex6>); marks the app so the reaper can judge it. */
  stack: pulumi.Input<string>;
  domain: pulumi.Input<string>;
  /** A released version, a commit of the recipe, or "" for the newest release. */
  ref: pulumi.Input<string>;
  health: pulumi.Input<HealthSpec>;
  ready?: pulumi.Input<HealthSpec>;
  deployTimeoutMs: pulumi.Input<number>;
  env?: pulumi.Input<Record<string, pulumi.Input<string>>>;
  /** Values for the app's swarm secrets; missing ones are generated. */
  secrets?: pulumi.Input<Record<string, pulumi.Input<string>>>;
  deployerSettings: pulumi.Input<DeployerSettings>;
}

interface RunAppInputs {
  recipe: string;
  stack: string;
  domain: string;
  ref: string;
  health: HealthSpec;
  ready?: HealthSpec;
  deployTimeoutMs: number;
  env?: Record<string, string>;
  secrets?: Record<string, string>;
  deployerSettings: DeployerSettings;
}

interface RunAppOutputs extends RunAppInputs {
  /** The version or commit that was deployed (the newest release when ref was empty). */
  deployed: string;
  deployMs: number;
  /** Every secret the app was given or generated. */
  appSecrets: Record<string, string>;
}

/** The env key naming the run stack that owns an app: the reaper's evidence, besides the stack. */
export const RUN_OWNER_KEY = "WARMSTACK_RUN";

// Thin closures stored in state; the steps are loaded at run time from the program's directory.
function steps(): typeof import("./run-app") {
  const path = require("node:path");
  // The provider process runs in the directory of the program's main: dist/stacks with
  // Pulumi.yaml's main, the project root for an inline program whose main is the project.
  const besideStacks = path.resolve("../infra/run-app.js");
  return require(require("node:fs").existsSync(besideStacks) ? besideStacks : path.resolve("dist/infra/run-app.js"));
}

const runAppProvider: pulumi.dynamic.ResourceProvider = {
  check: async (_olds: RunAppInputs, news: RunAppInputs) => steps().checkRunApp(news),
  create: async (inputs: RunAppInputs) => steps().createRunApp(inputs),
  diff: async (_id: string, olds: RunAppOutputs, news: RunAppInputs) => steps().diffRunApp(olds, news),
  delete: async (_id: string, props: RunAppOutputs) => steps().deleteRunApp(props),
};

export class RunApp extends pulumi.dynamic.Resource {
  declare public readonly deployed: pulumi.Output<string>;
  declare public readonly deployMs: pulumi.Output<number>;
  declare public readonly domain: pulumi.Output<string>;
  declare public readonly appSecrets: pulumi.Output<Record<string, string>>;

  constructor(name: string, args: RunAppArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      runAppProvider,
      name,
      { ...args, deployed: undefined, deployMs: undefined, appSecrets: undefined },
      { ...opts, additionalSecretOutputs: ["secrets", "appSecrets"] },
    );
  }
}

// The steps below run in the dynamic-provider process.

function deployerFor(inputs: RunAppInputs): Deployer {
  return createDeployer(inputs.deployerSettings);
}

function appRef(inputs: RunAppInputs): AppRef {
  return { recipe: inputs.recipe, domain: inputs.domain };
}

export async function checkRunApp(news: RunAppInputs): Promise<pulumi.dynamic.CheckResult> {
  const { check, failures } = inputChecker();
  check("recipe", () => assertRecipeName(news.recipe));
  check("domain", () => assertDomain(news.domain));
  check("stack", () => {
    if (!parseRunStackName(news.stack)) throw new Error(`"${news.stack}" is not a run stack name (run-<recipe>-<hex6>)`);
  });
  check("ref", () => {
    if (news.ref !== "" && !isVersion(news.ref) && !isCommitRef(news.ref)) {
      throw new Error(`"${news.ref}" is neither a version (X.Y.Z+UPSTREAM) nor a commit (7–40 hex digits)`);
    }
  });
  return { inputs: news, failures };
}

export async function diffRunApp(olds: RunAppOutputs, news: RunAppInputs): Promise<pulumi.dynamic.DiffResult> {
  // A run app is never changed in place: any change is a new app (runs are short and disposable).
  const keys = ["recipe", "stack", "domain", "ref", "health", "ready"] as const;
  const replaces = keys.filter((key) => JSON.stringify(olds[key]) !== JSON.stringify(news[key]));
  return { changes: replaces.length > 0, replaces, deleteBeforeReplace: true };
}

async function resolveRef(deployer: Deployer, inputs: RunAppInputs): Promise<string> {
  if (inputs.ref !== "") return inputs.ref;
  const newest = (await releasedVersions(deployer.recipeDir(inputs.recipe))).versions.at(-1);
  if (!newest) throw new Error(`recipe ${inputs.recipe} has no released version`);
  return newest.raw;
}

export async function createRunApp(inputs: RunAppInputs): Promise<pulumi.dynamic.CreateResult> {
  const deployer = deployerFor(inputs);
  const app = appRef(inputs);
  const started = Date.now();
  const ref = await resolveRef(deployer, inputs);
  const existing = await deployer.appEnv(app);
  if (existing && existing[RUN_OWNER_KEY] !== inputs.stack) {
    throw new Error(`app ${inputs.domain} exists and belongs to ${existing[RUN_OWNER_KEY] ?? "no run"}; refusing to adopt it`);
  }
  let appSecrets: Record<string, string> = { ...inputs.secrets };
  try {
    if (!existing) {
      const version = isVersion(ref) ? ref : undefined;
      const created = await deployer.newApp(app, { version, env: { ...inputs.env, [RUN_OWNER_KEY]: inputs.stack }, secrets: inputs.secrets });
      appSecrets = created.secrets;
    }
    if ((await deployer.currentVersion(app)) !== ref) {
      await deployer.deploy(app, { ref, health: inputs.health, ready: inputs.ready, timeoutMs: inputs.deployTimeoutMs });
    }
  } catch (error) {
    await removeEverything(deployer, app);
    throw error;
  }
  const outs: RunAppOutputs = { ...inputs, deployed: ref, deployMs: Date.now() - started, appSecrets };
  return { id: `${inputs.deployerSettings.server}/${inputs.domain}`, outs: withoutUndefined(outs) };
}

async function removeEverything(deployer: Deployer, app: AppRef): Promise<void> {
  await deployer.undeploy(app);
  await deployer.remove(app, { volumes: true });
}

export async function deleteRunApp(props: RunAppOutputs): Promise<void> {
  await removeEverything(deployerFor(props), appRef(props));
}
