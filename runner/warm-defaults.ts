import { existsSync } from "node:fs";
import * as path from "node:path";
import { Stack } from "@pulumi/pulumi/automation";
import { execa } from "execa";
import { CONFIG_NAMESPACE } from "../infra/config";
import { RunnerSettings } from "./workspace";

/**
 * The embedded local default: a warm stack on this machine's swarm — the shared Keycloak behind the
 * bed's proxy and a warm Traefik on the next port — with alerts under the state directory. Only keys
 * the operator has not set are filled, so `pulumi config set` always wins.
 */
export async function applyWarmDefaults(stack: Stack, settings: RunnerSettings, env: NodeJS.ProcessEnv = process.env) {
  const warmProxyPort = env.WARMSTACK_WARM_PROXY_PORT ?? "47081";
  const defaults: Record<string, string> = {
    baseDomain: env.WARMSTACK_BASE_DOMAIN ?? "warm.test",
    abraDir: env.WARMSTACK_ABRA_DIR ?? path.join(settings.stateDir, "abra"),
    proxyUrl: env.WARMSTACK_PROXY_URL ?? "http://127.0.0.1:47080",
    alertDir: path.join(settings.stateDir, "alerts"),
    stateDir: settings.stateDir,
    apps: JSON.stringify({
      keycloak: {
        recipe: "keycloak",
        kind: "stateful",
        health: { path: "/realms/master" },
        deployTimeoutSeconds: 300,
        initialVersion: env.WARMSTACK_KEYCLOAK_INITIAL_VERSION ?? "1.1.0+26.7.3",
      },
      traefik: {
        recipe: "traefik",
        kind: "stateless",
        health: { path: "/ping", baseUrl: `http://127.0.0.1:${warmProxyPort}` },
        env: { WEB_PORT: warmProxyPort },
        deployTimeoutSeconds: 120,
        initialVersion: env.WARMSTACK_TRAEFIK_INITIAL_VERSION ?? "1.0.0+3.6.12",
      },
    }),
  };
  const current = await stack.getAllConfig();
  for (const [key, value] of Object.entries(defaults)) {
    const fullKey = `${CONFIG_NAMESPACE}:${key}`;
    if (!(fullKey in current)) await stack.setConfig(fullKey, { value });
  }
  const config = await stack.getAllConfig();
  await ensureRecipeCheckouts(config, env);
}

/**
 * abra keeps recipe checkouts under $ABRA_DIR/recipes; on the test bed they are cloned from the
 * bed's fixture repositories (WARMSTACK_RECIPE_SOURCE), elsewhere `abra recipe fetch` made them.
 */
async function ensureRecipeCheckouts(config: Record<string, { value: string }>, env: NodeJS.ProcessEnv) {
  const abraDir = config[`${CONFIG_NAMESPACE}:abraDir`]?.value;
  if (!abraDir) return;
  const source = env.WARMSTACK_RECIPE_SOURCE ?? "/var/cache/warmstack-bed/recipes";
  for (const recipe of configuredRecipes(config)) {
    const checkout = path.join(abraDir, "recipes", recipe);
    if (existsSync(checkout) || !existsSync(path.join(source, recipe))) continue;
    await execa("git", ["clone", "-q", path.join(source, recipe), checkout]);
  }
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
