import { Command } from "commander";
import { z } from "zod";
import type { RunnerContext } from "../context";
import { UsageError } from "../context";
import { defineCommand, option } from "../options";
import { runAndReport, runOptions, runRequestOf } from "../run-options";
import { parseTrigger, TRIGGER_FORMS } from "../trigger";

/**
 * `warmstack trigger --comment TEXT`: a PR comment starts a run only when it is exactly one of the
 * accepted forms; anything else is refused with the reason, and nothing runs.
 */
export function registerTrigger(program: Command, contextOf: () => RunnerContext): void {
  defineCommand(program, contextOf, {
    name: "trigger",
    description: `start the run a PR comment asks for: exactly \`${TRIGGER_FORMS.cold}\` (cold) or \`${TRIGGER_FORMS.quick}\``,
    options: { comment: option({ schema: z.string(), argument: "<text>", description: "the PR comment, as written" }), ...runOptions },
    examples: [`warmstack trigger --comment '${TRIGGER_FORMS.quick}' --recipe sso-app --ref 3f2c1ab --pr 42`],
    action: async (options, context) => {
      const decision = parseTrigger(options.comment);
      if (!decision.accepted) throw new UsageError(`--comment refused: ${decision.reason}`);
      await runAndReport(context, runRequestOf(options, decision.mode === "quick"), options.json);
    },
  });
}
