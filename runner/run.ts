import { randomBytes } from "node:crypto";
import { rm } from "node:fs/promises";
import * as path from "node:path";
import { coordinationAt, whileBeating } from "../infra/adapters/coordination";
import { readRunProgress } from "../infra/adapters/run-progress";
import { runStackName } from "../infra/naming";
import type { RunnerContext } from "./context";
import { Progress } from "./progress";
import { outputValue } from "./recipe-tests";
import { laneAdvice } from "./lane-advice";
import { assembleResults, recentGreenRuns, resultsRoot, RunResults, writeResults } from "./results";
import { planRun, RunPlan, runProgressFile, RunRequest, runWorkDir } from "./run-plan";
import { describeUp, destroy, prepare, promoteIfEligible, reasonOf, RunState, StepLog, tests, trapSignals, up } from "./run-steps";

/**
 * One CI run of one recipe in a run stack of its own: prepare → up → tests → destroy → promote →
 * report. The stack is destroyed and removed whatever happened (Ctrl-C and SIGTERM included), the
 * results are written either way, and only a green cold run on the latest release of an enrolled
 * recipe promotes its canonical.
 */
export interface RunReport {
  results: RunResults;
  /** The signal that stopped the run, if one did. */
  received?: NodeJS.Signals;
  resultsFile: string;
  summaryFile: string;
}

export async function runRecipe(context: RunnerContext, request: RunRequest, progress: Progress): Promise<RunReport> {
  const startedAt = new Date();
  const { stateDir } = context.settings;
  const runId = randomBytes(3).toString("hex");
  const stack = runStackName(request.recipe, runId);
  const coordination = coordinationAt(stateDir);
  // Registered before anything exists, so a reap in between never judges the run's leftovers stale;
  // its heartbeat tells runners on other hosts it is alive for as long as it runs.
  await coordination.register(stack);
  return whileBeating(() => coordination.heartbeat(stack), () => registered(context, request, progress, startedAt, runId, stack));
}

async function registered(context: RunnerContext, request: RunRequest, progress: Progress, startedAt: Date, runId: string, stack: string): Promise<RunReport> {
  const { stateDir } = context.settings;
  let plan: RunPlan;
  try {
    plan = await planRun(context, request, runId);
  } catch (error) {
    // Refused before the stack existed: nothing of the run may stay, not even its clones.
    await rm(runWorkDir(stateDir, stack), { recursive: true, force: true });
    await coordinationAt(stateDir).unregister(stack);
    throw error;
  }
  const run = begin(context, plan, progress, startedAt);
  try {
    await run.log.run("prepare", () => prepare(run));
    await run.log.run("up", () => up(run), describeUp);
    await run.log.run("tests", () => tests(run), (ran) => `exit ${ran.exitCode}`);
  } catch (error) {
    run.failure = { step: run.log.steps.at(-1)?.name ?? "prepare", error: reasonOf(error) };
  } finally {
    await run.log.run("destroy", () => destroy(run)).catch((error: unknown) => {
      run.failure ??= { step: "destroy", error: reasonOf(error) };
    });
  }
  const promotion = await promoteStep(run);
  run.signals.dispose();
  return report(run, promotion);
}

function begin(context: RunnerContext, plan: RunPlan, progress: Progress, startedAt: Date): RunState {
  const what = `${plan.request.recipe} (${plan.stack})`;
  const signals = trapSignals(progress, plan.stack);
  const log = new StepLog(progress, what, () => signals.received !== undefined);
  progress.say(`run ${what}: ${plan.request.quick ? "quick" : "cold"} lane asked for${plan.request.ref ? `, ref ${plan.request.ref}` : ", latest release"}`);
  for (const fallback of plan.fallbacks) progress.say(`run ${what}: ${fallback.from} → ${fallback.to}: ${fallback.reason}`);
  const tests: RunResults["tests"] = { outcome: "not-run", exitCode: null, durationMs: 0, outputTail: "" };
  return { context, plan, progress, signals, log, startedAt, outputs: {}, tests, failure: null };
}

async function promoteStep(run: RunState): Promise<RunResults["promotion"]> {
  if (run.failure !== null || run.signals.received) {
    const why = run.signals.received ? `the run was stopped by ${run.signals.received}` : `the run was not green (step ${run.failure!.step} failed)`;
    run.log.skip("promote", why);
    return { outcome: "not-eligible", version: null, reason: why };
  }
  return run.log
    .run("promote", () => promoteIfEligible(run), (promotion) => `${promotion.outcome}: ${promotion.reason}`)
    .catch((error: unknown) => ({ outcome: "failed" as const, version: null, reason: reasonOf(error) }));
}

async function report(run: RunState, promotion: RunResults["promotion"]): Promise<RunReport> {
  const { plan, context, outputs } = run;
  const { stateDir } = context.settings;
  // A failed up has no outputs: what the app went through is read from the progress it recorded.
  const recorded = await readRunProgress(runProgressFile(stateDir, plan.stack));
  await rm(runWorkDir(stateDir, plan.stack), { recursive: true, force: true });
  await coordinationAt(stateDir).unregister(plan.stack);
  const results = assembleResults({
    recipe: plan.request.recipe,
    stack: plan.stack,
    ref: plan.request.ref,
    pr: plan.request.pr ?? null,
    mode: plan.request.quick ? "quick" : "cold",
    up: {
      lane: outputValue(outputs, "lane"),
      deployed: outputValue(outputs, "deployed"),
      deployCount: outputValue(outputs, "deployCount"),
      leaseWaitMs: outputValue(outputs, "leaseWaitMs"),
      laneFallback: outputValue(outputs, "laneFallback"),
    },
    recorded,
    sso: plan.sso,
    fallbacks: plan.fallbacks,
    steps: run.log.steps,
    tests: run.tests,
    promotion,
    failedStep: run.failure?.step ?? null,
    error: run.failure?.error ?? null,
    received: run.signals.received,
    startedAt: run.startedAt,
    finishedAt: new Date(),
  });
  if (results.lane === "quick" && results.outcome === "passed") {
    const advice = laneAdvice(plan.request.recipe, [{ lane: "quick", durationMs: results.durationMs }, ...(await recentGreenRuns(resultsRoot(stateDir), plan.request.recipe))]);
    if (advice !== undefined) {
      results.laneAdvice = advice;
      run.progress.say(`run ${plan.request.recipe} (${plan.stack}): ${advice}`);
    }
  }
  const { resultsFile, summaryFile } = await writeResults(plan.request.resultsDir ?? path.join(resultsRoot(stateDir), plan.stack), results);
  run.progress.say(`run ${plan.request.recipe} (${plan.stack}): ${results.outcome} in ${(results.durationMs / 1000).toFixed(1)}s; results in ${resultsFile}`);
  return { results, resultsFile, summaryFile, received: run.signals.received };
}
