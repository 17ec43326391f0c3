import * as path from "node:path";
import { Stack } from "@pulumi/pulumi/automation";
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
  await applyWarmDefaults(context, stack);
  const config = await stack.getAllConfig();
  const abraDir = config[`${CONFIG_NAMESPACE}:abraDir`]?.value;
  const recipes = configuredRecipes(config);
  // A warm stack that deploys nothing has no Keycloak to canary and no recipe to fetch.
  if (!abraDir || recipes.length === 0) return [];
  const catalogue = await loadCatalogue(context.defaults.catalogue.value);
  await applyCanary(stack, catalogue);
  return syncRecipes(context, catalogue.catalogue, abraDir, recipes, progress);
}

/**
 * The shared Keycloak's canary follows the catalogue: its `canary: true` recipes, run by this very
 * runner's run command. Written on every operation, so a plain `pulumi up` sees the last one's.
 */
async function applyCanary(stack: Stack, loaded: LoadedCatalogue): Promise<void> {
  const key = `${CONFIG_NAMESPACE}:canary`;
  const recipes = Object.entries(loaded.catalogue.recipes).filter(([, entry]) => entry.canary).map(([recipe]) => recipe);
  if (recipes.length === 0) {
    if (key in (await stack.getAllConfig())) await stack.removeConfig(key);
    return;
  }
  const canary = { recipes, runCommand: [process.execPath, path.join(__dirname, "cli.js"), "run"], catalogue: path.resolve(loaded.file) };
  await stack.setConfig(key, { value: JSON.stringify(canary) });
}

async function applyWarmDefaults(context: RunnerContext, stack: Stack): Promise<void> {
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
  const current = await stack.getAllConfig();
  for (const [key, value] of Object.entries(defaults)) {
    const fullKey = `${CONFIG_NAMESPACE}:${key}`;
    if (!(fullKey in current)) await stack.setConfig(fullKey, { value });
  }
  const webhookKey = `${CONFIG_NAMESPACE}:alertWebhook`;
  const webhookFile = context.env.WARMSTACK_ALERT_WEBHOOK_URL_FILE;
  // The URL may carry a token: it is read from its file and kept only as an encrypted config value.
  if (webhookFile && !(webhookKey in current)) await stack.setConfig(webhookKey, { value: await readSecretFile(webhookFile, "WARMSTACK_ALERT_WEBHOOK_URL_FILE"), secret: true });
}

/** The recipes of the warm apps and of the enrolled canonicals, as far as the config parses. */
function configuredRecipes(config: Record<string, { value: string }>): string[] {
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
