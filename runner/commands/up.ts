import { Command } from "commander";
import type { RunnerContext } from "../context";
import { defineWarmCommand } from "../warm-options";

/** `warmstack up`: the same as `pulumi up -s warm`, with the gate's holds and rollbacks reported. */
export function registerUp(program: Command, contextOf: () => RunnerContext): void {
  defineWarmCommand(program, contextOf, "up", {
    description: "move the warm stack's apps to their newest safe versions (the same as `pulumi up -s warm`)",
    retry: "try again an upgrade of these warm apps (keycloak, traefik) that failed and was rolled back, or whose canary failed",
    examples: ["warmstack up", "warmstack up --retry keycloak --json"],
  });
}
