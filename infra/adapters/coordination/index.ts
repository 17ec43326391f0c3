import type { LeasedCanonical } from "../../config";
import { DeadlineError, waitUntil } from "../health";
import { FileCoordination } from "./file";
import { PostgresCoordination } from "./postgres";
import { Coordination, HEARTBEAT_MS, heartbeatExpiryMs, Lease } from "./types";

export * from "./types";
export { FileCoordination } from "./file";
export { describeDatabase, PostgresCoordination, SCHEMA_VERSION } from "./postgres";

/**
 * The coordination backend, chosen by one setting: WARMSTACK_COORDINATION_URL (postgres://…) for
 * several runners on several hosts, else files under the state directory; WARMSTACK_HEARTBEAT_EXPIRY_SECONDS
 * when two minutes without a heartbeat is not yet death. Read from the environment
 * where it is used — providers included — because the URL may carry a password, which must reach no
 * resource input and no state. One instance per process and backend.
 */
const opened = new Map<string, Coordination>();

export function coordinationAt(stateDir: string, env: NodeJS.ProcessEnv = process.env): Coordination {
  const url = env.WARMSTACK_COORDINATION_URL;
  if (url !== undefined && url !== "" && !/^postgres(ql)?:\/\//.test(url)) {
    throw new Error("WARMSTACK_COORDINATION_URL must be a postgres:// URL (leave it unset for files under the state directory)");
  }
  const expiryMs = heartbeatExpiryMs(env);
  const key = `${url ? `postgres ${url}` : `file ${stateDir}`} ${expiryMs}`;
  let coordination = opened.get(key);
  if (!coordination) opened.set(key, (coordination = url ? new PostgresCoordination(url, expiryMs) : new FileCoordination(stateDir, expiryMs)));
  return coordination;
}

/**
 * Waits for the lease until the deadline; null when it stayed held (the caller falls back and says so).
 * `onHeld` hears of the holder once, when the first attempt finds the lease taken.
 */
export async function waitForLease(
  coordination: Coordination,
  recipe: string,
  stack: string,
  canonical: LeasedCanonical,
  timeoutMs: number,
  onHeld: (holder: Lease) => Promise<void> = async () => undefined,
): Promise<{ lease: Lease; adopted: boolean; waitedMs: number } | { lease: null; holder: string; waitedMs: number }> {
  const started = Date.now();
  let heard = false;
  try {
    const taken = await waitUntil(
      `the lease of canonical ${recipe}`,
      async () => {
        const attempt = await coordination.tryTakeLease(recipe, stack, canonical);
        if (attempt.taken) return { done: true, value: attempt };
        if (!heard) {
          heard = true;
          await onHeld(attempt.holder);
        }
        return { done: false, state: `held by ${attempt.holder.stack} since ${attempt.holder.takenAt}` };
      },
      { timeoutMs, intervalMs: 500 },
    );
    return { lease: taken.lease, adopted: taken.adopted, waitedMs: Date.now() - started };
  } catch (error) {
    if (error instanceof DeadlineError) return { lease: null, holder: error.lastState, waitedMs: Date.now() - started };
    throw error;
  }
}

/**
 * Runs `work` holding the named lock when it is free now, without waiting; when a live holder has it,
 * says who (a lock's holder that died is taken over, as `withLock` does).
 */
export async function ifLockFree<T>(coordination: Coordination, name: string, what: string, work: () => Promise<T>): Promise<{ ran: true; value: T } | { ran: false; holder: string }> {
  let started = false;
  try {
    const value = await coordination.withLock(name, { what, timeoutMs: 0 }, () => {
      started = true;
      return work();
    });
    return { ran: true, value };
  } catch (error) {
    if (started || !(error instanceof DeadlineError)) throw error;
    return { ran: false, holder: error.lastState };
  }
}

/** Keeps saying a holder is alive while `work` runs (a run's registration, the warm stack's hold on a lease). */
export async function whileBeating<T>(beat: () => Promise<void>, work: () => Promise<T>): Promise<T> {
  const timer = setInterval(() => void beat().catch(() => undefined), HEARTBEAT_MS);
  timer.unref();
  try {
    return await work();
  } finally {
    clearInterval(timer);
  }
}
