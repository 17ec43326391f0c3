import { Command } from "commander";
import { renderWarmSummary, runWarm } from "../warm-run";

export function registerPreview(program: Command): void {
  program
    .command("preview")
    .description("show the warm stack's gated upgrade plan, and what is held and why (`pulumi preview -s warm`)")
    .option("--json", "print a machine-readable summary on stdout")
    .action(async (options: { json?: boolean }) => {
      const summary = await runWarm("preview", Boolean(options.json));
      process.stdout.write(options.json ? `${JSON.stringify(summary, null, 2)}\n` : renderWarmSummary(summary));
      if (!summary.ok) process.exitCode = 1;
    });
}
