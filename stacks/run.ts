import * as pulumi from "@pulumi/pulumi";
import { DeployerSettings } from "../infra/adapters/deployers";
import { probeHttp } from "../infra/adapters/health";
import { namespacedConfig, parseConfig, RunConfig, runConfigSchema } from "../infra/config";
import { parseRunStackName, runDomain } from "../infra/naming";
import { RunApp } from "../infra/run-app";
import { RunRealm } from "../infra/run-realm";

/**
 * A run stack: what one CI run of one recipe borrows or creates, all of it removed on destroy. A
 * recipe with a single-sign-on dependency gets its own realm on the shared Keycloak; when that
 * Keycloak is not healthy the run deploys a cold Keycloak of its own (the cold fallback) and says so.
 */
type SsoPath = "none" | "warm-keycloak" | "cold-keycloak";

async function warmKeycloakState(config: RunConfig): Promise<{ healthy: boolean; detail: string }> {
  if (!config.keycloakDomain) return { healthy: false, detail: "no shared Keycloak is configured" };
  const probe = await probeHttp({ baseUrl: config.proxyUrl, path: "/realms/master", host: config.keycloakDomain });
  return { healthy: probe.ok, detail: `the shared Keycloak at ${config.keycloakDomain} answers /realms/master with ${probe.detail}` };
}

function ssoRealm(config: RunConfig, stack: string, settings: DeployerSettings, warm: boolean) {
  const realmArgs = { recipe: config.recipe, hex: config.hex, stack, proxyUrl: config.proxyUrl, stateDir: config.stateDir };
  if (warm) return new RunRealm("realm", { ...realmArgs, keycloakDomain: config.keycloakDomain! });
  const coldDomain = runDomain("keycloak", config.hex, config.baseDomain);
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

export async function runProgram(): Promise<Record<string, unknown>> {
  const stack = pulumi.getStack();
  const config = parseConfig(runConfigSchema, namespacedConfig(pulumi.runtime.allConfig()), `run stack ${stack}`);
  const named = parseRunStackName(stack);
  if (!named || named.recipe !== config.recipe || named.hex !== config.hex) {
    throw new Error(`run stack ${stack}: its name must be run-${config.recipe}-${config.hex} (warmstack:recipe and warmstack:hex)`);
  }
  const summary = { recipe: config.recipe, mode: config.mode, ref: config.ref || "latest" };
  if (!config.sso) return { ...summary, sso: "none" satisfies SsoPath };
  const settings: DeployerSettings = {
    deployer: "stack",
    abraDir: config.abraDir,
    server: config.server,
    proxyUrl: config.proxyUrl,
    dnsrrEndpoints: config.dnsrrEndpoints,
  };
  const warm = await warmKeycloakState(config);
  if (!warm.healthy) pulumi.log.warn(`cold fallback: ${warm.detail}; this run deploys its own Keycloak`);
  const realm = ssoRealm(config, stack, settings, warm.healthy);
  return {
    ...summary,
    sso: (warm.healthy ? "warm-keycloak" : "cold-keycloak") satisfies SsoPath,
    fallback: warm.healthy ? undefined : warm.detail,
    realm: realm.realm,
    issuer: realm.issuer,
    tokenEndpoint: realm.tokenEndpoint,
    clientId: realm.clientId,
    // Secret outputs stay secret: the runner hands them to the recipe's tests in their environment.
    clientSecret: realm.clientSecret,
    testUser: realm.testUser,
    testUserPassword: realm.testUserPassword,
  };
}
