// results.json is what a CI job, a bot and a human read after a run, and the Markdown summary is what
// a PR author sees. Both come from one schema, so the summary can show nothing the schema does not
// hold: no secret can reach a PR comment through it (invariant 7).
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import * as path from "node:path";
import { z } from "zod";
import { parseRunStackName, recipeNameSchema, runStackNameSchema } from "../infra/naming";
import { isVersion } from "../infra/versions";
import type { LaneSample } from "./lane-advice";

export const RESULTS_SCHEMA_ID = "warmstack/results@1";

const COMMIT = /^[0-9a-f]{7,40}$/;
// Step names are the runner's own words and appear unescaped in the steps table and code spans.
const STEP_NAME = /^[a-z][a-z0-9-]{0,31}$/;

const isoTime = z.iso.datetime({ offset: true, message: "must be an ISO 8601 date-time" });
const durationMs = z.number().int().nonnegative();
const mode = z.enum(["cold", "quick"]);
const version = z.string().refine(isVersion, { message: "must be a recipe version X.Y.Z+UPSTREAM" });
const deployedRef = z
  .string()
  .refine((v) => isVersion(v) || COMMIT.test(v), { message: "must be a recipe version or a commit hash" });
const stepName = z.string().regex(STEP_NAME, "must be a step name (lowercase letters, digits and '-')");

const fallbackSchema = z
  .object({ from: z.string().min(1), to: z.string().min(1), reason: z.string().min(1) })
  .strict();

const stepSchema = z
  .object({
    name: stepName,
    outcome: z.enum(["passed", "failed", "skipped", "interrupted"]),
    startedAt: isoTime,
    durationMs,
    detail: z.string().optional(),
  })
  .strict();

const testsSchema = z
  .object({
    outcome: z.enum(["passed", "failed", "timed-out", "not-run"]),
    exitCode: z.number().int().nullable(),
    durationMs,
    /** The last lines of the test output, redacted by the caller. */
    outputTail: z.string(),
  })
  .strict();

const promotionSchema = z
  .object({
    outcome: z.enum(["promoted", "unchanged", "not-eligible", "failed"]),
    version: version.nullable(),
    reason: z.string(),
  })
  .strict();

export const resultsSchema = z
  .object({
    schema: z.literal(RESULTS_SCHEMA_ID),
    recipe: recipeNameSchema,
    stack: runStackNameSchema,
    /** The requested ref: a commit, or "" for the recipe's latest version. */
    ref: z.string().regex(/^([0-9a-f]{7,40})?$/, "must be a commit hash (7–40 hex digits) or empty for the latest version"),
    deployed: deployedRef.nullable(),
    pr: z.number().int().positive().nullable(),
    /** What was asked for. */
    mode,
    /** What ran; null when the run never deployed. */
    lane: mode.nullable(),
    confidence: z.enum(["authoritative", "lower"]),
    gatesMerge: z.boolean(),
    sso: z.enum(["none", "warm-keycloak", "cold-keycloak"]).nullable(),
    fallbacks: z.array(fallbackSchema),
    steps: z.array(stepSchema),
    deployCount: z.number().int().nonnegative(),
    /** How long the quick lane waited for the canonical's lease (0 in the cold lane). */
    leaseWaitMs: z.number().int().nonnegative(),
    tests: testsSchema,
    promotion: promotionSchema,
    outcome: z.enum(["passed", "failed", "interrupted"]),
    failedStep: stepName.nullable(),
    error: z.string().nullable(),
    startedAt: isoTime,
    finishedAt: isoTime,
    durationMs,
    /** A quick run's word on the lane, when the recipe's cold runs have been the faster (runner/lane-advice.ts). */
    laneAdvice: z.string().optional(),
  })
  .strict()
  // A report that calls a quick run authoritative, or lets it gate a merge, would mislead exactly
  // the reader the quick/cold distinction exists for.
  .superRefine((r, ctx) => {
    if (r.lane === "quick" && r.confidence !== "lower") {
      ctx.addIssue({ code: "custom", path: ["confidence"], message: "a quick-lane run is lower-confidence" });
    }
    if (r.gatesMerge && (r.lane === "quick" || r.confidence !== "authoritative")) {
      ctx.addIssue({ code: "custom", path: ["gatesMerge"], message: "only an authoritative cold run gates the merge" });
    }
    if (r.failedStep !== null && !r.steps.some((s) => s.name === r.failedStep)) {
      ctx.addIssue({ code: "custom", path: ["failedStep"], message: "must name one of the steps" });
    }
    if (r.outcome === "passed" && r.failedStep !== null) {
      ctx.addIssue({ code: "custom", path: ["failedStep"], message: "must be null when the run passed" });
    }
  });

