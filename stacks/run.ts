import * as pulumi from "@pulumi/pulumi";
import { DeployerSettings } from "../infra/adapters/deployers";
import { namespacedConfig, parseConfig, RunConfig, runConfigSchema } from "../infra/config";
import { parseRunStackName, runDomain } from "../infra/naming";
import { RunApp } from "../infra/run-app";
import { realmOutputs, RunRealm } from "../infra/run-realm";

/**
 * A run stack: what one CI run of one recipe borrows or creates, all of it removed on destroy. A
 * recipe with a single-sign-on dependency gets its own realm on the shared Keycloak; when the runner
 * found that Keycloak unhealthy (warmstack:sso is cold-keycloak) the run deploys a cold Keycloak of
 * its own (the cold fallback) and says so. The program looks at nothing outside its config, so the
 * same config always registers the same graph.
 */
function ssoRealm(config: RunConfig, stack: string, settings: DeployerSettings) {
  const realmArgs = { recipe: config.recipe, runId: config.runId, stack, proxyUrl: config.proxyUrl, stateDir: config.stateDir };
  if (config.sso === "warm-keycloak") return new RunRealm("realm", { ...realmArgs, keycloakDomain: config.keycloakDomain! });
  const coldDomain = runDomain("keycloak", config.runId, config.baseDomain);
  const cold = new RunApp("cold-keycloak", {
    recipe: "keycloak",
    stack,
    domain: coldDomain,
    ref: config.coldKeycloakVersion,
    health: { path: "/realms/master" },
    deployTimeoutMs: 300_000,
    deployerSettings: settings,
  });
  return new RunRealm(
    "realm",
    { ...realmArgs, keycloakDomain: coldDomain, coldAdminPassword: cold.appSecrets.apply((secrets) => secrets.admin_password ?? "") },
    { dependsOn: [cold] },
  );
}

function appUnderTest(config: RunConfig, app: NonNullable<RunConfig["app"]>, stack: string, settings: DeployerSettings, realm: RunRealm | undefined) {
  const quick = config.mode === "quick" && config.canonical ? { canonical: config.canonical, stateDir: config.stateDir, leaseTimeoutMs: config.leaseTimeoutSeconds * 1000 } : undefined;
  return new RunApp("app", {
    recipe: config.recipe,
    stack,
    domain: runDomain(config.recipe, config.runId, config.baseDomain),
    ref: config.ref,
    health: app.health,
    ready: app.ready,
    deployTimeoutMs: app.deployTimeoutSeconds * 1000,
    env: realm ? pulumi.all({ OIDC_ISSUER: realm.issuer, OIDC_CLIENT_ID: realm.clientId }) : {},
    deployerSettings: settings,
    quick,
    progressFile: config.progressFile,
  });
}

export async function runProgram(): Promise<Record<string, unknown>> {
  const stack = pulumi.getStack();
  const config = parseConfig(runConfigSchema, namespacedConfig(pulumi.runtime.allConfig()), `run stack ${stack}`);
  const named = parseRunStackName(stack);
  if (!named || named.recipe !== config.recipe || named.runId !== config.runId) {
    throw new Error(`run stack ${stack}: its name must be run-${config.recipe}-${config.runId} (warmstack:recipe and warmstack:runId)`);
  }
  const settings: DeployerSettings = {
    deployer: "stack",
    abraDir: config.abraDir,
    server: config.server,
    proxyUrl: config.proxyUrl,
    dnsrrEndpoints: config.dnsrrEndpoints,
  };
  const outputs: Record<string, unknown> = { recipe: config.recipe, mode: config.mode, ref: config.ref || "latest", sso: config.sso };
  let realm: RunRealm | undefined;
  if (config.sso !== "none") {
    if (config.ssoFallback) pulumi.log.warn(`cold fallback: ${config.ssoFallback}; this run deploys its own Keycloak`);
    realm = ssoRealm(config, stack, settings);
    Object.assign(outputs, { ssoFallback: config.ssoFallback, ...realmOutputs(realm) });
  }
  if (config.app) {
    const noCanonical = config.mode === "quick" && !config.canonical;
    if (noCanonical) pulumi.log.warn(`quick lane unavailable: no canonical of ${config.recipe} was given; this run uses the cold lane`);
    const app = appUnderTest(config, config.app, stack, settings, realm);
    Object.assign(outputs, {
      lane: app.lane,
      laneFallback: noCanonical ? `no canonical of ${config.recipe} in the warm stack` : app.laneFallback,
      appDomain: app.appDomain,
      deployed: app.deployed,
      deployCount: app.deployCount,
      deployMs: app.deployMs,
      leaseWaitMs: app.leaseWaitMs,
    });
  }
  return outputs;
}
