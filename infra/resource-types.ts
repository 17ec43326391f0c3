// The type tokens of warmstack's resources, apart from the provider pattern (provider-support.ts):
// the commands that only read state tell resources apart by them without loading the Pulumi SDK.

/** The module of every warmstack resource type: `pulumi-nodejs:dynamic/warmstack:<Type>`. */
export const RESOURCE_MODULE = "warmstack";

/** The type every resource had before it had its own, kept as an alias so no existing one is replaced. */
export const UNTYPED_DYNAMIC_RESOURCE = "pulumi-nodejs:dynamic:Resource";

export type ResourceTypeName = "WarmApp" | "Canonical" | "RunRealm" | "RunApp";

/** The full type token of a resource, as state and `pulumi preview` show it. */
export function resourceType(name: ResourceTypeName): string {
  return `pulumi-nodejs:dynamic/${RESOURCE_MODULE}:${name}`;
}
