import * as path from "node:path";
import { OutputMap, Stack } from "@pulumi/pulumi/automation";
import type { RunnerContext } from "./context";
import { engineFailure } from "./engine-errors";
import { Progress } from "./progress";
import { endRunProcesses, RUN_STACK_ENV } from "./processes";
import { promote } from "./promote";
import { destroyRunStack, reap } from "./reap";
import { outputValue, runRecipeTests } from "./recipe-tests";
import type { RunResults } from "./results";
import { RunPlan, runStackConfig } from "./run-plan";
import { keycloakAdminEnv, latestReleaseDeployed, warmKeycloakPassword } from "./warm-context";
import { selectStack } from "./workspace";

/**
 * The steps of one run, each a short function over the run's state: prepare, up, tests, destroy,
 * promote. runRecipe (runner/run.ts) calls them in order.
 */
export interface RunState {
  context: RunnerContext;
  plan: RunPlan;
  progress: Progress;
  signals: Signals;
  log: StepLog;
  startedAt: Date;
  stack?: Stack;
  outputs: OutputMap;
  tests: RunResults["tests"];
  /** The first step that failed, and why. */
  failure: { step: string; error: string } | null;
}

type Step = RunResults["steps"][number];

/** One bounded line for a run's report: the engine's own diagnostic for its errors, else the error's first line. */
export function reasonOf(error: unknown): string {
  return engineFailure(error).reason.slice(0, 500);
}

/** Steps with their timing and outcome, for the progress lines and the results. */
export class StepLog {
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
      this.record(name, "passed", startedAt, describe(value));
      return value;
    } catch (error) {
      this.record(name, this.interrupted() ? "interrupted" : "failed", startedAt, reasonOf(error));
      throw error;
    }
  }

  passed(name: string): boolean {
    return this.steps.some((step) => step.name === name && step.outcome === "passed");
  }

  skip(name: string, why: string): void {
    this.steps.push({ name, outcome: "skipped", startedAt: new Date().toISOString(), durationMs: 0, detail: why });
  }

  private record(name: string, outcome: Step["outcome"], startedAt: Date, detail?: string): void {
    const durationMs = Date.now() - startedAt.getTime();
    this.steps.push({ name, outcome, startedAt: startedAt.toISOString(), durationMs, ...(detail ? { detail } : {}) });
    this.progress.say(`${name} ${this.what}: ${outcome} in ${(durationMs / 1000).toFixed(1)}s${detail ? ` (${detail})` : ""}`);
  }
}

/** Processes get a moment to stop at a signal before they are ended: an `up` cancels at its next step. */
const ENGINE_GRACE_MS = 5_000;
export const STEP_TIMEOUT_MS = 1_200_000;

export interface Signals {
  abort: AbortController;
  /** The signal that stopped the run, if one did. */
  received?: NodeJS.Signals;
  dispose(): void;
}

