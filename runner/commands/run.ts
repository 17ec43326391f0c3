import { randomBytes } from "node:crypto";
import { mkdir, rm, writeFile } from "node:fs/promises";
import * as path from "node:path";
import { OutputMap, Stack } from "@pulumi/pulumi/automation";
import { Command } from "commander";
import { z } from "zod";
import { readRunProgress } from "../../infra/adapters/run-progress";
import { CatalogueEntry, CONFIG_NAMESPACE, LeasedCanonical } from "../../infra/config";
import { domainSchema, recipeNameSchema, runStackName } from "../../infra/naming";
import { catalogueEntry, defaultCatalogueFile, loadCatalogue } from "../catalogue";
import { endRunProcesses, RUN_STACK_ENV } from "../processes";
import { outputValue as value, runRecipeTests } from "../recipe-tests";
import { Progress } from "../progress";
import { parseResults, RESULTS_SCHEMA_ID, renderMarkdown, resultsRoot, RunResults } from "../results";
import { hasCommit, latestReleaseDeployed, prepareRunAbraDir, quickLaneFor, recipeSource, WarmContext, warmContext } from "../run-context";
import * as registry from "../run-registry";
import { RunnerSettings, runnerSettings, selectStack } from "../workspace";
import { promote } from "./promote";
import { destroyRunStack, reap } from "./reap";

/**
 * `warmstack run`: one CI run of one recipe in a run stack of its own — create the stack, `up` (the
 * app cold, or the canonical borrowed in the quick lane), run the recipe's tests against it, destroy
 * and remove the stack whatever happened (Ctrl-C and SIGTERM included), write results.json and a
 * Markdown summary, and promote after a green cold run on the latest release of an enrolled recipe.
 */
const requestSchema = z.object({
  recipe: recipeNameSchema,
  ref: z.string().regex(/^([0-9a-f]{7,40})?$/, "must be a commit hash (7–40 lowercase hex digits); leave it out for the latest release"),
  pr: z
    .string()
    .regex(/^[1-9][0-9]{0,9}$/, "must be a positive whole number")
    .transform(Number)
    .optional(),
  quick: z.boolean(),
  catalogue: z.string().min(1),
  keycloakDomain: domainSchema.optional(),
  leaseTimeoutSeconds: z.coerce.number().int().min(0).max(86_400),
  resultsDir: z.string().refine((value) => path.isAbsolute(value), { error: "must be an absolute path" }).optional(),
});
export type RunRequest = z.infer<typeof requestSchema>;

const OPTION_NAMES: Record<string, string> = {
  recipe: "--recipe",
  ref: "--ref",
  pr: "--pr",
  catalogue: "--catalogue",
  keycloakDomain: "--keycloak-domain",
  leaseTimeoutSeconds: "--lease-timeout",
  resultsDir: "--results-dir",
};

export function parseRunRequest(values: Record<string, unknown>): RunRequest {
  const parsed = requestSchema.safeParse(values);
  if (parsed.success) return parsed.data;
  throw new Error(parsed.error.issues.map((issue) => `${OPTION_NAMES[String(issue.path[0])] ?? issue.path.join(".")}: ${issue.message}`).join("; "));
}

type Step = RunResults["steps"][number];

/** Steps with their timing and outcome, for the progress lines and the results. */
class StepLog {
  readonly steps: Step[] = [];

  constructor(
    private readonly progress: Progress,
    private readonly what: string,
    private readonly interrupted: () => boolean,
  ) {}

  async run<T>(name: string, body: () => Promise<T>, describe: (value: T) => string | undefined = () => undefined): Promise<T> {
    const startedAt = new Date();
    this.progress.say(`${name} ${this.what}: started`);
    try {
      const value = await body();
      const detail = describe(value);
      this.record(name, "passed", startedAt, detail);
      return value;
    } catch (error) {
      this.record(name, this.interrupted() ? "interrupted" : "failed", startedAt, firstLine(error));
      throw error;
    }
  }

