import * as pulumi from "@pulumi/pulumi";
import { RESOURCE_MODULE, ResourceTypeName, UNTYPED_DYNAMIC_RESOURCE } from "./resource-types";

/**
 * What every dynamic resource of warmstack shares: its type token (resource-types.ts), the alias that moves state
 * written before resources had types of their own, the args derived from its Inputs, and the one
 * provider pattern (docs/design.md, "Resources and the provider pattern").
 */

/** A resource's constructor args: each field of its Inputs, which may also arrive as an Output. */
export type ResourceArgs<Inputs> = { [K in keyof Inputs]: pulumi.Input<Inputs[K]> };

/**
 * Options with the alias from the untyped type (and, for resources that were named differently then,
 * from their old name): `up` then moves the state in place instead of replacing the thing.
 */
function withUntypedAlias(opts: pulumi.CustomResourceOptions | undefined, untypedName?: string): pulumi.CustomResourceOptions {
  const alias = untypedName === undefined ? { type: UNTYPED_DYNAMIC_RESOURCE } : { type: UNTYPED_DYNAMIC_RESOURCE, name: untypedName };
  return { ...opts, aliases: [...(opts?.aliases ?? []), alias] };
}

type RequiredSteps<Type extends string> = Record<`check${Type}` | `create${Type}` | `delete${Type}`, (...args: never[]) => unknown>;

/**
 * The provider of a resource whose steps live in `infra/<moduleFile>.ts`, exported under the names
 * `check<Type>`, `diff<Type>` (or the one given), `create<Type>`, `update<Type>`, `delete<Type>` and
 * `read<Type>` (what `pulumi refresh` asks: the thing as the live system has it).
 * Pulumi stores a provider's code in state and runs the stored code for deletes, possibly under a
 * later warmstack: so the methods hold nothing but the module's file name and the step names, and
 * load the module at run time (a require inside a method is stored verbatim and resolved where it
 * runs, so a fix reaches old resources). The dynamic-provider process runs in the directory of the
 * program's main: dist/stacks with Pulumi.yaml's main, the project root for an inline program whose
 * main is the project. A module without an update step is never updated in place (its diff replaces).
 */
export function lazyProvider<Module extends RequiredSteps<Type>, Type extends ResourceTypeName>(
  moduleFile: string,
  type: Type,
  overrides: { diff?: keyof Module & string } = {},
): pulumi.dynamic.ResourceProvider {
  const load = (): Record<string, ((...args: unknown[]) => never) | undefined> => {
    const path = require("node:path");
    const besideStacks = path.resolve("..", "infra", `${moduleFile}.js`);
    return require(require("node:fs").existsSync(besideStacks) ? besideStacks : path.resolve("dist", "infra", `${moduleFile}.js`));
  };
  const step = (name: string) => {
    const found = load()[name];
    if (typeof found !== "function") throw new Error(`infra/${moduleFile}.js has no step ${name}`);
    return found;
  };
  const diff = overrides.diff ?? `diff${type}`;
  return {
    check: async (_olds, news) => step(`check${type}`)(news),
    diff: async (_id, olds, news) => step(diff)(olds, news),
    create: async (inputs) => step(`create${type}`)(inputs),
    update: async (_id, olds, news) => step(`update${type}`)(olds, news),
    delete: async (_id, props) => step(`delete${type}`)(props),
    // A resource without a read step is taken as its state says (a refresh changes nothing).
    read: async (id, props) => (typeof load()[`read${type}`] === "function" ? step(`read${type}`)(id, props) : { id, props }),
  };
}

/**
 * What every warmstack resource shares: its own type `pulumi-nodejs:dynamic/warmstack:<Type>`, the
 * alias from the untyped type it had before, its outputs registered as unknown until the provider
 * sets them, and its secret outputs.
 */
export abstract class TypedResource extends pulumi.dynamic.Resource {
  protected constructor(
    provider: pulumi.dynamic.ResourceProvider,
    type: ResourceTypeName,
    name: string,
    args: object,
    shape: { outputs: readonly string[]; secretOutputs?: string[]; untypedName?: string },
    opts?: pulumi.CustomResourceOptions,
  ) {
    const props = { ...args, ...Object.fromEntries(shape.outputs.map((output) => [output, undefined])) };
    const options = { ...withUntypedAlias(opts, shape.untypedName), additionalSecretOutputs: [...(opts?.additionalSecretOutputs ?? []), ...(shape.secretOutputs ?? [])] };
    super(provider, name, props, options, RESOURCE_MODULE, type);
  }
}

/** Dynamic-provider outputs without undefined values: the engine's struct encoding refuses them. */
export function withoutUndefined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, entry]) => entry !== undefined)) as T;
}

/** Collects a resource's input check failures, each naming its property, instead of failing on the first. */
export function inputChecker() {
  const failures: pulumi.dynamic.CheckFailure[] = [];
  const check = (property: string, test: () => unknown) => {
    try {
      test();
    } catch (error) {
      failures.push({ property, reason: (error as Error).message });
    }
  };
  return { check, failures };
}
