import { readdir, readFile } from "node:fs/promises";
import { processAlive, thisHost } from "../infra/adapters/liveness";
import { runStackNameSchema } from "../infra/naming";

/**
 * An operation marks its processes with a variable in their environment: the runner sets it for the
 * Pulumi CLI, whose language host and dynamic-provider processes inherit it in process groups of
 * their own, and for the recipe's tests. Killing the runner does not kill them; finding them by that
 * mark is how a run's own cleanup, the reaper and the next operation end what is left.
 */
export const RUN_STACK_ENV = "WARMSTACK_RUN_STACK";

/**
 * Every warm-stack operation of the runner marks its engine's processes with the runner's own pid
 * and host: a process whose runner is gone is a stray of a dead operation.
 */
export const WARM_OPERATION_ENV = "WARMSTACK_WARM_OPERATION";

export function warmOperationMark(): Record<string, string> {
  return { [WARM_OPERATION_ENV]: `${process.pid}@${thisHost()}` };
}

/** The pids (other than this process) whose environment holds a value of `name` that `accepts`. */
async function processesWith(name: string, accepts: (value: string) => boolean): Promise<number[]> {
  const pids: number[] = [];
  const prefix = `${name}=`;
  for (const entry of await readdir("/proc")) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    // Processes of other users, or gone meanwhile, cannot be read: they are not ours to end.
    const environ = await readFile(`/proc/${pid}/environ`, "latin1").catch(() => "");
    if (environ.split("\0").some((variable) => variable.startsWith(prefix) && accepts(variable.slice(prefix.length)))) pids.push(pid);
  }
  return pids;
}

/** The pids (other than this process) whose environment holds `NAME=value` exactly. */
export function processesMarked(mark: string): Promise<number[]> {
  const separator = mark.indexOf("=");
  return processesWith(mark.slice(0, separator), (value) => value === mark.slice(separator + 1));
}


/** Ends the processes of warm-stack operations whose runner on this host is gone; returns their pids. */
export async function endStrayWarmProcesses(graceMs = 5000): Promise<number[]> {
  const here = thisHost();
  const stray = (value: string) => {
    const [pid, host] = value.split("@");
    return host === here && !processAlive(Number(pid));
  };
  return endPids(await processesWith(WARM_OPERATION_ENV, stray), () => processesWith(WARM_OPERATION_ENV, stray), graceMs);
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ESRCH") throw error;
  }
}

/** SIGTERM, then SIGKILL for whatever is left after the grace period; returns the pids that were found. */
async function endPids(found: number[], stillThere: () => Promise<number[]>, graceMs: number): Promise<number[]> {
  for (const pid of found) signal(pid, "SIGTERM");
  const deadline = Date.now() + graceMs;
  let left = found;
  while (left.length > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 200));
    const still = new Set(await stillThere());
    left = left.filter((pid) => still.has(pid));
  }
  for (const pid of left) signal(pid, "SIGKILL");
  return found;
}

export async function endProcessesMarked(mark: string, graceMs = 5000): Promise<number[]> {
  return endPids(await processesMarked(mark), () => processesMarked(mark), graceMs);
}

function runMark(stack: string): string {
  return `${RUN_STACK_ENV}=${runStackNameSchema.parse(stack)}`;
}

export function runProcesses(stack: string): Promise<number[]> {
  return processesMarked(runMark(stack));
}

export function endRunProcesses(stack: string, graceMs?: number): Promise<number[]> {
  return endProcessesMarked(runMark(stack), graceMs);
}