  record(name: string, outcome: Step["outcome"], startedAt: Date, detail?: string): void {
    const durationMs = Date.now() - startedAt.getTime();
    this.steps.push({ name, outcome, startedAt: startedAt.toISOString(), durationMs, ...(detail ? { detail } : {}) });
    this.progress.say(`${name} ${this.what}: ${outcome} in ${(durationMs / 1000).toFixed(1)}s${detail ? ` (${detail})` : ""}`);
  }

  skip(name: string, why: string): void {
    this.steps.push({ name, outcome: "skipped", startedAt: new Date().toISOString(), durationMs: 0, detail: why });
  }
}

function firstLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  // The engine's own diagnostic says more than its generic "update failed".
  const diagnostic = [...text.matchAll(/^\s*error: (.+)$/gm)].map((match) => match[1]!.trim()).find((line) => line !== "update failed");
  return (diagnostic ?? text.split("\n").find((line) => line.trim()) ?? "failed").trim().slice(0, 500);
}

/** Processes get a moment to stop at a signal before they are ended: an `up` cancels at its next step. */
const ENGINE_GRACE_MS = 5_000;
const STEP_TIMEOUT_MS = 1_200_000;

interface Signals {
  abort: AbortController;
  /** The signal that stopped the run, if one did. */
  received?: NodeJS.Signals;
  dispose(): void;
}

