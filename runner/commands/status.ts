import { Command } from "commander";
import { z } from "zod";
import type { RunnerContext } from "../context";
import { defineCommand, option } from "../options";

/** `warmstack status`: the warm apps (looked at live), the canonicals, holds and recent alerts (runner/status.ts). */
export function registerStatus(program: Command, contextOf: () => RunnerContext): void {
  defineCommand(program, contextOf, {
    name: "status",
    description: "show the warm apps, the canonicals (known-good, snapshot, idle or leased), holds and recent alerts",
    options: { json: option({ schema: z.boolean().default(false), description: "print a machine-readable report on stdout" }) },
    examples: ["warmstack status", "warmstack status --json | jq .canonicals"],
    action: async (options, context) => {
      const { renderStatus, warmStatus } = await import("../status");
      const report = await warmStatus(context);
      context.write(options.json ? `${JSON.stringify(report, null, 2)}\n` : renderStatus(report));
    },
  });
}
