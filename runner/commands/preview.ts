import { Command } from "commander";
import { warmAction } from "../warm-run";

export function registerPreview(program: Command): void {
  program
    .command("preview")
    .description("show the warm stack's gated upgrade plan, and what is held and why (`pulumi preview -s warm`)")
    .option("--json", "print a machine-readable summary on stdout")
    .option("--retry <apps...>", "plan as if the failed upgrades of these warm apps were to be tried again")
    .action(warmAction("preview"));
}