/** The first SIGINT/SIGTERM stops the run and starts the cleanup; later ones cannot cut the cleanup short. */
export function trapSignals(progress: Progress, stack: string): Signals {
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

/** The run stack, with its config; the run's clones are the plan's. */
export async function prepare(run: RunState): Promise<void> {
  const { plan, context } = run;
  run.stack = await selectStack(plan.stack, context.settings, { [RUN_STACK_ENV]: plan.stack, ...keycloakAdminEnv(plan.warm, context.env) });
  await run.stack.setAllConfig(runStackConfig(plan, plan.abraDir, context.settings.stateDir));
}

/**
 * `up`, cancelled at a signal or at the step deadline; if the engine does not stop within the grace
 * period, its processes are ended.
 */
export async function up(run: RunState): Promise<OutputMap> {
  const { signals, plan } = run;
  signals.abort.signal.throwIfAborted();
  const stop = AbortSignal.any([signals.abort.signal, AbortSignal.timeout(STEP_TIMEOUT_MS)]);
  let grace: NodeJS.Timeout | undefined;
  const onStop = () => {
    grace = setTimeout(() => void endRunProcesses(plan.stack), ENGINE_GRACE_MS);
  };
  stop.addEventListener("abort", onStop, { once: true });
  try {
    run.outputs = (await run.stack!.up({ onOutput: run.progress.engineOutput(plan.stack), signal: stop })).outputs;
    return run.outputs;
  } catch (error) {
    if (stop.aborted && !signals.abort.signal.aborted) throw new Error(`the up did not finish within ${STEP_TIMEOUT_MS / 60_000} min: ${reasonOf(error)}`);
    throw error;
  } finally {
    stop.removeEventListener("abort", onStop);
    if (grace) clearTimeout(grace);
  }
}

export function describeUp(outputs: OutputMap): string {
  const value = (key: string) => outputValue(outputs, key);
  return `${value("lane")} lane, ${value("deployed")} on ${value("appDomain")}, ${value("deployCount")} deploy(s)`;
}

/** The recipe's test command against the run; a run whose tests did not pass fails this step. */
export async function tests(run: RunState): Promise<RunResults["tests"]> {
  const { plan } = run;
  run.tests = await runRecipeTests({
    test: plan.entry.test,
    cwd: plan.catalogueDir,
    stack: plan.stack,
    recipe: plan.request.recipe,
    proxyUrl: plan.warm.proxyUrl,
    outputs: run.outputs,
    signal: run.signals.abort.signal,
  });
  if (run.tests.outcome !== "passed") {
    throw new Error(`the tests ${run.tests.outcome === "timed-out" ? `timed out after ${plan.entry.test.timeoutSeconds}s` : `failed (exit ${run.tests.exitCode ?? "none"})`}`);
  }
  return run.tests;
}

/**
 * Destroys and removes the stack. When the up or the destroy did not complete, the state may miss what
 * a cut-off operation made, so a sweep then removes whatever only markers name (realm, app, lease).
 */
export async function destroy(run: RunState): Promise<void> {
  const { plan, context, progress, stack } = run;
  // Whatever the engine or the tests still run belongs to this run, which is over now.
  await endRunProcesses(plan.stack);
  let stateComplete = run.log.passed("up") && stack !== undefined;
  if (stack) {
    try {
      await stack.destroy({ onOutput: progress.engineOutput(plan.stack), signal: AbortSignal.timeout(STEP_TIMEOUT_MS) });
      await stack.workspace.removeStack(plan.stack);
    } catch (error) {
      progress.say(`destroy ${plan.stack}: ${reasonOf(error)}; clearing its lock and pending operations and destroying again`);
      stateComplete = false;
      await destroyRunStack(plan.stack, context.settings, STEP_TIMEOUT_MS);
    }
  }
  if (stateComplete) return;
  const request = {
    dryRun: false,
    keycloakDomain: plan.keycloakDomain,
    keycloakAdminPassword: warmKeycloakPassword(plan.warm, context.env),
    abraDir: plan.warm.abraDir,
    proxyUrl: plan.warm.proxyUrl,
    stepTimeoutSeconds: STEP_TIMEOUT_MS / 1000,
  };
  const report = await reap(context, request, (line) => progress.say(`sweep ${plan.stack}: ${line}`), { stack: plan.stack, assumeDead: true });
  if (report.failed.length > 0) throw new Error(`left behind: ${report.failed.map((failure) => `${failure.kind} (${failure.error})`).join("; ")}`);
}

/** Only a green cold run on the latest release of an enrolled recipe promotes; a quick one never does. */
export async function promoteIfEligible(run: RunState): Promise<RunResults["promotion"]> {
  const { plan, outputs } = run;
  const { recipe } = plan.request;
  // It ran against a Keycloak that is not the live one, inside the warm stack's own up.
  if (plan.request.canary) return { outcome: "not-eligible", version: null, reason: "a canary's run never promotes" };
  // A quick request that fell back to the cold lane still was not asked to be authoritative.
  if (plan.request.quick || outputValue(outputs, "lane") !== "cold") return { outcome: "not-eligible", version: null, reason: "a quick run never promotes" };
  if (run.tests.outcome !== "passed") return { outcome: "not-eligible", version: null, reason: "the run was not green" };
  if (!plan.entry.canonical || !plan.warm.enrolled.includes(recipe)) return { outcome: "not-eligible", version: null, reason: `${recipe} is not an enrolled canonical` };
  const deployed = outputValue(outputs, "deployed") ?? "";
  const { latest, isLatest } = await latestReleaseDeployed(path.join(plan.abraDir, "recipes", recipe), deployed);
  if (!isLatest) return { outcome: "not-eligible", version: null, reason: `${deployed} is not the latest release${latest ? ` (${latest})` : ""}` };
  const result = await promote(run.context, { recipe, version: latest, lockTimeoutSeconds: 900 }, run.progress);
  if (!result.ok) throw new Error(`promote ${recipe} to ${latest}: ${result.error}`);
  return result.changed
    ? { outcome: "promoted", version: latest, reason: `known-good ${result.from ?? "(none)"} → ${latest} after a green cold run` }
    : { outcome: "unchanged", version: latest, reason: `${latest} already is the known-good` };
}
