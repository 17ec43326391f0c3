import { readdir, readFile } from "node:fs/promises";
import * as path from "node:path";
import { execa, ResultPromise } from "execa";
import * as swarm from "../../infra/adapters/swarm";
import type { ReapReport } from "../../runner/reap";
import type { RunResults } from "../../runner/results";
import { proxyUrl } from "./bed";
import { PulumiProject, REPO_ROOT } from "./pulumi-project";

/** The `warmstack` CLI on a test project, with its fixture's catalogue, else the repository's (the fixture recipes on the bed's Gitea). */
export function warmstack(project: PulumiProject, args: readonly string[], env: Record<string, string> = {}): ResultPromise<{ reject: false; all: true; timeout: number }> {
  return execa("node", [path.join(REPO_ROOT, "dist", "runner", "cli.js"), ...args], {
    env: { WARMSTACK_CATALOGUE: path.join(REPO_ROOT, "catalogue.yaml"), ...project.env(), WARMSTACK_PROXY_URL: proxyUrl(), ...env },
    reject: false,
    all: true,
    timeout: 1_200_000,
  });
}

/** `warmstack reap --json` on a project, with its parsed report. */
export async function reapReport(project: PulumiProject, args: readonly string[] = []): Promise<{ exitCode: number | undefined; output: string; report: ReapReport }> {
  const run = await warmstack(project, ["reap", "--json", ...args]);
  let report: ReapReport;
  try {
    report = JSON.parse(String(run.stdout)) as ReapReport;
  } catch {
    throw new Error(`reap printed no JSON report (exit ${run.exitCode}):\n${String(run.all)}`);
  }
  return { exitCode: run.exitCode, output: String(run.all), report };
}

/** results.json of a finished run, found by its stack name in the run's output, or the only one there is. */
export async function runResults(project: PulumiProject, stack?: string): Promise<RunResults[]> {
  const dir = path.join(project.stateDir, "results");
  const stacks = stack ? [stack] : await readdir(dir).catch(() => [] as string[]);
  return Promise.all(stacks.map(async (name) => JSON.parse(await readFile(path.join(dir, name, "results.json"), "utf8")) as RunResults));
}

/** The run stack a runner's progress lines name (they all carry it). */
export function stackNamed(output: string): string | undefined {
  return /\b(run-[a-z0-9-]+-[0-9a-f]{6})\b/.exec(output)?.[1];
}

export interface FinishedRun {
  exitCode: number | undefined;
  output: string;
  /** The run stack its progress named; undefined when the run was refused before it had one. */
  stack?: string;
  results?: RunResults;
}

/** `warmstack <args>` to its end, with the results.json of the run stack it names. */
export async function runToEnd(project: PulumiProject, args: readonly string[], env: Record<string, string> = {}): Promise<FinishedRun> {
  const run = await warmstack(project, args, env);
  const output = String(run.all);
  const stack = stackNamed(output);
  const results = stack ? (await runResults(project, stack))[0] : undefined;
  return { exitCode: run.exitCode, output, stack, results };
}

export interface Leftovers {
  stacks: string[];
  services: string[];
  networks: string[];
  volumes: string[];
  leases: string[];
  registrations: string[];
}

/**
 * What a run could leave behind, for one recipe's runs: run stacks in the backend, swarm services,
 * networks and volumes of run domains (`<recipe[:4]>-<hex>`), leases and run registrations.
 * `baseDomain` limits the swarm objects to run domains under it, so suites with base domains of
 * their own never see each other's runs on the shared daemon.
 */
export async function leftovers(project: PulumiProject, recipe: string, options: { baseDomain?: string } = {}): Promise<Leftovers> {
  const prefix = `${recipe.slice(0, 4).replace(/-+$/, "")}-`;
  const under = options.baseDomain === undefined ? "" : `${options.baseDomain.replace(/\./g, "_").replace(/[^a-z0-9_-]/g, "")}_`;
  const runName = new RegExp(`^${prefix}[0-9a-f]{6}_${under}`);
  const listed = async (args: string[]) => (await swarm.docker(args)).split("\n").filter((name) => runName.test(name));
  const stacksOutput = await project.pulumi(["stack", "ls", "--json"]);
  const stacks = stacksOutput.exitCode === 0 ? (JSON.parse(stacksOutput.output) as { name: string }[]).map((entry) => entry.name).filter((name) => name.startsWith(`run-${recipe}-`)) : [];
  const coordination = project.coordination();
  return {
    stacks,
    services: await listed(["service", "ls", "--format", "{{.Name}}"]),
    networks: await listed(["network", "ls", "--format", "{{.Name}}"]),
    volumes: await listed(["volume", "ls", "--format", "{{.Name}}"]),
    leases: (await coordination.listLeases()).map((lease) => lease.recipe),
    registrations: (await coordination.listRegistrations()).map((registration) => registration.stack).filter((name) => name.startsWith(`run-${recipe}-`)),
  };
}

export const NOTHING_LEFT: Leftovers = { stacks: [], services: [], networks: [], volumes: [], leases: [], registrations: [] };
