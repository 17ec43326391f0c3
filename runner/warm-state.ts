import { Stack } from "@pulumi/pulumi/automation";
import { namespacedConfig, parseConfig, WarmConfig, warmConfigSchema } from "../infra/config";
import { canonicalResourceName } from "../stacks/canonicals";

/** Reading the warm stack's config and state, for the commands that report on it or change it. */

const DYNAMIC_TYPE = "pulumi-nodejs:dynamic:Resource";

/** The warm stack's config as the program sees it, validated the same way. */
export async function warmConfig(stack: Stack): Promise<WarmConfig> {
  const all = await stack.getAllConfig();
  const flat = Object.fromEntries(Object.entries(all).map(([key, entry]) => [key, entry.value]));
  return parseConfig(warmConfigSchema, namespacedConfig(flat), "warm stack");
}

export function canonicalUrn(stack: Stack, recipe: string): string {
  return `urn:pulumi:${stack.name}::warmstack::${DYNAMIC_TYPE}::${canonicalResourceName(recipe)}`;
}

export interface StateResource {
  urn: string;
  /** The resource's name, the last part of its URN. */
  name: string;
  /** Secret outputs stay encrypted: only plain fields are read from here. */
  outputs: Record<string, unknown>;
}

/** The dynamic resources in the stack's state (WarmApps and Canonicals), with their last outputs. */
export async function warmResources(stack: Stack): Promise<StateResource[]> {
  const exported = (await stack.exportStack()).deployment as { resources?: { urn: string; type: string; outputs?: Record<string, unknown> }[] } | undefined;
  return (exported?.resources ?? [])
    .filter((resource) => resource.type === DYNAMIC_TYPE)
    .map((resource) => ({ urn: resource.urn, name: resource.urn.slice(resource.urn.lastIndexOf("::") + 2), outputs: resource.outputs ?? {} }));
}
