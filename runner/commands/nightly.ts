import { Command } from "commander";
import { z } from "zod";
import { defaultCatalogueFile, loadCatalogue } from "../catalogue";
import { Progress } from "../progress";
import { isRegistrationLive, listRegistrations } from "../run-registry";
import { warmContext } from "../run-context";
import { renderWarmSummary, runWarm, WarmSummary } from "../warm-run";
import { runnerSettings } from "../workspace";
import { parseRunRequest, runRecipe } from "./run";

/**
 * `warmstack nightly`: the scheduled job. It moves the warm stack to its newest safe versions, then
 * runs each enrolled recipe cold on its latest release, one after another, so every green one
 * promotes its canonical. It does nothing while a run is in flight: a canonical that a quick run has
 * borrowed must not be promoted under it, and the warm Keycloak must not restart under a realm test.
 */
const requestSchema = z.object({
  maxTests: z.coerce.number().int().min(0).max(1000),
  catalogue: z.string().min(1),
  keycloakDomain: z.string().optional(),
  json: z.boolean(),
});

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
  return (await listRegistrations(stateDir)).filter(isRegistrationLive).map((registration) => registration.stack);
}

export async function nightly(request: z.infer<typeof requestSchema>, progress: Progress): Promise<NightlyReport> {
  const settings = runnerSettings();
  const running = await inFlight(settings.stateDir);
  if (running.length > 0) return { skipped: true, reason: `runs in flight: ${running.join(", ")}`, runs: [], notRun: [], ok: true };

  progress.say("nightly: up of the warm stack");
  const warm = await runWarm("up", request.json);
  progress.say(`nightly: warm stack ${warm.ok ? "ok" : `FAILED (${warm.error})`}`);
  const catalogue = await loadCatalogue(request.catalogue);
  const context = await warmContext(settings);
  const candidates = context.enrolled.filter((recipe) => catalogue.catalogue.recipes[recipe]?.canonical).sort();
  const chosen = candidates.slice(0, request.maxTests);
  const runs: NightlyRun[] = [];
  for (const recipe of chosen) {
    progress.say(`nightly: cold run of ${recipe} on its latest release`);
    try {
      const run = parseRunRequest({
        recipe,
        ref: "",
        quick: false,
        catalogue: request.catalogue,
        keycloakDomain: request.keycloakDomain,
        leaseTimeoutSeconds: "0",
      });
      const report = await runRecipe(run, progress);
      runs.push({ recipe, outcome: report.results.outcome, promotion: `${report.results.promotion.outcome}: ${report.results.promotion.reason}`, resultsFile: report.resultsFile });
      if (report.received) break;
    } catch (error) {
      runs.push({ recipe, outcome: "error", error: error instanceof Error ? error.message : String(error) });
    }
  }
  const ok = warm.ok && runs.every((run) => run.outcome === "passed");
  return { skipped: false, warm, runs, notRun: candidates.slice(chosen.length), ok };
}

function render(report: NightlyReport): string {
  if (report.skipped) return `nightly: skipped (${report.reason})\n`;
  const lines = [renderWarmSummary(report.warm!).trimEnd()];
  for (const run of report.runs) lines.push(`cold run ${run.recipe}: ${run.outcome}${run.promotion ? `; promotion ${run.promotion}` : ""}${run.error ? `; ${run.error}` : ""}`);
  if (report.notRun.length > 0) lines.push(`not run tonight (--max-tests): ${report.notRun.join(", ")}`);
  return `${lines.join("\n")}\n`;
}

export function registerNightly(program: Command): void {
  program
    .command("nightly")
    .description("up the warm stack, then a cold run of each enrolled recipe on its latest release (each green one promotes); skipped while a run is in flight")
    .option("--max-tests <n>", "at most this many cold runs tonight", "10")
    .option("--catalogue <file>", "the recipe catalogue (default: WARMSTACK_CATALOGUE or catalogue.yaml in the project)")
    .option("--keycloak-domain <domain>", "the shared Keycloak (default: WARMSTACK_KEYCLOAK_DOMAIN or the warm stack's)")
    .option("--json", "print a machine-readable report on stdout")
    .action(async (options: { maxTests: string; catalogue?: string; keycloakDomain?: string; json?: boolean }) => {
      const parsed = requestSchema.safeParse({
        maxTests: options.maxTests,
        catalogue: options.catalogue ?? defaultCatalogueFile(runnerSettings().projectDir),
        keycloakDomain: options.keycloakDomain ?? (process.env.WARMSTACK_KEYCLOAK_DOMAIN || undefined),
        json: Boolean(options.json),
      });
      if (!parsed.success) throw new Error(parsed.error.issues.map((issue) => `--${String(issue.path[0]).replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}: ${issue.message}`).join("; "));
      const report = await nightly(parsed.data, new Progress(parsed.data.json));
      process.stdout.write(parsed.data.json ? `${JSON.stringify(report, null, 2)}\n` : render(report));
      if (!report.ok) process.exitCode = 1;
    });
}
