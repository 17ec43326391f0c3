import { Command } from "commander";
import { Progress } from "../progress";
import { applyWarmDefaults } from "../warm-defaults";
import { runnerSettings, selectStack } from "../workspace";

export function registerPreview(program: Command): void {
  program
    .command("preview")
    .description("show the warm stack's plan without changing anything (the same as `pulumi preview -s warm`)")
    .option("--json", "print a machine-readable summary on stdout")
    .action(async (options: { json?: boolean }) => {
      const progress = new Progress(Boolean(options.json));
      const settings = runnerSettings();
      const stack = await selectStack("warm", settings);
      await applyWarmDefaults(stack, settings);
      const result = await stack.preview({ onOutput: progress.engineOutput("warm") });
      const summary = { stack: "warm", changes: result.changeSummary, elapsedMs: progress.elapsedMs() };
      if (options.json) process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
      else process.stdout.write(`warm stack plan: ${JSON.stringify(result.changeSummary)}\n`);
    });
}
