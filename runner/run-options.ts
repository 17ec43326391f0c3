import * as path from "node:path";
import { z } from "zod";
import { recipeSourceSchema } from "../infra/config";
import { domainSchema, recipeNameSchema } from "../infra/naming";
import type { RunnerContext } from "./context";
import { option, OptionValues, wholeNumber } from "./options";
import type { RunRequest } from "./run-plan";

/** The options of a run, shared by `warmstack run` and `warmstack trigger`. */
export const runOptions = {
  recipe: option({ schema: recipeNameSchema, argument: "<recipe>", description: "the recipe to test (an entry of the recipe catalogue)" }),
  ref: option({
    schema: z.string().regex(/^([0-9a-f]{7,40})?$/, "must be a commit hash (7–40 lowercase hex digits); leave it out for the latest release").default(""),
    argument: "<sha>",
    description: "the PR head commit of the recipe",
    defaultText: "its latest release",
  }),
  pr: option({
    schema: z.string().regex(/^[1-9][0-9]{0,9}$/, "must be a positive whole number").transform(Number).optional(),
    argument: "<n>",
    description: "the pull request: its head is fetched from the recipe remote's refs/pull/<n>/head",
  }),
  repo: option({
    schema: recipeSourceSchema.optional(),
    argument: "<url>",
    description: "the PR's head repository, for a PR from a fork",
    defaultText: "the recipe's remote",
  }),
  json: option({ schema: z.boolean().default(false), description: "print results.json on stdout instead of the Markdown summary" }),
  catalogue: option({
    schema: z.string().min(1),
    argument: "<file>",
    description: "the recipe catalogue",
    defaultText: "WARMSTACK_CATALOGUE or catalogue.yaml in the project",
    fallback: (context) => context.defaults.catalogue,
  }),
  keycloakDomain: option({
    schema: domainSchema.optional(),
    argument: "<domain>",
    description: "the shared Keycloak",
    defaultText: "WARMSTACK_KEYCLOAK_DOMAIN or the warm stack's",
    fallback: (context) => context.defaults.keycloakDomain,
  }),
  leaseTimeout: wholeNumber({ argument: "<seconds>", description: "how long a quick run waits for the canonical before it runs cold", min: 0, max: 86_400, fallback: 600 }),
  resultsDir: option({
    schema: z.string().refine((value) => path.isAbsolute(value), { error: "must be an absolute path" }).optional(),
    argument: "<dir>",
    description: "where results.json and summary.md go",
    defaultText: "<stateDir>/results/<run stack>",
  }),
};

export function runRequestOf(options: OptionValues<typeof runOptions>, quick: boolean): RunRequest {
  return {
    recipe: options.recipe,
    ref: options.ref,
    pr: options.pr,
    repo: options.repo,
    quick,
    catalogue: options.catalogue,
    keycloakDomain: options.keycloakDomain,
    leaseTimeoutSeconds: options.leaseTimeout,
    resultsDir: options.resultsDir,
  };
}

function exitCodeOf(outcome: string, received?: NodeJS.Signals): number {
  if (outcome === "passed") return 0;
  if (received === "SIGINT") return 130;
  if (received === "SIGTERM") return 143;
  return 1;
}

/** Runs, prints the summary (or results.json with --json), and sets the exit code: 0 only when the tests passed. */
export async function runAndReport(context: RunnerContext, request: RunRequest, json: boolean): Promise<void> {
  const [{ runRecipe }, { renderMarkdown }] = await Promise.all([import("./run"), import("./results")]);
  const report = await runRecipe(context, request, context.progress(json));
  context.write(json ? `${JSON.stringify({ ...report.results, resultsFile: report.resultsFile, summaryFile: report.summaryFile }, null, 2)}\n` : renderMarkdown(report.results));
  process.exitCode = exitCodeOf(report.results.outcome, report.received);
}
