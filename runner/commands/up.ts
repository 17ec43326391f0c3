import { Command } from "commander";
import { warmAction } from "../warm-run";

export function registerUp(program: Command): void {
  program
    .command("up")
    .description("move the warm stack's apps to their newest safe versions (the same as `pulumi up -s warm`)")
    .option("--json", "print a machine-readable summary on stdout")
    .option("--retry <apps...>", "try again an upgrade of these warm apps (keycloak, traefik) that failed and was rolled back")
    .action(warmAction("up"));
}
