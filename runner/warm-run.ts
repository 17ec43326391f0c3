import { EngineEvent } from "@pulumi/pulumi/automation";
import type { Hold } from "../infra/gate";
import type { PlannedApp } from "../stacks/warm";
import { parseWarmRetry } from "../infra/config";
import { Progress } from "./progress";
import { applyWarmDefaults } from "./warm-defaults";
import { runnerSettings, selectStack } from "./workspace";

/** What `warmstack preview` and `warmstack up` report about the warm stack. */
export interface WarmSummary {
  stack: "warm";
  operation: "preview" | "up";
  ok: boolean;
  plan: PlannedApp[];
  holds: Hold[];
  deployed: Record<string, string>;
  changes: Record<string, number>;
  error?: string;
  elapsedMs: number;
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

export async function runWarm(operation: "preview" | "up", quiet: boolean): Promise<WarmSummary> {
  const progress = new Progress(quiet);
  const settings = runnerSettings();
  progress.say(`${operation} warm: backend ${settings.backendUrl}`);
  const stack = await selectStack("warm", settings);
  await applyWarmDefaults(stack, settings);
  const collector = outputsCollector();
  const options = { onOutput: progress.engineOutput("warm"), onEvent: collector.onEvent };
  let changes: Record<string, number> = {};
  let error: string | undefined;
  try {
    if (operation === "preview") changes = (await stack.preview(options)).changeSummary as Record<string, number>;
    else changes = ((await stack.up(options)).summary.resourceChanges ?? {}) as Record<string, number>;
  } catch (caught) {
    error = caught instanceof Error ? caught.message.split("\n").find((line) => /error:/.test(line))?.trim() ?? "the engine failed" : String(caught);
  }
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
    error,
    elapsedMs: progress.elapsedMs(),
  };
}

export function renderWarmSummary(summary: WarmSummary): string {
  const lines = [`warm stack ${summary.operation}: ${summary.ok ? "ok" : "FAILED"} in ${(summary.elapsedMs / 1000).toFixed(1)}s`];
  for (const app of summary.plan) {
    const movement = app.action === "stay" ? `stays at ${app.current}` : `${app.current ?? "(not deployed)"} → ${app.target}`;
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

/** The action of `warmstack preview` and `warmstack up`: a summary as text or JSON; exit 1 on failure. */
export function warmAction(operation: "preview" | "up") {
  return async (options: { json?: boolean; retry?: string[] }) => {
    // The program reads the retry list from the environment, as it does under a plain `pulumi up`.
    if (options.retry) process.env.WARMSTACK_RETRY = parseWarmRetry(options.retry, "--retry").join(",");
    const summary = await runWarm(operation, Boolean(options.json));
    process.stdout.write(options.json ? `${JSON.stringify(summary, null, 2)}\n` : renderWarmSummary(summary));
    if (!summary.ok) process.exitCode = 1;
  };
}
