import { Command } from "commander";
import type { RunnerContext } from "../context";
import { defineWarmCommand } from "../warm-options";

/** `warmstack preview`: the warm stack's gated upgrade plan, deploying nothing. */
export function registerPreview(program: Command, contextOf: () => RunnerContext): void {
  defineWarmCommand(program, contextOf, "preview", {
    description: "show the warm stack's gated upgrade plan, and what is held and why (`pulumi preview -s warm`)",
    retry: "plan as if the failed upgrades (and failed canaries) of these warm apps were to be tried again",
    examples: ["warmstack preview", "warmstack preview --json | jq .holds"],
  });
}
