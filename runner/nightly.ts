import { loadCatalogue } from "./catalogue";
import type { RunnerContext } from "./context";
import { Progress } from "./progress";
import { runRecipe } from "./run";
import { coordinationAt } from "../infra/adapters/coordination";
import { warmContext } from "./warm-context";
import { renderWarmSummary, runWarm, WarmSummary } from "./warm-run";

/**
 * Nightly: the scheduled job. It moves the warm stack to its newest safe versions, then
 * runs each enrolled recipe cold on its latest release, one after another, so every green one
 * promotes its canonical. It does nothing while a run is in flight: a canonical that a quick run has
 * borrowed must not be promoted under it, and the warm Keycloak must not restart under a realm test.
 */
export interface NightlyRequest {
  /** At most this many cold runs tonight; the rest wait for another night. */
  maxTests: number;
  catalogue: string;
  keycloakDomain?: string;
  json: boolean;
}

export interface NightlyRun {
  recipe: string;
  outcome: "passed" | "failed" | "interrupted" | "error";
  promotion?: string;
  resultsFile?: string;
  error?: string;
}

export interface NightlyReport {
  skipped: boolean;
  /** Why nothing ran, when skipped. */
  reason?: string;
  warm?: WarmSummary;
  runs: NightlyRun[];
  /** Enrolled recipes left for another night by --max-tests. */
  notRun: string[];
  ok: boolean;
}

async function inFlight(stateDir: string): Promise<string[]> {
  const coordination = coordinationAt(stateDir);
  return (await coordination.listRegistrations()).filter((registration) => coordination.isLive(registration)).map((registration) => registration.stack);
}

export async function nightly(context: RunnerContext, request: NightlyRequest, progress: Progress): Promise<NightlyReport> {
  const { settings } = context;
  const running = await inFlight(settings.stateDir);
  if (running.length > 0) return { skipped: true, reason: `runs in flight: ${running.join(", ")}`, runs: [], notRun: [], ok: true };

  progress.say("nightly: up of the warm stack");
  const warm = await runWarm(context, "up", request.json);
  progress.say(`nightly: warm stack ${warm.ok ? "ok" : `FAILED (${warm.error})`}`);
  const catalogue = await loadCatalogue(request.catalogue);
  const enrolled = (await warmContext(context)).enrolled;
  const candidates = enrolled.filter((recipe) => catalogue.catalogue.recipes[recipe]?.canonical).sort();
  const chosen = candidates.slice(0, request.maxTests);
  const runs: NightlyRun[] = [];
  for (const recipe of chosen) {
    progress.say(`nightly: cold run of ${recipe} on its latest release`);
    try {
      const run = { recipe, ref: "", quick: false, catalogue: request.catalogue, keycloakDomain: request.keycloakDomain, leaseTimeoutSeconds: 0 };
      const report = await runRecipe(context, run, progress);
      runs.push({ recipe, outcome: report.results.outcome, promotion: `${report.results.promotion.outcome}: ${report.results.promotion.reason}`, resultsFile: report.resultsFile });
      if (report.received) break;
    } catch (error) {
      runs.push({ recipe, outcome: "error", error: error instanceof Error ? error.message : String(error) });
    }
  }
  const ok = warm.ok && runs.every((run) => run.outcome === "passed");
  return { skipped: false, warm, runs, notRun: candidates.slice(chosen.length), ok };
}

export function renderNightly(report: NightlyReport): string {
  if (report.skipped) return `nightly: skipped (${report.reason})\n`;
  const lines = [renderWarmSummary(report.warm!).trimEnd()];
  for (const run of report.runs) lines.push(`cold run ${run.recipe}: ${run.outcome}${run.promotion ? `; promotion ${run.promotion}` : ""}${run.error ? `; ${run.error}` : ""}`);
  if (report.notRun.length > 0) lines.push(`not run tonight (--max-tests): ${report.notRun.join(", ")}`);
  return `${lines.join("\n")}\n`;
}
