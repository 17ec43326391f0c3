import { execa } from "execa";
import { z } from "zod";

/**
 * One run of a recipe by the runner's own run command (`warmstack run … --json`), as a Keycloak
 * canary starts it: a process of its own, registered and reaped like any run, whose results.json
 * arrives on its stdout.
 */
export interface CanaryRunRequest {
  /** The run command's program and first arguments, e.g. [node, …/dist/runner/cli.js, "run"]. */
  command: readonly string[];
  recipe: string;
  keycloakDomain: string;
  catalogue: string;
  stateDir: string;
  timeoutMs: number;
}

export interface CanaryRunResult {
  recipe: string;
  outcome: "passed" | "failed" | "interrupted" | "no-result";
  /** The run stack, when the run got as far as reporting it. */
  stack: string | null;
  failedStep: string | null;
  /** One bounded line: the run's error, or why there is no result. */
  error: string | null;
  resultsFile: string | null;
}

const reportedSchema = z.object({
  stack: z.string(),
  outcome: z.enum(["passed", "failed", "interrupted"]),
  failedStep: z.string().nullable(),
  error: z.string().nullable(),
  resultsFile: z.string(),
});

/** A run that overruns gets SIGTERM (it destroys its stack, as at Ctrl-C), then this long before SIGKILL. */
const CLEANUP_GRACE_MS = 180_000;

export async function runCanaryRecipe(request: CanaryRunRequest): Promise<CanaryRunResult> {
  const [program, ...first] = request.command;
  if (!program) throw new Error("the canary's run command is empty");
  const ran = await execa(
    program,
    [...first, "--recipe", request.recipe, "--keycloak-domain", request.keycloakDomain, "--catalogue", request.catalogue, "--canary", "--json"],
    {
      env: { WARMSTACK_STATE_DIR: request.stateDir },
      timeout: request.timeoutMs,
      killSignal: "SIGTERM",
      forceKillAfterDelay: CLEANUP_GRACE_MS,
      reject: false,
      stdin: "ignore",
    },
  );
  const noResult = (why: string): CanaryRunResult => ({ recipe: request.recipe, outcome: "no-result", stack: null, failedStep: null, error: why, resultsFile: null });
  if (ran.timedOut) return noResult(`the run did not finish within ${Math.round(request.timeoutMs / 60_000)} min`);
  let reported: unknown;
  try {
    reported = JSON.parse(String(ran.stdout));
  } catch {
    return noResult(`the run exited ${ran.exitCode ?? ran.signal ?? "?"} without results: ${lastLine(String(ran.stderr))}`);
  }
  const parsed = reportedSchema.safeParse(reported);
  if (!parsed.success) return noResult(`the run's results do not read as results.json: ${parsed.error.issues[0]?.message ?? "invalid"}`);
  const { stack, outcome, failedStep, error, resultsFile } = parsed.data;
  return { recipe: request.recipe, outcome, stack, failedStep, error: error === null ? null : error.slice(0, 500), resultsFile };
}

function lastLine(text: string): string {
  return text.trim().split("\n").at(-1)?.slice(0, 500) || "no output";
}
