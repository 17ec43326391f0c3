import * as pulumi from "@pulumi/pulumi";
import { namespacedConfig, parseConfig, warmConfigSchema } from "../infra/config";

/**
 * The warm stack: the live-warm shared apps and the canonicals. Config is validated before any
 * resource is registered, so bad config changes nothing.
 */
export async function warmProgram(): Promise<Record<string, unknown>> {
  const config = parseConfig(warmConfigSchema, namespacedConfig(pulumi.runtime.allConfig()), "warm stack");
  return {
    baseDomain: config.baseDomain,
    server: config.server,
    deployer: config.deployer,
  };
}
