import { Command } from "commander";
import { z } from "zod";
import { warmRetrySchema } from "../infra/config";
import type { RunnerContext } from "./context";
import { defineCommand, option, wholeNumber } from "./options";

/** `warmstack preview` and `warmstack up`: the same options, a summary as text or JSON, exit 1 when it failed. */
export function defineWarmCommand(program: Command, contextOf: () => RunnerContext, operation: "preview" | "up", text: { description: string; retry: string; examples: string[] }): Command {
  return defineCommand(program, contextOf, {
    name: operation,
    description: text.description,
    options: {
      json: option({ schema: z.boolean().default(false), description: "print a machine-readable summary on stdout" }),
      retry: option({ schema: warmRetrySchema.default([]), argument: "<apps...>", description: text.retry }),
      lockTimeout: wholeNumber({
        argument: "<seconds>",
        description: "how long to wait for another operation's lock on the warm stack (a dead one's is cleared at once)",
        min: 0,
        max: 86_400,
        fallback: 900,
      }),
    },
    examples: text.examples,
    action: async (options, context) => {
      const { renderWarmSummary, runWarm } = await import("./warm-run");
      const summary = await runWarm(context, operation, options.json, { retry: options.retry, lockTimeoutSeconds: options.lockTimeout });
      context.write(options.json ? `${JSON.stringify(summary, null, 2)}\n` : renderWarmSummary(summary));
      if (!summary.ok) process.exitCode = 1;
    },
  });
}
