import { Command } from "commander";
import { renderWarmSummary, runWarm } from "../warm-run";

export function registerUp(program: Command): void {
  program
    .command("up")
    .description("move the warm stack's apps to their newest safe versions (the same as `pulumi up -s warm`)")
    .option("--json", "print a machine-readable summary on stdout")
    .action(async (options: { json?: boolean }) => {
      const summary = await runWarm("up", Boolean(options.json));
      process.stdout.write(options.json ? `${JSON.stringify(summary, null, 2)}\n` : renderWarmSummary(summary));
      if (!summary.ok) process.exitCode = 1;
    });
}
