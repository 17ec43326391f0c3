import { Command } from "commander";
import { parseTrigger, TRIGGER_FORMS } from "../trigger";
import { addRunOptions, RunCliOptions, runFromCli } from "./run";

/**
 * `warmstack trigger --comment TEXT`: a PR comment starts a run only when it is exactly one of the
 * accepted forms; anything else is refused with the reason, and nothing runs.
 */
export class TriggerRefused extends Error {
  constructor(reason: string) {
    super(`--comment refused: ${reason}`);
    this.name = "TriggerRefused";
  }
}

export function registerTrigger(program: Command): void {
  addRunOptions(
    program
      .command("trigger")
      .description(`start the run a PR comment asks for: exactly \`${TRIGGER_FORMS.cold}\` (cold) or \`${TRIGGER_FORMS.quick}\``)
      .requiredOption("--comment <text>", "the PR comment, as written"),
  ).action(async (options: RunCliOptions & { comment: string }) => {
    const decision = parseTrigger(options.comment);
    if (!decision.accepted) throw new TriggerRefused(decision.reason);
    await runFromCli(options, decision.mode === "quick");
  });
}
