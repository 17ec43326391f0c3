import { OutputMap } from "@pulumi/pulumi/automation";
import { execa } from "execa";
import type { CatalogueEntry } from "../infra/config";
import { endRunProcesses, RUN_STACK_ENV } from "./processes";
import type { RunResults } from "./results";

/**
 * Running a recipe's test command against its run: the app and, for an SSO recipe, the realm reach it
 * through its environment, and its output reaches the results only with every secret replaced.
 */
export interface RecipeTestRun {
  test: CatalogueEntry["test"];
  /** The catalogue's directory: relative programs and the working directory of the tests. */
  cwd: string;
  stack: string;
  recipe: string;
  proxyUrl: string;
  /** The run stack's outputs after its up. */
  outputs: OutputMap;
  /** Aborted when the run is stopped: the tests are ended. */
  signal: AbortSignal;
}

const TAIL_LINES = 40;

export function outputValue(outputs: OutputMap, key: string): string | undefined {
  const entry = outputs[key]?.value;
  return entry === undefined || entry === null ? undefined : String(entry);
}

const OIDC_OUTPUTS: Record<string, string> = {
  OIDC_ISSUER: "issuer",
  OIDC_TOKEN_ENDPOINT: "tokenEndpoint",
  OIDC_CLIENT_ID: "clientId",
  OIDC_CLIENT_SECRET: "clientSecret",
  OIDC_TEST_USER: "testUser",
  OIDC_TEST_PASSWORD: "testUserPassword",
};

/**
 * Nothing of the runner's own environment beyond what a program needs to start: a PR's tests never
 * see admin credentials or the state passphrase.
 */
function testEnvironment(run: RecipeTestRun): Record<string, string> {
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: process.env.HOME ?? "/tmp",
    LANG: process.env.LANG ?? "C.UTF-8",
    TMPDIR: process.env.TMPDIR ?? "/tmp",
    [RUN_STACK_ENV]: run.stack,
    WARMSTACK_RECIPE: run.recipe,
    WARMSTACK_LANE: outputValue(run.outputs, "lane") ?? "cold",
    WARMSTACK_APP_DOMAIN: outputValue(run.outputs, "appDomain") ?? "",
    WARMSTACK_PROXY_URL: run.proxyUrl,
  };
  for (const [name, key] of Object.entries(OIDC_OUTPUTS)) {
    const found = outputValue(run.outputs, key);
    if (found !== undefined) env[name] = found;
  }
  return env;
}

/** Replaces every secret output of the run in text, so test output can go into reports. */
function redact(text: string, outputs: OutputMap): string {
  const secrets = Object.values(outputs)
    .filter((output) => output.secret)
    .map((output) => String(output.value ?? ""))
    .filter((secret) => secret.length >= 4);
  return secrets.reduce((acc, secret) => acc.split(secret).join("***"), text);
}

export async function runRecipeTests(run: RecipeTestRun): Promise<RunResults["tests"]> {
  const [program, ...args] = run.test.command;
  const started = Date.now();
  const timeoutMs = run.test.timeoutSeconds * 1000;
  const subprocess = execa(program, args, {
    cwd: run.cwd,
    env: testEnvironment(run),
    extendEnv: false,
    timeout: timeoutMs,
    cancelSignal: run.signal,
    forceKillAfterDelay: 5000,
    all: true,
    reject: false,
    stdin: "ignore",
  });
  // execa stops only the command itself, then waits until its output is closed: a child the command
  // started (a background `sleep`, a server, a `curl`) keeps it open, and the run would wait for that
  // child however long it runs. Every process of the tests carries the run's mark: end them all.
  const endTheTests = () => void endRunProcesses(run.stack);
  const overtime = setTimeout(endTheTests, timeoutMs + 1000);
  run.signal.addEventListener("abort", endTheTests, { once: true });
  let result: Awaited<typeof subprocess>;
  try {
    result = await subprocess;
  } finally {
    clearTimeout(overtime);
    run.signal.removeEventListener("abort", endTheTests);
  }
  const outputTail = redact(String(result.all ?? ""), run.outputs).trimEnd().split("\n").slice(-TAIL_LINES).join("\n");
  const outcome = result.timedOut ? "timed-out" : result.exitCode === 0 && !result.isCanceled ? "passed" : "failed";
  return { outcome, exitCode: result.exitCode ?? null, durationMs: Date.now() - started, outputTail };
}
