import { Command } from "commander";
import { z } from "zod";
import { absolutePathSchema } from "../../infra/config";
import type { RunnerContext } from "../context";
import { defineCommand, option, wholeNumber } from "../options";
import { runOptions } from "../run-options";

const listenSchema = z
  .string()
  .regex(/^(\[[0-9a-f:]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}$/, "must be HOST:PORT, e.g. 127.0.0.1:47090")
  .transform((value) => ({ host: value.slice(0, value.lastIndexOf(":")).replace(/^\[|\]$/g, ""), port: Number(value.slice(value.lastIndexOf(":") + 1)) }))
  .refine((listen) => listen.port > 0 && listen.port < 65536, "the port must be 1–65535");
const httpUrl = z.url({ protocol: /^https?$/, message: "must be an http(s) URL" });

/** `warmstack serve`: the forge bridge (runner/bridge/). */
export function registerServe(program: Command, contextOf: () => RunnerContext): void {
  defineCommand(program, contextOf, {
    name: "serve",
    description: "the forge bridge: a !testme on a Gitea/Forgejo pull request starts the run, and the result comes back to the PR",
    options: {
      listen: option({ schema: listenSchema, argument: "<host:port>", description: "where the bridge listens", defaultText: "WARMSTACK_BRIDGE_LISTEN or 127.0.0.1:47090", fallback: (context) => sourcedEnv(context, "WARMSTACK_BRIDGE_LISTEN", "127.0.0.1:47090") }),
      forgeUrl: option({ schema: httpUrl, argument: "<url>", description: "the forge's base URL", defaultText: "WARMSTACK_FORGE_URL", fallback: (context) => sourcedEnv(context, "WARMSTACK_FORGE_URL") }),
      forgeTokenFile: option({ schema: absolutePathSchema, argument: "<file>", description: "a file holding the forge token (its user comments and sets statuses)", defaultText: "WARMSTACK_FORGE_TOKEN_FILE", fallback: (context) => sourcedEnv(context, "WARMSTACK_FORGE_TOKEN_FILE") }),
      webhookSecretFile: option({ schema: absolutePathSchema, argument: "<file>", description: "a file holding the webhook's secret", defaultText: "WARMSTACK_WEBHOOK_SECRET_FILE", fallback: (context) => sourcedEnv(context, "WARMSTACK_WEBHOOK_SECRET_FILE") }),
      catalogue: runOptions.catalogue,
      maxConcurrent: wholeNumber({ argument: "<n>", description: "at most this many runs at once", min: 1, max: 64, fallback: 2 }),
      publicUrl: option({ schema: httpUrl.optional(), argument: "<url>", description: "where the bridge is reached from outside, for the statuses' links to /runs", defaultText: "no links" }),
    },
    examples: [
      "warmstack serve --forge-url https://git.example.org --forge-token-file /run/secrets/forge-token --webhook-secret-file /run/secrets/webhook-secret",
      "WARMSTACK_FORGE_URL=http://127.0.0.1:3000 warmstack serve --listen 127.0.0.1:47090",
    ],
    action: async (options, context, sources) => {
      const { serve } = await import("../bridge/serve");
      await serve(context, {
        ...options.listen,
        forgeUrl: options.forgeUrl,
        forgeTokenFile: { value: options.forgeTokenFile, from: sources.forgeTokenFile },
        webhookSecretFile: { value: options.webhookSecretFile, from: sources.webhookSecretFile },
        catalogue: options.catalogue,
        maxConcurrent: options.maxConcurrent,
        publicUrl: options.publicUrl,
      });
    },
  });
}

function sourcedEnv(context: RunnerContext, variable: string, fallback?: string) {
  const given = context.env[variable];
  return given ? { value: given, from: variable } : fallback;
}
