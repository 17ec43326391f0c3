import { Stack } from "@pulumi/pulumi/automation";
import { namespacedConfig, parseConfig, WarmConfig, warmConfigSchema } from "../infra/config";
import { resourceType, ResourceTypeName, UNTYPED_DYNAMIC_RESOURCE } from "../infra/resource-types";

/** Reading the warm stack's config and state, for the commands that report on it or change it. */

/** The warm stack's config as the program sees it, validated the same way. */
export async function warmConfig(stack: Stack): Promise<WarmConfig> {
  const all = await stack.getAllConfig();
  const flat = Object.fromEntries(Object.entries(all).map(([key, entry]) => [key, entry.value]));
  return parseConfig(warmConfigSchema, namespacedConfig(flat), "warm stack");
}

/** A canonical's URN, named after its recipe. */
export function canonicalUrn(stack: Stack, recipe: string): string {
  return `urn:pulumi:${stack.name}::warmstack::${resourceType("Canonical")}::${recipe}`;
}

export interface StateResource {
  urn: string;
  type: Extract<ResourceTypeName, "WarmApp" | "Canonical">;
  /** The resource's name: the warm app's key, or the canonical's recipe. */
  name: string;
  /** Secret outputs stay encrypted: only plain fields are read from here. */
  outputs: Record<string, unknown>;
}

const UNTYPED_CANONICAL_PREFIX = "canonical-";

/**
 * A state resource as one of the warm stack's kinds. A state not yet moved to the typed resources by
 * an up of this warmstack holds them all as untyped dynamic resources, the canonicals named
 * `canonical-<recipe>`: they are read as what they will become.
 */
export function stateResourceOf(resource: { urn: string; type: string; outputs?: Record<string, unknown> }): StateResource | undefined {
  const name = resource.urn.slice(resource.urn.lastIndexOf("::") + 2);
  const outputs = resource.outputs ?? {};
  for (const type of ["WarmApp", "Canonical"] as const) {
    if (resource.type === resourceType(type)) return { urn: resource.urn, type, name, outputs };
  }
  if (resource.type !== UNTYPED_DYNAMIC_RESOURCE) return undefined;
  return name.startsWith(UNTYPED_CANONICAL_PREFIX)
    ? { urn: resource.urn, type: "Canonical", name: name.slice(UNTYPED_CANONICAL_PREFIX.length), outputs }
    : { urn: resource.urn, type: "WarmApp", name, outputs };
}

export interface WarmState {
  resources: StateResource[];
  /** The program's own outputs (plan, holds, deployed), plain fields only, as the last operation left them. */
  stackOutputs: Record<string, unknown>;
}

const ROOT_STACK_TYPE = "pulumi:pulumi:Stack";

/** The warm stack's WarmApps, Canonicals and program outputs, from one export of its state. */
export async function warmState(stack: Pick<Stack, "exportStack">): Promise<WarmState> {
  const exported = (await stack.exportStack()).deployment as { resources?: { urn: string; type: string; outputs?: Record<string, unknown> }[] } | undefined;
  const all = exported?.resources ?? [];
  return {
    resources: all.map(stateResourceOf).filter((resource): resource is StateResource => resource !== undefined),
    stackOutputs: all.find((resource) => resource.type === ROOT_STACK_TYPE)?.outputs ?? {},
  };
}

/** The warm stack's WarmApps and Canonicals in its state, with their last outputs. */
export async function warmResources(stack: Stack): Promise<StateResource[]> {
  return (await warmState(stack)).resources;
}