export type RunResults = z.infer<typeof resultsSchema>;

/** Where a run writes its results unless told otherwise: <stateDir>/results/<stack>/; reap prunes it. */
export function resultsRoot(stateDir: string): string {
  return path.join(stateDir, "results");
}

export function parseResults(value: unknown): RunResults {
  const result = resultsSchema.safeParse(value);
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => {
    const prefix = issue.path.join(".");
    if (issue.code === "unrecognized_keys") {
      return issue.keys.map((key) => `  ${prefix ? `${prefix}.${key}` : key}: unknown field`).join("\n");
    }
    return `  ${prefix || "(results)"}: ${issue.message}`;
  });
  throw new Error(`results are invalid:\n${problems.join("\n")}`);
}

const seconds = (ms: number): string => (ms / 1000).toFixed(1);

// Free text (reasons, details, errors) comes from tools and recipes: keep each to one bounded line
// so it cannot break the comment's layout, and cut it rather than let a comment grow unbounded.
function oneLine(text: string, max = 300): string {
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

const cell = (text: string): string => oneLine(text, 120).replace(/\|/g, "\\|");

function longestBacktickRun(text: string): number {
  let longest = 0;
  for (const run of text.match(/`+/g) ?? []) longest = Math.max(longest, run.length);
  return longest;
}

/** A fenced block no line of `text` can close: the fence is longer than any backtick run inside. */
function fenced(text: string, info = ""): string[] {
  const fence = "`".repeat(Math.max(3, longestBacktickRun(text) + 1));
  return [`${fence}${info}`, text, fence];
}

function laneLine(r: RunResults): string {
  const lane =
    r.lane === null ? `none (never deployed; requested: ${r.mode})` : r.lane === r.mode ? r.lane : `${r.lane} (requested: ${r.mode})`;
  const weight =
    r.confidence === "lower"
      ? "**Lower-confidence result** (quick lane: the data-warm canonical upgraded in place); it does not gate the merge."
      : r.gatesMerge
        ? "Authoritative result; it gates the merge."
        : "Authoritative result, but it does not gate the merge.";
  return `**Lane:** ${lane}. ${weight}`;
}

function testsLine(t: RunResults["tests"]): string {
  const exit = t.exitCode === null ? "" : `, exit code ${t.exitCode}`;
  switch (t.outcome) {
    case "not-run":
      return "**Tests:** not run";
    case "timed-out":
      return `**Tests:** timed out after ${seconds(t.durationMs)} s${exit}`;
    default:
      return `**Tests:** ${t.outcome} in ${seconds(t.durationMs)} s${exit}`;
  }
}

function promotionLine(p: RunResults["promotion"]): string {
  const what =
    p.outcome === "promoted"
      ? `promoted${p.version === null ? "" : ` \`${p.version}\` to known-good`}`
      : p.outcome === "unchanged"
        ? `unchanged${p.version === null ? "" : ` (known-good stays \`${p.version}\`)`}`
        : p.outcome === "not-eligible"
          ? "not eligible"
          : "failed";
  const reason = oneLine(p.reason);
  return `**Promotion:** ${what}${reason === "" ? "" : `: ${reason}`}`;
}

/** The PR comment for a run: compact, and built only from the schema's fields. */
export function renderMarkdown(results: RunResults): string {
  const r = results;
  const lines: string[] = [`### warmstack: ${r.recipe} ${r.outcome.toUpperCase()}`, "", laneLine(r), ""];

  const ref = r.ref === "" ? "latest" : `\`${r.ref}\``;
  const deployed = r.deployed === null ? "nothing" : `\`${r.deployed}\``;
  const facts = [`**Ref:** ${ref}`, `**Deployed:** ${deployed}`];
  if (r.pr !== null) facts.push(`**PR:** #${r.pr}`);
  if (r.sso !== null) facts.push(`**SSO:** ${r.sso}`);
  facts.push(`**Stack:** \`${r.stack}\``);
  lines.push(facts.join(" · "), "");

  if (r.fallbacks.length > 0) {
    lines.push("**Fallbacks:**");
    for (const f of r.fallbacks) lines.push(`- ${oneLine(f.from, 60)} → ${oneLine(f.to, 60)}: ${oneLine(f.reason)}`);
    lines.push("");
  }

  if (r.steps.length > 0) {
    lines.push("| step | outcome | duration (s) |", "| --- | --- | ---: |");
    for (const s of r.steps) {
      const detail = s.detail === undefined || oneLine(s.detail) === "" ? "" : ` (${cell(s.detail)})`;
      lines.push(`| ${s.name} | ${s.outcome}${detail} | ${seconds(s.durationMs)} |`);
    }
    lines.push("");
  }

  if (r.failedStep !== null) lines.push(`**Failed step:** \`${r.failedStep}\``, "");
  if (r.error !== null) lines.push(`**Error:** ${oneLine(r.error, 500)}`, "");

  lines.push(testsLine(r.tests));
  const tail = r.tests.outputTail.replace(/\n+$/, "");
  if (tail !== "") lines.push(...fenced(tail, "text"));
  lines.push("", promotionLine(r.promotion), "", `Run took ${seconds(r.durationMs)} s (deploys: ${r.deployCount}).`);
  if (r.laneAdvice !== undefined) lines.push("", `**Lane advice:** ${oneLine(r.laneAdvice)}.`);
  return `${lines.join("\n")}\n`;
}

/** What a run went through, as the runner gathered it; assembleResults turns it into results.json. */
export interface RunFacts {
  recipe: string;
  stack: string;
  ref: string;
  pr: number | null;
  /** The lane asked for. */
  mode: RunResults["mode"];
  /** The run stack's outputs after its up (none when it failed), as strings. */
  up: { lane?: string; deployed?: string; deployCount?: string; leaseWaitMs?: string; laneFallback?: string };
  /** What the app recorded as it went, for an up that returned no outputs. */
  recorded: { lane?: RunResults["mode"]; deployAttempts: number };
  sso: RunResults["sso"];
  /** Fallbacks decided before the up (quick → cold, warm Keycloak → a cold one). */
  fallbacks: RunResults["fallbacks"];
  steps: RunResults["steps"];
  tests: RunResults["tests"];
  promotion: RunResults["promotion"];
  failedStep: string | null;
  error: string | null;
  /** The signal that stopped the run, if one did. */
  received?: NodeJS.Signals;
  startedAt: Date;
  finishedAt: Date;
}

/** The run's results: which lane ran and what that result is worth, from the facts alone. */
export function assembleResults(facts: RunFacts): RunResults {
  const lane = facts.up.lane ?? facts.recorded.lane;
  const ranLane = lane === "cold" || lane === "quick" ? lane : null;
  const fallbacks = facts.up.laneFallback ? [...facts.fallbacks, { from: "quick", to: "cold", reason: facts.up.laneFallback }] : facts.fallbacks;
  return parseResults({
    schema: RESULTS_SCHEMA_ID,
    recipe: facts.recipe,
    stack: facts.stack,
    ref: facts.ref,
    deployed: facts.up.deployed ?? null,
    pr: facts.pr,
    mode: facts.mode,
    lane: ranLane,
    confidence: ranLane === "quick" ? "lower" : "authoritative",
    gatesMerge: ranLane === "cold",
    sso: facts.sso,
    fallbacks,
    steps: facts.steps,
    deployCount: Number(facts.up.deployCount ?? facts.recorded.deployAttempts),
    leaseWaitMs: Number(facts.up.leaseWaitMs ?? 0),
    tests: facts.tests,
    promotion: facts.promotion,
    outcome: facts.received ? "interrupted" : facts.failedStep === null ? "passed" : "failed",
    failedStep: facts.failedStep,
    error: facts.error,
    startedAt: facts.startedAt.toISOString(),
    finishedAt: facts.finishedAt.toISOString(),
    durationMs: facts.finishedAt.getTime() - facts.startedAt.getTime(),
  });
}

/**
 * The latest green runs of a recipe under `root` (one directory per run stack), newest first, as
 * lane samples; a results file that cannot be read or parsed is not one of them.
 */
export async function recentGreenRuns(root: string, recipe: string): Promise<LaneSample[]> {
  const stacks = await readdir(root).catch(() => [] as string[]);
  const runs = await Promise.all(
    stacks
      .filter((stack) => parseRunStackName(stack)?.recipe === recipe)
      .map(async (stack) => {
        try {
          return parseResults(JSON.parse(await readFile(path.join(root, stack, "results.json"), "utf8")));
        } catch {
          return undefined;
        }
      }),
  );
  return runs
    .filter((run): run is RunResults => run !== undefined && run.recipe === recipe && run.outcome === "passed" && run.lane !== null)
    .sort((a, b) => b.finishedAt.localeCompare(a.finishedAt))
    .map((run) => ({ lane: run.lane!, durationMs: run.durationMs }));
}

/** results.json and summary.md of a run, in its results directory. */
export async function writeResults(dir: string, results: RunResults): Promise<{ resultsFile: string; summaryFile: string }> {
  await mkdir(dir, { recursive: true });
  const resultsFile = path.join(dir, "results.json");
  const summaryFile = path.join(dir, "summary.md");
  await writeFile(resultsFile, `${JSON.stringify(results, null, 2)}\n`);
  await writeFile(summaryFile, renderMarkdown(results));
  return { resultsFile, summaryFile };
}
