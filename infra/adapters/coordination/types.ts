import { z } from "zod";
import { leasedCanonicalSchema } from "../../config";
import type { LeasedCanonical } from "../../config";
import { recipeNameSchema, runStackNameSchema, WARM_LEASE_HOLDER } from "../../naming";

/**
 * What every runner and provider on the CI coordinates through, one interface with two backends of
 * the same semantics: `file` (one machine: files under the state directory, a holder judged by its
 * pid on this host and by its heartbeat from another), and `postgres` (several runners on several
 * hosts: rows and advisory locks, a holder judged by its heartbeat only).
 *
 * - a **lock**: mutual exclusion for a short piece of work (Keycloak writes, the warm config);
 * - a **lease**: a canonical lent to one quick run (or held by the warm stack while it changes it);
 * - a **registration**: a run announcing itself for as long as it runs.
 */
export const leaseSchema = z
  .object({
    recipe: recipeNameSchema,
    /** The run stack that borrowed the canonical, or WARM_LEASE_HOLDER while the warm stack changes it. */
    stack: z.union([runStackNameSchema, z.literal(WARM_LEASE_HOLDER)]),
    host: z.string().min(1),
    /** The holder's process; leases written before it was recorded have none. */
    pid: z.number().int().positive().optional(),
    takenAt: z.string(),
    /** When the holder last said it is alive (the warm stack's hold; a run's lease lives by its registration). */
    heartbeatAt: z.string().optional(),
    canonical: leasedCanonicalSchema,
    /** The idle canonical's volumes when it was lent: the ones the put-back restores. */
    volumes: z.array(z.string().regex(/^[a-z0-9][a-z0-9_.-]*$/)).optional(),
  })
  .strict();
export type Lease = z.infer<typeof leaseSchema>;

export const registrationSchema = z
  .object({
    stack: runStackNameSchema,
    pid: z.number().int().positive(),
    host: z.string().min(1),
    startedAt: z.string().refine((value) => !Number.isNaN(Date.parse(value)), { error: "is not a timestamp" }),
    /** When the run last said it is alive. */
    heartbeatAt: z.string().optional(),
  })
  .strict();
export type Registration = z.infer<typeof registrationSchema>;

/** Who holds something, as liveness is judged: on this host by pid (file), or by heartbeat age. */
export interface Holder {
  host: string;
  pid?: number;
  heartbeatAt?: string;
  /** How old the heartbeat is by the backend's own clock (postgres), when it reports one. */
  heartbeatAgeMs?: number;
}

export type TakeResult = { taken: true; lease: Lease; adopted: boolean } | { taken: false; holder: Lease };

export interface Coordination {
  /** Where it lives, for messages: a directory, or a database's host (never a password). */
  readonly where: string;
  readonly kind: "file" | "postgres";

  /** Runs `work` while holding the named lock; waits for a live holder until the deadline, then fails naming it. */
  withLock<T>(name: string, options: { what: string; timeoutMs: number }, work: () => Promise<T>): Promise<T>;

  /** Takes the lease if it is free; "held" names the holder. Holding it already counts as taken (adopted). */
  tryTakeLease(recipe: string, stack: string, canonical: LeasedCanonical): Promise<TakeResult>;
  /** The lease of a recipe's canonical, or null when it is free. An unreadable lease is an error, never "free". */
  readLease(recipe: string): Promise<Lease | null>;
  listLeases(): Promise<Lease[]>;
  recordLeasedVolumes(recipe: string, stack: string, volumes: string[]): Promise<void>;
  /** The holder says it is alive. */
  heartbeatLease(recipe: string, stack: string): Promise<void>;
  /** Releases the lease only if `stack` holds it: a lease someone else took meanwhile is never touched. */
  releaseLease(recipe: string, stack: string): Promise<boolean>;

  /** A run announces itself before it creates anything, so a reap in between never judges it stale. */
  register(stack: string, pid?: number): Promise<Registration>;
  heartbeat(stack: string): Promise<void>;
  unregister(stack: string): Promise<void>;
  listRegistrations(): Promise<Registration[]>;

  /** Whether a holder is alive by this backend's rule; a holder that cannot be judged counts as alive. */
  isLive(holder: Holder): boolean;
  close(): Promise<void>;
}

export const HEARTBEAT_MS = 20_000;
/** A holder's heartbeat older than this is a dead holder's (heartbeats come every HEARTBEAT_MS). */
export const HEARTBEAT_EXPIRY_MS = 120_000;
export const HEARTBEAT_EXPIRY_ENV = "WARMSTACK_HEARTBEAT_EXPIRY_SECONDS";

/**
 * The expiry every runner of a CI must agree on; an operator raises it where a runner can stall
 * longer than two minutes (a swapping host, a slow link to the database) without being dead.
 */
export function heartbeatExpiryMs(env: NodeJS.ProcessEnv = process.env): number {
  const text = env[HEARTBEAT_EXPIRY_ENV];
  if (text === undefined || text === "") return HEARTBEAT_EXPIRY_MS;
  const seconds = Number(text);
  if (!/^[0-9]+$/.test(text) || seconds * 1000 < 3 * HEARTBEAT_MS) {
    throw new Error(`${HEARTBEAT_EXPIRY_ENV} must be a whole number of seconds of at least ${(3 * HEARTBEAT_MS) / 1000} (three heartbeats), not ${JSON.stringify(text)}`);
  }
  return seconds * 1000;
}

export { WARM_LEASE_HOLDER };
