import { EngineEvent, Stack } from "@pulumi/pulumi/automation";
import type { Hold } from "../infra/gate";
import type { PlannedApp } from "../stacks/warm";
import type { RunnerContext } from "./context";
import { engineFailure } from "./engine-errors";
import { raiseAlert } from "../infra/adapters/alerts";
import { withoutCredentials } from "../infra/adapters/url-text";
import { CONFIG_NAMESPACE } from "../infra/config";
import type { RecipeFetch } from "./recipe-sources";
import { warmOperationMark } from "./processes";
import { prepareWarmStack } from "./warm-defaults";
import { Recovery, recoverWarmStack } from "./warm-recovery";
import { selectStack } from "./workspace";

/** What `warmstack preview` and `warmstack up` report about the warm stack. */
export interface WarmSummary {
  stack: "warm";
  operation: "preview" | "up";
  ok: boolean;
  plan: PlannedApp[];
  holds: Hold[];
  deployed: Record<string, string>;
  changes: Record<string, number>;
  /** Each recipe's fetch from its remote before the plan; a failed one was planned from the checkout it had. */
  fetches: RecipeFetch[];
  /** What a crashed operation had left, and was settled first. */
  recovered: Recovery;
  error?: string;
  elapsedMs: number;
  /** Where the time went, in order: selecting the stack, settling a crash, fetching recipes and writing config, the engine (the program and its live reads). */
  phasesMs: { select: number; recover: number; prepare: number; engine: number };
}

/** The program's stack outputs, caught from the engine's events (a preview returns none). */
function outputsCollector() {
  let outputs: Record<string, unknown> = {};
  const onEvent = (event: EngineEvent) => {
    const metadata = event.resOutputsEvent?.metadata;
    if (metadata?.type === "pulumi:pulumi:Stack" && metadata.new?.outputs) outputs = metadata.new.outputs;
  };
  return { onEvent, outputs: () => outputs };
}

/** An up planned from a checkout its remote could not refresh is worth an alert: a new release may be missed. */
async function alertFailedFetches(stack: Stack, fetches: readonly RecipeFetch[]): Promise<void> {
  const config = await stack.getAllConfig();
  const alertDir = config[`${CONFIG_NAMESPACE}:alertDir`]?.value;
  if (!alertDir) return;
  const webhook = config[`${CONFIG_NAMESPACE}:alertWebhook`]?.value;
  for (const fetch of fetches.filter((entry) => entry.outcome === "failed")) {
    const reason = `could not fetch recipe ${fetch.recipe} from ${fetch.source} (${fetch.detail}); the warm stack was planned from the checkout it had`;
    await raiseAlert(alertDir, { app: fetch.recipe, from: null, to: null, outcome: "fetch-failed", severity: "warning", reason }, webhook);
  }
}

/**
 * A preview or an up of the warm stack, after settling what a crashed operation left. `retry` names the
 * warm apps whose failed upgrade may be tried again (the program reads it from the environment, as it
 * does under a plain `pulumi up`); `lockTimeoutSeconds` bounds the wait for a live operation's lock.
 */
