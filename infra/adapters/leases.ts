import { randomBytes } from "node:crypto";
import { link, mkdir, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import { z } from "zod";
import { LeasedCanonical, leasedCanonicalSchema } from "../config";
import { assertRecipeName, recipeNameSchema, runStackNameSchema, WARM_LEASE_HOLDER } from "../naming";
import { DeadlineError, waitUntil } from "./health";

/**
 * A canonical's lease: `<stateDir>/leases/<recipe>.json`, one quick run at a time. The file names the
 * run stack that holds it and carries everything needed to put the canonical back (its app, the
 * known-good, the snapshot store), so whoever finds the lease of a dead run — the run's own cleanup or
 * `warmstack reap` — can restore the canonical without reading any stack's state.
 *
 * The warm stack takes the same lease (holder WARM_LEASE_HOLDER, with its pid) while it promotes or
 * de-enrols a canonical, so a quick run never borrows a canonical that is being changed, and a
 * change never starts under a quick run.
 */

const leaseSchema = z
  .object({
    recipe: recipeNameSchema,
    /** The run stack that borrowed the canonical, or WARM_LEASE_HOLDER while the warm stack changes it. */
    stack: z.union([runStackNameSchema, z.literal(WARM_LEASE_HOLDER)]),
    host: z.string().min(1),
    /** The holder's process; leases written before it was recorded have none. */
    pid: z.number().int().positive().optional(),
    takenAt: z.string(),
    canonical: leasedCanonicalSchema,
    /** The idle canonical's volumes when it was lent: the ones the put-back restores. */
    volumes: z.array(z.string().regex(/^[a-z0-9][a-z0-9_.-]*$/)).optional(),
  })
  .strict();
export type Lease = z.infer<typeof leaseSchema>;

function leaseDir(stateDir: string): string {
  return path.join(stateDir, "leases");
}

export function leaseFile(stateDir: string, recipe: string): string {
  return path.join(leaseDir(stateDir), `${assertRecipeName(recipe)}.json`);
}

/** The lease of a recipe's canonical, or null when it is free. An unreadable lease is an error, never "free". */
export async function readLease(stateDir: string, recipe: string): Promise<Lease | null> {
  const file = leaseFile(stateDir, recipe);
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw error;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new Error(`lease ${file} is not JSON; remove it by hand once no quick run of ${recipe} is running, after restoring the canonical`);
  }
  const result = leaseSchema.safeParse(parsed);
  if (!result.success || result.data.recipe !== recipe) {
    throw new Error(`lease ${file} is not a valid lease of ${recipe}; remove it by hand once no quick run of ${recipe} is running, after restoring the canonical`);
  }
  return result.data;
}

export async function listLeases(stateDir: string): Promise<Lease[]> {
  const names = await readdir(leaseDir(stateDir)).catch((error: NodeJS.ErrnoException) => {
    if (error.code === "ENOENT") return [] as string[];
    throw error;
  });
  const leases: Lease[] = [];
  const recipes = names.filter((entry) => entry.endsWith(".json")).map((entry) => entry.slice(0, -".json".length));
  for (const recipe of recipes.filter((name) => recipeNameSchema.safeParse(name).success).sort()) {
    const lease = await readLease(stateDir, recipe);
    if (lease) leases.push(lease);
  }
  return leases;
}

/** Takes the lease if it is free; "held" names the current holder. Holding it already counts as taken. */
export async function tryTakeLease(
  stateDir: string,
  recipe: string,
  stack: string,
  canonical: LeasedCanonical,
): Promise<{ taken: true; lease: Lease; adopted: boolean } | { taken: false; holder: Lease }> {
  const lease: Lease = { recipe, stack, host: os.hostname(), pid: process.pid, takenAt: new Date().toISOString(), canonical };
  const file = leaseFile(stateDir, recipe);
  await mkdir(leaseDir(stateDir), { recursive: true, mode: 0o700 });
  // Written aside, then linked into place: the link fails if the lease exists, and a reader never
  // sees half a lease.
  const tmp = `${file}.${randomBytes(6).toString("hex")}.tmp`;
  await writeFile(tmp, `${JSON.stringify(lease)}\n`, { mode: 0o600, flag: "wx" });
  try {
    await link(tmp, file);
    return { taken: true, lease, adopted: false };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
  } finally {
    await rm(tmp, { force: true });
  }
  const holder = await readLease(stateDir, recipe);
  if (holder === null) return tryTakeLease(stateDir, recipe, stack, canonical);
  if (holder.stack === stack) return { taken: true, lease: holder, adopted: true };
  return { taken: false, holder };
}

/** Waits for the lease until the deadline; null when it stayed held (the caller falls back and says so). */
export async function waitForLease(
  stateDir: string,
  recipe: string,
  stack: string,
  canonical: LeasedCanonical,
  timeoutMs: number,
): Promise<{ lease: Lease; adopted: boolean; waitedMs: number } | { lease: null; holder: string; waitedMs: number }> {
  const started = Date.now();
  try {
    const taken = await waitUntil(
      `the lease of canonical ${recipe}`,
      async () => {
        const attempt = await tryTakeLease(stateDir, recipe, stack, canonical);
        if (attempt.taken) return { done: true, value: attempt };
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

/** Records the lent canonical's volumes in the holder's lease (replaced whole, never half-written). */
export async function recordLeasedVolumes(stateDir: string, recipe: string, stack: string, volumes: string[]): Promise<void> {
  const holder = await readLease(stateDir, recipe);
  if (holder?.stack !== stack) throw new Error(`the lease of canonical ${recipe} is not held by ${stack} (${holder ? `held by ${holder.stack}` : "free"})`);
  const file = leaseFile(stateDir, recipe);
  const tmp = `${file}.${randomBytes(6).toString("hex")}.tmp`;
  await writeFile(tmp, `${JSON.stringify({ ...holder, volumes })}\n`, { mode: 0o600, flag: "wx" });
  await rename(tmp, file);
}

/** Releases the lease only if `stack` holds it: a lease someone else took meanwhile is never touched. */
export async function releaseLease(stateDir: string, recipe: string, stack: string): Promise<boolean> {
  const holder = await readLease(stateDir, recipe);
  if (holder?.stack !== stack) return false;
  // Renamed away first, so a concurrent taker never sees the file vanish under a reader.
  const file = leaseFile(stateDir, recipe);
  const gone = `${file}.${randomBytes(6).toString("hex")}.released`;
  await rename(file, gone);
  await rm(gone, { force: true });
  return true;
}
