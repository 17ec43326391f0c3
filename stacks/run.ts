import * as pulumi from "@pulumi/pulumi";
import { namespacedConfig, parseConfig, runConfigSchema } from "../infra/config";
import { parseRunStackName } from "../infra/naming";

/** A run stack: what one CI run of one recipe borrows or creates, all of it removed on destroy. */
export async function runProgram(): Promise<Record<string, unknown>> {
  const stack = pulumi.getStack();
  const config = parseConfig(runConfigSchema, namespacedConfig(pulumi.runtime.allConfig()), `run stack ${stack}`);
  const named = parseRunStackName(stack);
  if (!named || named.recipe !== config.recipe || named.hex !== config.hex) {
    throw new Error(`run stack ${stack}: its name must be run-${config.recipe}-${config.hex} (warmstack:recipe and warmstack:hex)`);
  }
  return { recipe: config.recipe, mode: config.mode, ref: config.ref || "latest" };
}