export async function runWarm(context: RunnerContext, operation: "preview" | "up", quiet: boolean, asked: { retry?: readonly string[]; lockTimeoutSeconds?: number } = {}): Promise<WarmSummary> {
  const progress = context.progress(quiet);
  const { settings } = context;
  if (asked.retry?.length) process.env.WARMSTACK_RETRY = asked.retry.join(",");
  progress.say(`${operation} warm: backend ${withoutCredentials(settings.backendUrl)}`);
  const phase = phaseClock();
  const stack = await selectStack("warm", settings, warmOperationMark());
  const select = phase();
  // A preview takes no lock: it goes ahead beside a live operation, and settles nothing under it.
  const lockTimeoutSeconds = asked.lockTimeoutSeconds ?? 900;
  const deadline = operation === "preview" ? null : { at: Date.now() + lockTimeoutSeconds * 1000, ofSeconds: lockTimeoutSeconds };
  const { heldBy: _held, ...recovered } = await recoverWarmStack(stack, settings, progress, deadline);
  const recover = phase();
  const fetches = await prepareWarmStack(context, stack, progress);
  if (operation === "up") await alertFailedFetches(stack, fetches);
  const prepare = phase();
  const collector = outputsCollector();
  const options = { onOutput: progress.engineOutput("warm"), onEvent: collector.onEvent };
  let changes: Record<string, number> = {};
  let error: string | undefined;
  try {
    if (operation === "preview") changes = (await stack.preview(options)).changeSummary as Record<string, number>;
    else changes = ((await stack.up(options)).summary.resourceChanges ?? {}) as Record<string, number>;
  } catch (caught) {
    error = engineFailure(caught).reason;
  }
  const engine = phase();
  const outputs = collector.outputs();
  return {
    stack: "warm",
    operation,
    ok: error === undefined,
    plan: (outputs.plan as PlannedApp[] | undefined) ?? [],
    holds: (outputs.holds as Hold[] | undefined) ?? [],
    // A preview only knows the versions it will ask for; what runs is known after an up.
    deployed: operation === "up" ? ((outputs.deployed as Record<string, string> | undefined) ?? {}) : {},
    changes,
    fetches,
    recovered,
    error,
    elapsedMs: progress.elapsedMs(),
    phasesMs: { select, recover, prepare, engine },
  };
}

/** Each call returns the milliseconds since the previous one (the first, since the clock was made). */
function phaseClock(): () => number {
  let last = Date.now();
  return () => {
    const now = Date.now();
    const since = now - last;
    last = now;
    return since;
  };
}

export function renderWarmSummary(summary: WarmSummary): string {
  const seconds = (ms: number) => `${(ms / 1000).toFixed(1)}s`;
  const { select, recover, prepare, engine } = summary.phasesMs;
  const phases = `stack ${seconds(select)}, recovery ${seconds(recover)}, fetches and config ${seconds(prepare)}, engine ${seconds(engine)}`;
  const lines = [`warm stack ${summary.operation}: ${summary.ok ? "ok" : "FAILED"} in ${seconds(summary.elapsedMs)} (${phases})`];
  if (summary.recovered.clearedLocks.length > 0 || summary.recovered.endedPids.length > 0) {
    lines.push(`  RECOVERED from a crashed operation: ${summary.recovered.clearedLocks.length} dead lock(s) cleared, ${summary.recovered.endedPids.length} stray process(es) ended${summary.recovered.refreshed ? ", state refreshed against the live system" : ""}`);
  }
  for (const fetch of summary.fetches.filter((entry) => entry.outcome === "failed")) {
    lines.push(`  WARNING recipe ${fetch.recipe}: could not fetch ${fetch.source}; planned from the checkout it has (${fetch.detail})`);
  }
  for (const app of summary.plan) {
    const canary = app.canary ? `, after a canary of ${app.canary.join(", ")} on a copy of it` : "";
    const movement = app.action === "stay" ? `stays at ${app.current}` : `${app.current ?? "(not deployed)"} → ${app.target}${canary}`;
    const deployed = summary.deployed[app.app];
    const running = deployed && deployed !== app.target ? `, running ${deployed}` : "";
    const down = app.down ? (summary.operation === "preview" ? ", DOWN: up brings it back" : ", was DOWN") : "";
    lines.push(`  ${app.app} (${app.domain}): ${movement}${running}${down}`);
  }
  for (const hold of summary.holds) {
    lines.push(`  HOLD ${hold.app}: ${hold.to} held at ${hold.from} — ${hold.reason} at ${hold.blockedAt}: ${hold.detail}`);
    for (const line of hold.lines) lines.push(`      ${line}`);
  }
  if (summary.error) lines.push(`  error: ${summary.error}`);
  return `${lines.join("\n")}\n`;
}
