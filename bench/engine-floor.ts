// The engine's floor for a stack of warmstack's kind: an inline program of one dynamic resource that
// does nothing, on the same backend. What Pulumi costs before warmstack does anything: the CLI, the
// program, and one dynamic-provider process (each of warmstack's resources is a dynamic resource).
import { randomBytes } from "node:crypto";
import * as pulumi from "@pulumi/pulumi";
import { LocalWorkspace, Stack } from "@pulumi/pulumi/automation";

export interface EngineFloor {
  stack: Stack;
  /** Removes the stack, whatever it holds. */
  dispose(): Promise<void>;
}

export async function noopDynamicStack(envVars: Record<string, string>): Promise<EngineFloor> {
  const noop: pulumi.dynamic.ResourceProvider = { create: async () => ({ id: "noop", outs: {} }) };
  class Noop extends pulumi.dynamic.Resource {
    constructor(name: string) {
      super(noop, name, {});
    }
  }
  const stackName = `noop-${randomBytes(3).toString("hex")}`;
  const stack = await LocalWorkspace.createOrSelectStack(
    {
      projectName: "warmstack-bench-floor",
      stackName,
      program: async () => {
        new Noop("noop");
      },
    },
    { envVars },
  );
  return { stack, dispose: () => stack.workspace.removeStack(stackName, { force: true }) };
}
