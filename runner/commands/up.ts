import { Command } from "commander";
import { Progress } from "../progress";
import { applyWarmDefaults } from "../warm-defaults";
import { runnerSettings, selectStack } from "../workspace";

export function registerUp(program: Command): void {
  program
    .command("up")
    .description("bring the warm stack to its safe target versions (the same as `pulumi up -s warm`)")
    .option("--json", "print a machine-readable summary on stdout")
    .action(async (options: { json?: boolean }) => {
      const progress = new Progress(Boolean(options.json));
      const settings = runnerSettings();
      progress.say(`up warm: backend ${settings.backendUrl}`);
      const stack = await selectStack("warm", settings);
      await applyWarmDefaults(stack, settings);
      const result = await stack.up({ onOutput: progress.engineOutput("warm") });
      const outputs = Object.fromEntries(
        Object.entries(result.outputs).map(([key, output]) => [key, output.secret ? "[secret]" : output.value]),
      );
      const summary = { stack: "warm", result: result.summary.result, changes: result.summary.resourceChanges ?? {}, outputs, elapsedMs: progress.elapsedMs() };
      if (options.json) process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
      else process.stdout.write(`warm stack: ${summary.result} in ${(summary.elapsedMs / 1000).toFixed(1)}s\n`);
    });
}
