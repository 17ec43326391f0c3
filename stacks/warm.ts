import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { listAlerts, raiseAlert } from "../infra/adapters/alerts";
import { createDeployer, DeployerSettings } from "../infra/adapters/deployers";
import { gateInputsFor, releasedVersions } from "../infra/adapters/recipes";
import { namespacedConfig, parseConfig, parseWarmRetry, WarmAppConfig, WarmAppName, WarmConfig, warmConfigSchema } from "../infra/config";
import { decide, failedCanaries, failedUpgrades, GateDecision, Hold } from "../infra/gate";
import type { CanarySpec } from "../infra/keycloak-canary";
import { compareVersions, isVersion, parseVersion } from "../infra/versions";
import { WarmApp, WarmOperations } from "../infra/warm-app";
import { canonicalResources } from "./canonicals";
import { operatorError } from "./errors";

/**
 * The warm stack: the live-warm shared apps, each moved to the newest version the safety gate
 * allows. The plan is computed from the live system (what runs now) and the recipe's released
 * versions, so `pulumi preview -s warm` is the gated upgrade plan; holds are warned about on every
 * run and written as alerts only by `up`.
 */
export interface PlannedApp {
  app: string;
  recipe: string;
  domain: string;
  current: string | null;
  target: string;
  action: GateDecision["action"];
  /** Deployed but not answering its health path when the plan was made: the up brings it back. */
  down: boolean;
  /** The recipes of the canary that runs before this upgrade, if one does (the shared Keycloak). */
  canary?: string[];
}

async function planApp(config: WarmConfig, settings: DeployerSettings, app: string, appConfig: WarmAppConfig, failed: { failedBefore: Record<string, string>; canaryFailed: Record<string, string> }) {
  const domain = appConfig.domain ?? `${app}.${config.baseDomain}`;
  const ref = { recipe: appConfig.recipe, domain };
  const deployer = createDeployer(settings);
  const recipeDir = path.join(config.abraDir, "recipes", appConfig.recipe);
  const released = await releasedVersions(recipeDir);
  for (const { tag, reason } of released.rejected) pulumi.log.warn(`${app}: recipe tag ${tag} is not a release: ${reason}`);
  // A commit or a foreign label on the live app is no release: the gate refuses to compare it. An
  // app that is not deployed (a crash cut an upgrade off between undeploy and deploy) is at the
  // version its env file names, which a deploy writes only once it converged.
  const appEnv = await deployer.appEnv(ref);
  const current = (await deployer.currentVersion(ref)) ?? (appEnv ? await deployer.envVersion(ref) : null);
  const newer = current && isVersion(current) ? released.versions.filter((version) => compareVersions(version, parseVersion(current)) > 0) : [];
  const { notes, envSamples } = await gateInputsFor(recipeDir, newer.map((version) => version.raw));
  const decision = decide({
    app,
    current,
    initialVersion: appConfig.initialVersion,
    released: released.versions.map((version) => version.raw),
    notes,
    envSamples,
    currentEnvKeys: Object.keys(appEnv ?? {}),
    ...failed,
  });
  const down = current !== null && !(await deployer.probeHealth(ref, appConfig.health)).ok;
  return { domain, decision, down };
}

/** The shared Keycloak's canary, when the catalogue names canary recipes: it runs before every move of that app's version. */
function canaryFor(config: WarmConfig, app: string, appConfig: WarmAppConfig): CanarySpec | undefined {
  if (app !== "keycloak" || appConfig.kind !== "stateful" || !config.canary || !config.stateDir) return undefined;
  return { ...config.canary, recipes: [...config.canary.recipes], runCommand: [...config.canary.runCommand], stateDir: config.stateDir, baseDomain: config.baseDomain };
}

/** The hold a red canary puts on its version in the up that ran it (later plans read it from the alert). */
function canaryHold(decision: GateDecision, reason: string): Hold {
  const target = decision.target;
  return {
    app: decision.app,
    from: decision.current ?? target,
    to: decision.holds[0]?.to ?? target,
    blockedAt: target,
    reason: "canary-failed",
    detail: `the canary of ${target} failed, so the live app never moved; it is not tried again until a newer safe release or a retry (warmstack up --retry ${decision.app})`,
    lines: [reason],
  };
}

function describeHold(hold: Hold): string {
  const lines = hold.lines.length ? ` (${hold.lines.join("; ")})` : "";
  return `hold ${hold.app} at ${hold.from}: ${hold.to} is available but ${hold.blockedAt} needs a human — ${hold.detail}${lines}`;
}

