import * as path from "node:path";
import { Stack } from "@pulumi/pulumi/automation";
import { CONFIG_NAMESPACE } from "../infra/config";
import { RunnerSettings } from "./workspace";

/**
 * The embedded local default: a warm stack on this machine's swarm and the bed's proxy. Only keys
 * the operator has not set are filled, so `pulumi config set` always wins.
 */
export async function applyWarmDefaults(stack: Stack, settings: RunnerSettings, env: NodeJS.ProcessEnv = process.env) {
  const defaults: Record<string, string> = {
    baseDomain: env.WARMSTACK_BASE_DOMAIN ?? "warm.test",
    abraDir: env.WARMSTACK_ABRA_DIR ?? path.join(settings.stateDir, "abra"),
    proxyUrl: env.WARMSTACK_PROXY_URL ?? "http://127.0.0.1:47080",
  };
  const current = await stack.getAllConfig();
  for (const [key, value] of Object.entries(defaults)) {
    const fullKey = `${CONFIG_NAMESPACE}:${key}`;
    if (!(fullKey in current)) await stack.setConfig(fullKey, { value });
  }
}