/** The first SIGINT/SIGTERM stops the run and starts the cleanup; later ones cannot cut the cleanup short. */
function trapSignals(progress: Progress, stack: string): Signals {
  const signals: Signals = { abort: new AbortController(), dispose: () => undefined };
  const onSignal = (received: NodeJS.Signals) => {
    if (signals.received) {
      progress.say(`${received}: already cleaning up ${stack}; that finishes first`);
      return;
    }
    signals.received = received;
    progress.say(`${received}: stopping the run; ${stack} is destroyed before exiting`);
    signals.abort.abort(new Error(`stopped by ${received}`));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  signals.dispose = () => {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  };
  return signals;
}

interface Plan {
  request: RunRequest;
  entry: CatalogueEntry;
  catalogueDir: string;
  stack: string;
  hex: string;
  warm: WarmContext;
  keycloakDomain?: string;
  canonical?: LeasedCanonical;
  fallbacks: RunResults["fallbacks"];
}

/** Everything checked before anything is created: a bad recipe, ref or catalogue leaves nothing behind. */
async function plan(request: RunRequest, settings: RunnerSettings): Promise<Plan> {
  const catalogue = await loadCatalogue(request.catalogue);
  const entry = catalogueEntry(catalogue, request.recipe);
  const warm = await warmContext(settings);
  const source = recipeSource(warm, request.recipe);
  if (request.ref && !(await hasCommit(source, request.ref))) throw new Error(`--ref: ${request.ref} is not a commit of recipe ${request.recipe} (${source})`);
  const hex = randomBytes(3).toString("hex");
  const fallbacks: RunResults["fallbacks"] = [];
  let canonical: LeasedCanonical | undefined;
  if (request.quick) {
    const lane = quickLaneFor(request.recipe, entry, warm);
    if ("canonical" in lane) {
      const checkout = path.join(lane.canonical.deployerSettings.abraDir, "recipes", request.recipe);
      if (!request.ref || (await hasCommit(checkout, request.ref))) canonical = lane.canonical;
      else fallbacks.push({ from: "quick", to: "cold", reason: `the canonical's checkout ${checkout} does not have commit ${request.ref}` });
    } else {
      fallbacks.push({ from: "quick", to: "cold", reason: lane.fallback });
    }
  }
  return {
    request,
    entry,
    catalogueDir: catalogue.dir,
    stack: runStackName(request.recipe, hex),
    hex,
    warm,
    keycloakDomain: request.keycloakDomain ?? warm.keycloakDomain,
    canonical,
    fallbacks,
  };
}

function runProgressFile(stateDir: string, stack: string): string {
  return path.join(registry.runWorkDir(stateDir, stack), "progress.jsonl");
}

function runConfig(plan: Plan, abraDir: string, stateDir: string): Record<string, string> {
  const { request, entry, warm } = plan;
  const config: Record<string, string> = {
    recipe: request.recipe,
    hex: plan.hex,
    ref: request.ref,
    mode: plan.canonical ? "quick" : "cold",
    baseDomain: warm.baseDomain,
    server: warm.server,
    abraDir,
    proxyUrl: warm.proxyUrl,
    dnsrrEndpoints: String(warm.dnsrrEndpoints),
    stateDir,
    sso: String(entry.sso),
    app: JSON.stringify({ health: entry.health, ...(entry.ready ? { ready: entry.ready } : {}), deployTimeoutSeconds: entry.deployTimeoutSeconds }),
    leaseTimeoutSeconds: String(request.leaseTimeoutSeconds),
    progressFile: runProgressFile(stateDir, plan.stack),
  };
  if (request.pr !== undefined) config.pr = String(request.pr);
  if (plan.keycloakDomain) config.keycloakDomain = plan.keycloakDomain;
  if (plan.canonical) config.canonical = JSON.stringify(plan.canonical);
  return config;
}

async function createRunStack(plan: Plan, settings: RunnerSettings, abraDir: string): Promise<Stack> {
  const stack = await selectStack(plan.stack, settings, { [RUN_STACK_ENV]: plan.stack });
  const config = runConfig(plan, abraDir, settings.stateDir);
  await stack.setAllConfig(Object.fromEntries(Object.entries(config).map(([key, value]) => [`${CONFIG_NAMESPACE}:${key}`, { value }])));
  return stack;
}

/**
 * `up`, cancelled at a signal or at the step deadline; if the engine does not stop within the grace
 * period, its processes are ended.
 */
async function upWithin(stack: Stack, plan: Plan, signals: Signals, progress: Progress): Promise<OutputMap> {
  signals.abort.signal.throwIfAborted();
  const stop = AbortSignal.any([signals.abort.signal, AbortSignal.timeout(STEP_TIMEOUT_MS)]);
  let grace: NodeJS.Timeout | undefined;
  const onStop = () => {
    grace = setTimeout(() => void endRunProcesses(plan.stack), ENGINE_GRACE_MS);
  };
  stop.addEventListener("abort", onStop, { once: true });
  try {
    return (await stack.up({ onOutput: progress.engineOutput(plan.stack), signal: stop })).outputs;
  } catch (error) {
    if (stop.aborted && !signals.abort.signal.aborted) throw new Error(`the up did not finish within ${STEP_TIMEOUT_MS / 60_000} min: ${firstLine(error)}`);
    throw error;
  } finally {
    stop.removeEventListener("abort", onStop);
    if (grace) clearTimeout(grace);
  }
}

/**
 * Destroys and removes the stack. When the up or the destroy did not complete, the state may miss what
 * a cut-off operation made, so a sweep then removes whatever only markers name (realm, app, lease).
 */
async function destroyEverything(plan: Plan, stack: Stack | undefined, settings: RunnerSettings, progress: Progress, upCompleted: boolean): Promise<void> {
  // Whatever the engine or the tests still run belongs to this run, which is over now.
  await endRunProcesses(plan.stack);
  let stateComplete = upCompleted && stack !== undefined;
  if (stack) {
    try {
      await stack.destroy({ onOutput: progress.engineOutput(plan.stack), signal: AbortSignal.timeout(STEP_TIMEOUT_MS) });
      await stack.workspace.removeStack(plan.stack);
    } catch (error) {
      progress.say(`destroy ${plan.stack}: ${firstLine(error)}; clearing its lock and pending operations and destroying again`);
      stateComplete = false;
      await destroyRunStack(plan.stack, settings, STEP_TIMEOUT_MS);
    }
  }
  if (stateComplete) return;
  const request = {
    dryRun: false,
    json: false,
    keycloakDomain: plan.keycloakDomain,
    abraDir: plan.warm.abraDir,
    proxyUrl: plan.warm.proxyUrl,
    stepTimeoutSeconds: STEP_TIMEOUT_MS / 1000,
  };
  const report = await reap(request, settings, (line) => progress.say(`sweep ${plan.stack}: ${line}`), { stack: plan.stack, assumeDead: true });
  if (report.failed.length > 0) throw new Error(`left behind: ${report.failed.map((failure) => `${failure.kind} (${failure.error})`).join("; ")}`);
}

type Promotion = RunResults["promotion"];

async function promoteIfEligible(plan: Plan, outputs: OutputMap, testsPassed: boolean, abraDir: string, progress: Progress): Promise<Promotion> {
  const { recipe } = plan.request;
  // A quick request that fell back to the cold lane still was not asked to be authoritative.
  if (plan.request.quick || value(outputs, "lane") !== "cold") return { outcome: "not-eligible", version: null, reason: "a quick run never promotes" };
  if (!testsPassed) return { outcome: "not-eligible", version: null, reason: "the run was not green" };
  if (!plan.entry.canonical || !plan.warm.enrolled.includes(recipe)) return { outcome: "not-eligible", version: null, reason: `${recipe} is not an enrolled canonical` };
  const deployed = value(outputs, "deployed") ?? "";
  const { latest, isLatest } = await latestReleaseDeployed(path.join(abraDir, "recipes", recipe), deployed);
  if (!isLatest) return { outcome: "not-eligible", version: null, reason: `${deployed} is not the latest release${latest ? ` (${latest})` : ""}` };
  const result = await promote({ recipe, version: latest, lockTimeoutSeconds: 900 }, progress);
  if (!result.ok) throw new Error(`promote ${recipe} to ${latest}: ${result.error}`);
  return result.changed
    ? { outcome: "promoted", version: latest, reason: `known-good ${result.from ?? "(none)"} → ${latest} after a green cold run` }
    : { outcome: "unchanged", version: latest, reason: `${latest} already is the known-good` };
}

async function writeResults(dir: string, results: RunResults): Promise<{ resultsFile: string; summaryFile: string }> {
  await mkdir(dir, { recursive: true });
  const resultsFile = path.join(dir, "results.json");
  const summaryFile = path.join(dir, "summary.md");
  await writeFile(resultsFile, `${JSON.stringify(results, null, 2)}\n`);
  await writeFile(summaryFile, renderMarkdown(results));
  return { resultsFile, summaryFile };
}

export interface RunReport {
  results: RunResults;
  /** The signal that stopped the run, if one did. */
  received?: NodeJS.Signals;
  resultsFile: string;
  summaryFile: string;
}

export async function runRecipe(request: RunRequest, progress: Progress): Promise<RunReport> {
  const settings = runnerSettings();
  const startedAt = new Date();
  const prepared = await plan(request, settings);
  const { stack: stackName } = prepared;
  const what = `${request.recipe} (${stackName})`;
  const signals = trapSignals(progress, stackName);
  const log = new StepLog(progress, what, () => signals.received !== undefined);
  progress.say(`run ${what}: ${request.quick ? "quick" : "cold"} lane asked for${request.ref ? `, ref ${request.ref}` : ", latest release"}`);
  for (const fallback of prepared.fallbacks) progress.say(`run ${what}: ${fallback.from} → ${fallback.to}: ${fallback.reason}`);

  let stack: Stack | undefined;
  let outputs: OutputMap = {};
  let abraDir = "";
  let tests: RunResults["tests"] = { outcome: "not-run", exitCode: null, durationMs: 0, outputTail: "" };
  let promotion: Promotion;
  let failedStep: string | null = null;
  let error: string | null = null;
  // Registered before the stack exists, so a reap in between never judges the new stack stale.
  await registry.registerRun(settings.stateDir, stackName);
  try {
    try {
      abraDir = await log.run("prepare", async () => {
        const recipes = prepared.entry.sso ? [request.recipe, "keycloak"] : [request.recipe];
        const dir = await prepareRunAbraDir(settings, stackName, prepared.warm, recipes.filter((recipe, index) => recipes.indexOf(recipe) === index));
        stack = await createRunStack(prepared, settings, dir);
        return dir;
      });
      outputs = await log.run(
        "up",
        () => upWithin(stack!, prepared, signals, progress),
        (up) => `${value(up, "lane")} lane, ${value(up, "deployed")} on ${value(up, "appDomain")}, ${value(up, "deployCount")} deploy(s)`,
      );
      tests = await log.run(
        "tests",
        async () => {
          const ran = await runRecipeTests({
            test: prepared.entry.test,
            cwd: prepared.catalogueDir,
            stack: stackName,
            recipe: request.recipe,
            proxyUrl: prepared.warm.proxyUrl,
            outputs,
            signal: signals.abort.signal,
          });
          if (ran.outcome !== "passed") {
            tests = ran;
            throw new Error(`the tests ${ran.outcome === "timed-out" ? `timed out after ${prepared.entry.test.timeoutSeconds}s` : `failed (exit ${ran.exitCode ?? "none"})`}`);
          }
          return ran;
        },
        (ran) => `exit ${ran.exitCode}`,
      );
    } catch (caught) {
      failedStep = log.steps.at(-1)?.name ?? "prepare";
      error = firstLine(caught);
    }
  } finally {
    try {
      const upCompleted = log.steps.some((step) => step.name === "up" && step.outcome === "passed");
      await log.run("destroy", () => destroyEverything(prepared, stack, settings, progress, upCompleted));
    } catch (caught) {
      failedStep ??= "destroy";
      error ??= firstLine(caught);
    }
  }
  const laneFallback = value(outputs, "laneFallback");
  if (laneFallback) prepared.fallbacks.push({ from: "quick", to: "cold", reason: laneFallback });
  const ssoFallback = value(outputs, "fallback");
  if (ssoFallback) prepared.fallbacks.push({ from: "warm-keycloak", to: "cold-keycloak", reason: ssoFallback });

  if (failedStep === null && !signals.received) {
    try {
      promotion = await log.run("promote", () => promoteIfEligible(prepared, outputs, tests.outcome === "passed", abraDir, progress), (p) => `${p.outcome}: ${p.reason}`);
    } catch (caught) {
      promotion = { outcome: "failed", version: null, reason: firstLine(caught) };
    }
  } else {
    const why = signals.received ? `the run was stopped by ${signals.received}` : `the run was not green (step ${failedStep} failed)`;
    promotion = { outcome: "not-eligible", version: null, reason: why };
    log.skip("promote", why);
  }
  signals.dispose();
  // A failed up has no outputs: what the app went through is read from the progress it recorded.
  const recorded = await readRunProgress(runProgressFile(settings.stateDir, stackName));
  await rm(registry.runWorkDir(settings.stateDir, stackName), { recursive: true, force: true });
  await registry.unregisterRun(settings.stateDir, stackName);

  const lane = value(outputs, "lane") ?? recorded.lane;
  const deployCount = value(outputs, "deployCount") ?? recorded.deployAttempts;
  const finishedAt = new Date();
  const results = parseResults({
    schema: RESULTS_SCHEMA_ID,
    recipe: request.recipe,
    stack: stackName,
    ref: request.ref,
    deployed: value(outputs, "deployed") ?? null,
    pr: request.pr ?? null,
    mode: request.quick ? "quick" : "cold",
    lane: lane === "cold" || lane === "quick" ? lane : null,
    confidence: lane === "quick" ? "lower" : "authoritative",
    gatesMerge: lane === "cold",
    sso: (value(outputs, "sso") as RunResults["sso"] | undefined) ?? null,
    fallbacks: prepared.fallbacks,
    steps: log.steps,
    deployCount: Number(deployCount),
    leaseWaitMs: Number(value(outputs, "leaseWaitMs") ?? 0),
    tests,
    promotion,
    outcome: signals.received ? "interrupted" : failedStep === null ? "passed" : "failed",
    failedStep,
    error,
    startedAt: startedAt.toISOString(),
    finishedAt: finishedAt.toISOString(),
    durationMs: finishedAt.getTime() - startedAt.getTime(),
  });
  const { resultsFile, summaryFile } = await writeResults(request.resultsDir ?? path.join(resultsRoot(settings.stateDir), stackName), results);
  progress.say(`run ${what}: ${results.outcome} in ${(results.durationMs / 1000).toFixed(1)}s; results in ${resultsFile}`);
  return { results, resultsFile, summaryFile, received: signals.received };
}

function exitCodeOf(results: RunResults, received?: NodeJS.Signals): number {
  if (results.outcome === "passed") return 0;
  if (received === "SIGINT") return 130;
  if (received === "SIGTERM") return 143;
  return 1;
}

export interface RunCliOptions {
  recipe?: string;
  ref?: string;
  pr?: string;
  quick?: boolean;
  json?: boolean;
  catalogue?: string;
  keycloakDomain?: string;
  leaseTimeout: string;
  resultsDir?: string;
}

/** Shared by `run` and `trigger`: validates, runs, prints, and sets the exit code. */
export async function runFromCli(options: RunCliOptions, quick: boolean): Promise<void> {
  const settings = runnerSettings();
  const request = parseRunRequest({
    recipe: options.recipe,
    ref: options.ref ?? "",
    pr: options.pr,
    quick,
    catalogue: options.catalogue ?? defaultCatalogueFile(settings.projectDir),
    keycloakDomain: options.keycloakDomain ?? (process.env.WARMSTACK_KEYCLOAK_DOMAIN || undefined),
    leaseTimeoutSeconds: options.leaseTimeout,
    resultsDir: options.resultsDir,
  });
  const report = await runRecipe(request, new Progress(Boolean(options.json)));
  process.stdout.write(options.json ? `${JSON.stringify({ ...report.results, resultsFile: report.resultsFile, summaryFile: report.summaryFile }, null, 2)}\n` : renderMarkdown(report.results));
  process.exitCode = exitCodeOf(report.results, report.received);
}

export function addRunOptions(command: Command): Command {
  return command
    .requiredOption("--recipe <recipe>", "the recipe to test (an entry of the recipe catalogue)")
    .option("--ref <sha>", "the PR head commit of the recipe (default: its latest release)")
    .option("--pr <n>", "the pull request number, for the report")
    .option("--json", "print results.json on stdout instead of the Markdown summary")
    .option("--catalogue <file>", "the recipe catalogue (default: WARMSTACK_CATALOGUE or catalogue.yaml in the project)")
    .option("--keycloak-domain <domain>", "the shared Keycloak (default: WARMSTACK_KEYCLOAK_DOMAIN or the warm stack's)")
    .option("--lease-timeout <seconds>", "how long a quick run waits for the canonical before it runs cold", "600")
    .option("--results-dir <dir>", "where results.json and summary.md go (default: <stateDir>/results/<run stack>)");
}

export function registerRun(program: Command): void {
  addRunOptions(
    program
      .command("run")
      .description("test a recipe in a run stack of its own: up, the recipe's tests, destroy (always); exit 0 only when the tests passed")
      .option("--quick", "borrow the recipe's canonical (lower confidence, never gates a merge, never promotes)"),
  ).action((options: RunCliOptions) => runFromCli(options, Boolean(options.quick)));
}