export async function warmProgram(): Promise<Record<string, unknown>> {
  const config = parseConfig(warmConfigSchema, namespacedConfig(pulumi.runtime.allConfig()), "warm stack");
  const retry = new Set(parseWarmRetry([process.env.WARMSTACK_RETRY ?? ""], "WARMSTACK_RETRY"));
  // Read once for every app: the failed upgrades the gate must not take again on its own.
  const pastAlerts = await listAlerts(config.alertDir);
  const settings: DeployerSettings = {
    deployer: config.deployer,
    abraDir: config.abraDir,
    server: config.server,
    proxyUrl: config.proxyUrl,
    dnsrrEndpoints: config.dnsrrEndpoints,
  };
  const operations: WarmOperations = {
    alertDir: config.alertDir,
    alertWebhook: config.alertWebhook,
    snapshotStore: config.snapshotStore,
    snapshotHelperImage: config.snapshotHelperImage,
  };
  const canonicals = await canonicalResources(config, settings);
  const plan: PlannedApp[] = [];
  const holds: Hold[] = [];
  const canaryHolds: pulumi.Output<Hold | undefined>[] = [];
  const deployed: Record<string, pulumi.Output<string>> = {};
  let keycloakAdminPassword: pulumi.Output<string> | undefined;
  for (const [app, appConfig] of Object.entries(config.apps)) {
    if (!appConfig) continue;
    const retried = retry.has(app as WarmAppName);
    const failed = { failedBefore: retried ? {} : failedUpgrades(pastAlerts, app), canaryFailed: retried ? {} : failedCanaries(pastAlerts, app) };
    const { domain, decision, down } = await planApp(config, settings, app, appConfig, failed);
    const canary = canaryFor(config, app, appConfig);
    for (const warning of decision.warnings) pulumi.log.warn(warning);
    for (const hold of decision.holds) {
      pulumi.log.warn(describeHold(hold));
      if (!pulumi.runtime.isDryRun()) {
        await raiseAlert(
          config.alertDir,
          { app, from: hold.from, to: hold.to, outcome: "held", severity: "warning", reason: describeHold(hold) },
          config.alertWebhook,
        );
      }
    }
    holds.push(...decision.holds);
    const canaryRuns = canary && decision.action === "upgrade" ? { canary: canary.recipes } : {};
    plan.push({ app, recipe: appConfig.recipe, domain, current: decision.current, target: decision.target, action: decision.action, down, ...canaryRuns });
    const warmApp = new WarmApp(app, {
      app,
      recipe: appConfig.recipe,
      domain,
      kind: appConfig.kind,
      version: decision.target,
      health: appConfig.health,
      deployTimeoutMs: appConfig.deployTimeoutSeconds * 1000,
      env: appConfig.env,
      deployerSettings: settings,
      operations: config.alertWebhook ? pulumi.secret(operations) : operations,
      purge: appConfig.purge,
      canary,
    });
    deployed[app] = warmApp.deployedVersion;
    // A preview cannot know a canary's outcome: only an up adds its hold (an unknown would hide every hold).
    if (canary && !pulumi.runtime.isDryRun()) {
      canaryHolds.push(warmApp.canaryOutcome.apply((outcome) => (outcome && !outcome.passed && outcome.version === decision.target ? canaryHold(decision, outcome.reason) : undefined)));
    }
    // The shared Keycloak's admin password, which this stack generated: the runner reads it from here
    // (a secret output, decrypted only for it), so runs and the reaper need no copy of it elsewhere.
    if (app === "keycloak") keycloakAdminPassword = pulumi.secret(warmApp.appSecrets.apply((secrets) => secrets.admin_password ?? ""));
    // The rollback is recorded in the resource's state first; failing the run afterwards makes
    // the nightly job red, so the alert is not the only signal.
    warmApp.rolledBack.apply((rolledBack) => {
      if (rolledBack) throw operatorError(`${app}: the upgrade to ${decision.target} failed and was rolled back; see the alert`);
    });
  }
  const allHolds = canaryHolds.length ? pulumi.all(canaryHolds).apply((found) => [...holds, ...found.filter((hold): hold is Hold => hold !== undefined)]) : holds;
  return { plan, holds: allHolds, deployed, canonicals, ...(keycloakAdminPassword ? { keycloakAdminPassword } : {}) };
}
