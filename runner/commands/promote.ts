import { Command } from "commander";
import { z } from "zod";
import { recipeNameSchema } from "../../infra/naming";
import { isVersion } from "../../infra/versions";
import type { RunnerContext } from "../context";
import { defineCommand, option, wholeNumber } from "../options";

/** `warmstack promote`: a newer release becomes an enrolled recipe's known-good (runner/promote.ts). */
export function registerPromote(program: Command, contextOf: () => RunnerContext): void {
  defineCommand(program, contextOf, {
    name: "promote",
    description: "make a newer release the known-good of an enrolled recipe's canonical (an `up` of the warm stack targeted at it)",
    options: {
      recipe: option({ schema: recipeNameSchema, argument: "<recipe>", description: "an enrolled recipe" }),
      version: option({
        schema: z.string().refine(isVersion, { error: "is not a recipe version (X.Y.Z+UPSTREAM, e.g. 1.0.1+1.0)" }),
        argument: "<version>",
        description: "a released version, not older than the current known-good",
      }),
      lockTimeout: wholeNumber({ argument: "<seconds>", description: "how long to queue on the warm stack's lock", min: 1, max: 86_400, fallback: 900 }),
      json: option({ schema: z.boolean().default(false), description: "print a machine-readable result on stdout" }),
    },
    examples: ["warmstack promote --recipe custom-html --version 1.0.1+1.0"],
    action: async (options, context) => {
      const { promote, renderPromote } = await import("../promote");
      const progress = context.progress(options.json);
      const request = { recipe: options.recipe, version: options.version, lockTimeoutSeconds: options.lockTimeout };
      let outcome;
      try {
        outcome = await promote(context, request, progress);
      } catch (error) {
        if (!options.json) throw error;
        const message = error instanceof Error ? error.message : String(error);
        outcome = { ok: false, recipe: request.recipe, version: request.version, from: null, knownGood: null, changed: false, error: message, elapsedMs: progress.elapsedMs() };
      }
      context.write(options.json ? `${JSON.stringify(outcome, null, 2)}\n` : renderPromote(outcome));
      if (!outcome.ok) process.exitCode = 1;
    },
  });
}
