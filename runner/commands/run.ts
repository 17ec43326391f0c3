import { Command } from "commander";
import { z } from "zod";
import type { RunnerContext } from "../context";
import { defineCommand, option } from "../options";
import { runAndReport, runOptions, runRequestOf } from "../run-options";

/** `warmstack run`: one CI run of a recipe in a run stack of its own (runner/run.ts). */
export function registerRun(program: Command, contextOf: () => RunnerContext): void {
  defineCommand(program, contextOf, {
    name: "run",
    description: "test a recipe in a run stack of its own: up, the recipe's tests, destroy (always); exit 0 only when the tests passed",
    options: {
      ...runOptions,
      quick: option({ schema: z.boolean().default(false), description: "borrow the recipe's canonical (lower confidence, never gates a merge, never promotes)" }),
      canary: option({ schema: z.boolean().default(false), description: "a run of the shared Keycloak's canary, which the warm stack starts itself: it never promotes" }),
    },
    examples: ["warmstack run --recipe custom-html", "warmstack run --recipe sso-app --ref 3f2c1ab --pr 42 --quick", "warmstack run --recipe custom-html --json > results.json"],
    action: (options, context) => runAndReport(context, { ...runRequestOf(options, options.quick), canary: options.canary }, options.json),
  });
}
