import * as path from "node:path";
import { ConfigMap, ConfigValue, Stack } from "@pulumi/pulumi/automation";
import { CONFIG_NAMESPACE } from "../infra/config";
import { LoadedCatalogue, loadCatalogue } from "./catalogue";
import { readSecretFile } from "../infra/adapters/secret-files";
import type { RunnerContext } from "./context";
import type { Progress } from "./progress";
import { RecipeFetch, syncRecipes } from "./recipe-sources";

/**
 * Before every operation of the runner on the warm stack: the embedded local default filled in where
 * the operator has set nothing — a warm stack on this machine's swarm, the shared Keycloak behind the
 * proxy and a warm Traefik on the next port, alerts under the state directory — and every recipe the
 * stack deploys fetched from its remote. `pulumi config set` always wins over a default.
 */
export async function prepareWarmStack(context: RunnerContext, stack: Stack, progress: Progress): Promise<RecipeFetch[]> {
  // One read and at most one write of the config: each is a Pulumi CLI process of its own.
  const current = await stack.getAllConfig();
  const writes = await missingDefaults(context, current);
  const config = { ...current, ...writes };
  const abraDir = config[`${CONFIG_NAMESPACE}:abraDir`]?.value;
  const recipes = configuredRecipes(config);
  // A warm stack that deploys nothing has no Keycloak to canary and no recipe to fetch.
  if (!abraDir || recipes.length === 0) {
    await writeConfig(stack, writes);
    return [];
  }
  const catalogue = await loadCatalogue(context.defaults.catalogue.value);
  const canary = canaryConfig(catalogue);
  const key = `${CONFIG_NAMESPACE}:canary`;
  if (canary === undefined && key in current) await stack.removeConfig(key);
  await writeConfig(stack, canary === undefined || current[key]?.value === canary ? writes : { ...writes, [key]: { value: canary } });
  return syncRecipes(context, catalogue.catalogue, abraDir, recipes, progress);
}

async function writeConfig(stack: Stack, values: Record<string, ConfigValue>): Promise<void> {
  if (Object.keys(values).length > 0) await stack.setAllConfig(values);
}

/**
 * The shared Keycloak's canary follows the catalogue: its `canary: true` recipes, run by this very
 * runner's run command. Written on every operation that changes it, so a plain `pulumi up` sees the
 * last one's.
 */
function canaryConfig(loaded: LoadedCatalogue): string | undefined {
  const recipes = Object.entries(loaded.catalogue.recipes).filter(([, entry]) => entry.canary).map(([recipe]) => recipe);
  if (recipes.length === 0) return undefined;
  return JSON.stringify({ recipes, runCommand: [process.execPath, path.join(__dirname, "cli.js"), "run"], catalogue: path.resolve(loaded.file) });
}

/** The embedded defaults of every key the operator has not set. */
async function missingDefaults(context: RunnerContext, current: ConfigMap): Promise<Record<string, ConfigValue>> {
  const { settings, defaults: runner } = context;
  const warmProxyPort = runner.warmProxyPort.value;
  const defaults: Record<string, string> = {
    baseDomain: runner.baseDomain.value,
    abraDir: runner.abraDir.value,
    proxyUrl: runner.proxyUrl.value,
    alertDir: path.join(settings.stateDir, "alerts"),
    stateDir: settings.stateDir,
    apps: JSON.stringify({
      keycloak: {
        recipe: "keycloak",
        kind: "stateful",
        health: { path: "/realms/master" },
        deployTimeoutSeconds: 300,
        initialVersion: runner.keycloakInitialVersion.value,
      },
      traefik: {
        recipe: "traefik",
        kind: "stateless",
        health: { path: "/ping", baseUrl: `http://127.0.0.1:${warmProxyPort}` },
        env: { WEB_PORT: warmProxyPort },
        deployTimeoutSeconds: 120,
        initialVersion: runner.traefikInitialVersion.value,
      },
    }),
  };
  const missing: Record<string, ConfigValue> = {};
  for (const [key, value] of Object.entries(defaults)) {
    const fullKey = `${CONFIG_NAMESPACE}:${key}`;
    if (!(fullKey in current)) missing[fullKey] = { value };
  }
  const webhookKey = `${CONFIG_NAMESPACE}:alertWebhook`;
  const webhookFile = context.env.WARMSTACK_ALERT_WEBHOOK_URL_FILE;
  // The URL may carry a token: it is read from its file and kept only as an encrypted config value.
  if (webhookFile && !(webhookKey in current)) missing[webhookKey] = { value: await readSecretFile(webhookFile, "WARMSTACK_ALERT_WEBHOOK_URL_FILE"), secret: true };
  return missing;
}

/** The recipes of the warm apps and of the enrolled canonicals, as far as the config parses. */
function configuredRecipes(config: ConfigMap): string[] {
  const parsed = (key: string): Record<string, unknown> => {
    try {
      return (JSON.parse(config[`${CONFIG_NAMESPACE}:${key}`]?.value ?? "{}") as Record<string, unknown>) ?? {};
    } catch {
      return {}; // the program reports malformed config, naming the key
    }
  };
  const appRecipes = Object.values(parsed("apps")).map((app) => (app as { recipe?: unknown } | null)?.recipe);
  const recipes = [...appRecipes, ...Object.keys(parsed("canonicals"))];
  return recipes.filter((recipe): recipe is string => typeof recipe === "string" && /^[a-z][a-z0-9-]*$/.test(recipe));
}
