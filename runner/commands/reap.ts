import { Command } from "commander";
import { z } from "zod";
import { absolutePathSchema, loopbackUrlSchema } from "../../infra/config";
import { recipeNameSchema } from "../../infra/naming";
import type { RunnerContext } from "../context";
import { defineCommand, option, wholeNumber } from "../options";
import { runOptions } from "../run-options";

/** `warmstack reap`: remove what dead runs left (runner/reap.ts). */
export function registerReap(program: Command, contextOf: () => RunnerContext): void {
  defineCommand(program, contextOf, {
    name: "reap",
    description: "Remove run stacks, realms, run apps and registrations that belong to no live run",
    options: {
      dryRun: option({ schema: z.boolean().default(false), description: "list what would be removed, remove nothing" }),
      json: option({ schema: z.boolean().default(false), description: "print the report as JSON" }),
      recipe: option({ schema: recipeNameSchema.optional(), argument: "<recipe>", description: "only what runs of this recipe left" }),
      keycloakDomain: { ...runOptions.keycloakDomain, description: "the shared Keycloak whose realms to judge" },
      abraDir: option({
        schema: absolutePathSchema,
        argument: "<dir>",
        description: "an ABRA_DIR whose run apps to judge, besides those the run stacks' configs name",
        defaultText: "WARMSTACK_ABRA_DIR or <stateDir>/abra",
        fallback: (context) => context.defaults.abraDir,
      }),
      proxyUrl: option({
        schema: loopbackUrlSchema,
        argument: "<url>",
        description: "the proxy on loopback that reaches the apps and Keycloak",
        defaultText: "WARMSTACK_PROXY_URL",
        fallback: (context) => context.defaults.proxyUrl,
      }),
      stepTimeoutSeconds: wholeNumber({ argument: "<n>", description: "deadline of each destroy, refresh and undeploy", min: 10, max: 3600, fallback: 600 }),
      keepResultsDays: wholeNumber({ argument: "<n>", description: "keep finished runs' results (under <stateDir>/results) this many days", min: 1, max: 3650, fallback: 30 }),
    },
    examples: ["warmstack reap --dry-run", "warmstack reap --recipe sso-app --json"],
    action: async (options, context) => {
      const [{ reap }, { warmContext, warmKeycloakPassword }] = await Promise.all([import("../reap"), import("../warm-context")]);
      // Whatever the operator did not name is the warm stack's, as a run takes it.
      const warm = await warmContext(context);
      const request = { ...options, keycloakDomain: options.keycloakDomain ?? warm.keycloakDomain, keycloakAdminPassword: warmKeycloakPassword(warm, context.env) };
      const report = await reap(context, request, options.json ? () => undefined : (line) => context.write(`${line}\n`));
      if (options.json) context.write(`${JSON.stringify(report, null, 2)}\n`);
      if (report.failed.length > 0) process.exitCode = 1;
    },
  });
}
