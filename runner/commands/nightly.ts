import { Command } from "commander";
import { z } from "zod";
import type { RunnerContext } from "../context";
import { defineCommand, option, wholeNumber } from "../options";
import { runOptions } from "../run-options";

/** `warmstack nightly`: the scheduled job (runner/nightly.ts). */
export function registerNightly(program: Command, contextOf: () => RunnerContext): void {
  defineCommand(program, contextOf, {
    name: "nightly",
    description: "up the warm stack, then a cold run of each enrolled recipe on its latest release (each green one promotes); skipped while a run is in flight",
    options: {
      maxTests: wholeNumber({ argument: "<n>", description: "at most this many cold runs tonight", min: 0, max: 1000, fallback: 10 }),
      catalogue: runOptions.catalogue,
      keycloakDomain: runOptions.keycloakDomain,
      json: option({ schema: z.boolean().default(false), description: "print a machine-readable report on stdout" }),
    },
    examples: ["warmstack nightly", "warmstack nightly --max-tests 3 --json"],
    action: async (options, context) => {
      const { nightly, renderNightly } = await import("../nightly");
      const report = await nightly(context, options, context.progress(options.json));
      context.write(options.json ? `${JSON.stringify(report, null, 2)}\n` : renderNightly(report));
      if (!report.ok) process.exitCode = 1;
    },
  });
}
