import { readdir, readFile } from "node:fs/promises";
import { runStackNameSchema } from "../infra/naming";

/**
 * A run's processes carry `WARMSTACK_RUN_STACK=<stack>` in their environment: the runner sets it for
 * the Pulumi CLI (whose language host and dynamic-provider processes inherit it, in process groups of
 * their own) and for the recipe's tests. Killing the runner does not kill them; finding them by that
 * mark is how the run's own cleanup and the reaper end the whole run on this host.
 */
export const RUN_STACK_ENV = "WARMSTACK_RUN_STACK";

export async function runProcesses(stack: string): Promise<number[]> {
  const mark = `${RUN_STACK_ENV}=${runStackNameSchema.parse(stack)}`;
  const pids: number[] = [];
  for (const entry of await readdir("/proc")) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    // Processes of other users, or gone meanwhile, cannot be read: they are not ours to end.
    const environ = await readFile(`/proc/${pid}/environ`, "latin1").catch(() => "");
    if (environ.split("\0").includes(mark)) pids.push(pid);
  }
  return pids;
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ESRCH") throw error;
  }
}

/** SIGTERM, then SIGKILL for whatever is left after the grace period; returns the pids that were found. */
export async function endRunProcesses(stack: string, graceMs = 5000): Promise<number[]> {
  const found = await runProcesses(stack);
  for (const pid of found) signal(pid, "SIGTERM");
  const deadline = Date.now() + graceMs;
  let left = found;
  while (left.length > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 200));
    const still = new Set(await runProcesses(stack));
    left = left.filter((pid) => still.has(pid));
  }
  for (const pid of left) signal(pid, "SIGKILL");
  return found;
}
