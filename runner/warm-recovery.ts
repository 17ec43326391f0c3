import { Stack } from "@pulumi/pulumi/automation";
import { endStrayWarmProcesses } from "./processes";
import { describeLock, StackLock, stackLocks } from "./stack-locks";
import type { RunnerSettings } from "./workspace";

/**
 * Before an operation on the warm stack: what a crashed operation left is settled, so a nightly timer
 * never needs a person. The stray processes of a dead operation (its dynamic provider finishes
 * unobserved and then idles) are ended first; a lock whose owner is provably dead is cancelled; and
 * then a refresh, clearing pending creates, resolves what the state recorded as under way against
 * the live system (each resource's read). A lock whose owner lives, or that this host cannot judge,
 * is never touched: the operation waits for it until its deadline, then fails naming the owner.
 */
export interface Recovery {
  /** Stray processes of dead operations that were ended. */
  endedPids: number[];
  /** Locks of dead owners that were cleared. */
  clearedLocks: StackLock[];
  /** What the state recorded was resolved by a refresh. */
  refreshed: boolean;
}

export class WarmStackLockedError extends Error {
  constructor(readonly locks: StackLock[], waitedSeconds: number) {
    super(`the warm stack stayed locked for more than ${waitedSeconds}s by ${locks.map(describeLock).join("; ")}; nothing was done`);
    this.name = "WarmStackLockedError";
  }
}

const POLL_MS = 2000;

/** Where recovery says what it did: a command's progress, or a reap's report. */
export interface RecoveryLog {
  say(line: string): void;
  engineOutput?(stack: string): (chunk: string) => void;
}

/**
 * `deadline`: until when a held lock is waited for (and the timeout the operation was given, for the
 * error); `null` for an operation that does not need the lock (a preview, a reap), which then goes
 * ahead beside the live owner and recovers nothing.
 */
export async function recoverWarmStack(stack: Stack, settings: RunnerSettings, progress: RecoveryLog, deadline: { at: number; ofSeconds: number } | null): Promise<Recovery & { heldBy: StackLock[] }> {
  let said = false;
  for (;;) {
    const locks = await stackLocks(settings, stack.name);
    const held = locks.filter((lock) => lock.owner !== "dead");
    if (held.length === 0) return { ...(await clear(stack, locks, progress)), heldBy: [] };
    if (deadline === null) return { endedPids: [], clearedLocks: [], refreshed: false, heldBy: held };
    if (Date.now() >= deadline.at) throw new WarmStackLockedError(held, deadline.ofSeconds);
    if (!said) progress.say(`the warm stack is locked by ${held.map(describeLock).join("; ")}; waiting for it`);
    said = true;
    await new Promise((resolve) => setTimeout(resolve, Math.min(POLL_MS, Math.max(0, deadline.at - Date.now()))));
  }
}

async function clear(stack: Stack, deadLocks: StackLock[], progress: RecoveryLog): Promise<Recovery> {
  const endedPids = await endStrayWarmProcesses();
  if (endedPids.length > 0) progress.say(`recovered: ended ${endedPids.length} stray process(es) of a warm-stack operation whose runner is gone (pids ${endedPids.join(", ")})`);
  if (deadLocks.length === 0) return { endedPids, clearedLocks: [], refreshed: false };
  for (const lock of deadLocks) progress.say(`recovered: the warm stack's lock of ${describeLock(lock)} names a process that is gone; cancelling it`);
  await stack.cancel();
  // The dead operation may have left pending operations (a create the provider finished unobserved):
  // the resources' reads settle them against what runs, and every create adopts its own leftovers.
  progress.say("recovered: refreshing the warm stack against the live system (pending creates are cleared; the next up adopts what they made)");
  await stack.refresh({ clearPendingCreates: true, onOutput: progress.engineOutput?.("warm") });
  return { endedPids, clearedLocks: deadLocks, refreshed: true };
}
