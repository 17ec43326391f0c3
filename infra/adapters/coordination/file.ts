import { randomBytes } from "node:crypto";
import { link, mkdir, open, readdir, readFile, rename, rm, stat } from "node:fs/promises";
import * as path from "node:path";
import type { LeasedCanonical } from "../../config";
import { assertRecipeName, recipeNameSchema, runStackNameSchema } from "../../naming";
import { writeFileAtomic } from "../atomic-file";
import { DeadlineError } from "../health";
import { processAlive, thisHost } from "../liveness";
import { Coordination, HEARTBEAT_EXPIRY_MS, Holder, Lease, leaseSchema, Registration, registrationSchema, TakeResult } from "./types";

/**
 * Coordination through files under one machine's state directory, the embedded default:
 * `locks/<name>.lock`, `leases/<recipe>.json`, `runs/<stack>.json`. Every file is written aside,
 * flushed and then renamed or linked into place, so a reader never sees half of one. A holder on this
 * host is alive while its pid runs; one of another host (sharing the directory) by its heartbeat.
 */
export class FileCoordination implements Coordination {
  readonly kind = "file" as const;

  constructor(
    readonly stateDir: string,
    private readonly expiryMs = HEARTBEAT_EXPIRY_MS,
  ) {}

  get where(): string {
    return this.stateDir;
  }

  isLive(holder: Holder): boolean {
    if (holder.host === thisHost() && holder.pid !== undefined) return processAlive(holder.pid);
    // Another host's process cannot be looked at from here: its heartbeat tells, and without one it counts as alive.
    if (holder.heartbeatAt === undefined) return true;
    return Date.now() - Date.parse(holder.heartbeatAt) < this.expiryMs;
  }

  async close(): Promise<void> {}

  // Locks

  withLock<T>(name: string, options: { what: string; timeoutMs: number }, work: () => Promise<T>): Promise<T> {
    return withFileLock(path.join(this.stateDir, "locks", `${name}.lock`), options.what, options.timeoutMs, work);
  }

  // Leases

  private leaseDir(): string {
    return path.join(this.stateDir, "leases");
  }

  leaseFile(recipe: string): string {
    return path.join(this.leaseDir(), `${assertRecipeName(recipe)}.json`);
  }

  async readLease(recipe: string): Promise<Lease | null> {
    const file = this.leaseFile(recipe);
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

  async listLeases(): Promise<Lease[]> {
    const names = await listDir(this.leaseDir());
    const leases: Lease[] = [];
    const recipes = names.filter((entry) => entry.endsWith(".json")).map((entry) => entry.slice(0, -".json".length));
    for (const recipe of recipes.filter((name) => recipeNameSchema.safeParse(name).success).sort()) {
      const lease = await this.readLease(recipe);
      if (lease) leases.push(lease);
    }
    return leases;
  }

  async tryTakeLease(recipe: string, stack: string, canonical: LeasedCanonical): Promise<TakeResult> {
    const now = new Date().toISOString();
    const lease: Lease = { recipe, stack, host: thisHost(), pid: process.pid, takenAt: now, heartbeatAt: now, canonical };
    const file = this.leaseFile(recipe);
    await mkdir(this.leaseDir(), { recursive: true, mode: 0o700 });
    // Written aside and flushed, then linked into place: the link fails if the lease exists.
    const tmp = `${file}.${randomBytes(6).toString("hex")}.tmp`;
    await writeFileAtomic(tmp, `${JSON.stringify(lease)}\n`);
    try {
      await link(tmp, file);
      return { taken: true, lease, adopted: false };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    } finally {
      await rm(tmp, { force: true });
    }
    const holder = await this.readLease(recipe);
    if (holder === null) return this.tryTakeLease(recipe, stack, canonical);
    if (holder.stack === stack) return { taken: true, lease: holder, adopted: true };
    return { taken: false, holder };
  }

  private async rewriteHeld(recipe: string, stack: string, change: (lease: Lease) => Lease): Promise<void> {
    const holder = await this.readLease(recipe);
    if (holder?.stack !== stack) throw new Error(`the lease of canonical ${recipe} is not held by ${stack} (${holder ? `held by ${holder.stack}` : "free"})`);
    await writeFileAtomic(this.leaseFile(recipe), `${JSON.stringify(change(holder))}\n`);
  }

  recordLeasedVolumes(recipe: string, stack: string, volumes: string[]): Promise<void> {
    return this.rewriteHeld(recipe, stack, (lease) => ({ ...lease, volumes }));
  }

  heartbeatLease(recipe: string, stack: string): Promise<void> {
    return this.rewriteHeld(recipe, stack, (lease) => ({ ...lease, heartbeatAt: new Date().toISOString() }));
  }

  async releaseLease(recipe: string, stack: string): Promise<boolean> {
    const holder = await this.readLease(recipe);
    if (holder?.stack !== stack) return false;
    // Renamed away first, so a concurrent taker never sees the file vanish under a reader.
    const file = this.leaseFile(recipe);
    const gone = `${file}.${randomBytes(6).toString("hex")}.released`;
    await rename(file, gone);
    await rm(gone, { force: true });
    return true;
  }

  // Registrations

  private registryDir(): string {
    return path.join(this.stateDir, "runs");
  }

  private registrationFile(stack: string): string {
    return path.join(this.registryDir(), `${runStackNameSchema.parse(stack)}.json`);
  }

  async register(stack: string, pid = process.pid): Promise<Registration> {
    const now = new Date().toISOString();
    const registration: Registration = { stack: runStackNameSchema.parse(stack), pid, host: thisHost(), startedAt: now, heartbeatAt: now };
    await mkdir(this.registryDir(), { recursive: true, mode: 0o700 });
    await writeFileAtomic(this.registrationFile(stack), `${JSON.stringify(registration)}\n`);
    return registration;
  }

  async heartbeat(stack: string): Promise<void> {
    const file = this.registrationFile(stack);
    const current = await readFile(file, "utf8").then((text) => registrationSchema.parse(JSON.parse(text)), () => undefined);
    if (current) await writeFileAtomic(file, `${JSON.stringify({ ...current, heartbeatAt: new Date().toISOString() })}\n`);
  }

  async unregister(stack: string): Promise<void> {
    await rm(this.registrationFile(stack), { force: true });
  }

  async listRegistrations(): Promise<Registration[]> {
    const registrations: Registration[] = [];
    for (const name of (await listDir(this.registryDir())).filter((entry) => entry.endsWith(".json")).sort()) {
      const file = path.join(this.registryDir(), name);
      let text: string;
      try {
        text = await readFile(file, "utf8");
      } catch (error) {
        // Its run ended between readdir and now.
        if ((error as NodeJS.ErrnoException).code === "ENOENT") continue;
        throw error;
      }
      // A registration the reaper cannot read might belong to a live run: refuse to guess.
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        throw new Error(`run registration ${file} is not JSON; remove it by hand once its run is known to be over`);
      }
      const result = registrationSchema.safeParse(parsed);
      if (!result.success || `${result.data.stack}.json` !== name) {
        throw new Error(`run registration ${file} is not a valid registration of ${name.slice(0, -".json".length)}; remove it by hand once its run is known to be over`);
      }
      registrations.push(result.data);
    }
    return registrations;
  }
}

async function listDir(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw error;
  }
}


interface LockOwner {
  pid: number;
  host: string;
  since: string;
}

// An empty lock file is one whose owner is between creating and writing it; if it stays empty this
// long, the owner died in between.
const EMPTY_LOCK_GRACE_MS = 10_000;

/**
 * Runs body while holding an exclusive lock file that names its owner, shared by every process on
 * this state directory. A lock whose owner is a dead process on this host is taken over; a lock of
 * another host is waited for (its pid means nothing here) until the deadline, and the error names
 * the holder.
 */
async function withFileLock<T>(file: string, what: string, timeoutMs: number, body: () => Promise<T>): Promise<T> {
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const me: LockOwner = { pid: process.pid, host: thisHost(), since: "" };
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    me.since = new Date().toISOString();
    if (await createLock(file, me)) break;
    const holder = await readLock(file);
    if (holder === "gone") continue;
    if (holder === "abandoned" || (holder !== "being-written" && holder.host === me.host && !processAlive(holder.pid))) {
      await takeOver(file, holder);
      continue;
    }
    if (Date.now() >= deadline) throw new DeadlineError(what, timeoutMs, `${file} held by ${describeHolder(holder)}`);
    await new Promise((resolve) => setTimeout(resolve, Math.min(100 + Math.random() * 200, Math.max(0, deadline - Date.now()))));
  }
  try {
    return await body();
  } finally {
    await releaseLock(file, me);
  }
}

async function createLock(file: string, owner: LockOwner): Promise<boolean> {
  let handle;
  try {
    handle = await open(file, "wx", 0o600);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw error;
  }
  try {
    await handle.writeFile(JSON.stringify(owner));
    await handle.sync();
  } finally {
    await handle.close();
  }
  return true;
}

async function readLock(file: string): Promise<LockOwner | "gone" | "being-written" | "abandoned"> {
  let text: string;
  let modified: number;
  try {
    [text, modified] = await Promise.all([readFile(file, "utf8"), stat(file).then((info) => info.mtimeMs)]);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return "gone";
    throw error;
  }
  try {
    const owner = JSON.parse(text) as LockOwner;
    if (typeof owner.pid === "number" && typeof owner.host === "string") return owner;
  } catch {
    // Empty or half-written: see below.
  }
  return Date.now() - modified > EMPTY_LOCK_GRACE_MS ? "abandoned" : "being-written";
}

/**
 * Moves the dead owner's lock aside before deleting it, so two processes that both judged it dead
 * cannot delete each other's fresh lock: whoever renamed a lock that is no longer the dead one puts
 * it back.
 */
async function takeOver(file: string, dead: LockOwner | "abandoned"): Promise<void> {
  const aside = `${file}.stale-${process.pid}-${randomBytes(4).toString("hex")}`;
  try {
    await rename(file, aside);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return;
    throw error;
  }
  try {
    const moved = await readFile(aside, "utf8").catch(() => "");
    const stillDead = dead === "abandoned" ? !isOwner(moved) : sameOwner(moved, dead);
    if (!stillDead) await link(aside, file).catch(() => undefined);
  } finally {
    await rm(aside, { force: true });
  }
}

async function releaseLock(file: string, me: LockOwner): Promise<void> {
  const text = await readFile(file, "utf8").catch(() => "");
  if (sameOwner(text, me)) await rm(file, { force: true });
}

function isOwner(text: string): boolean {
  try {
    return typeof (JSON.parse(text) as LockOwner).pid === "number";
  } catch {
    return false;
  }
}

function sameOwner(text: string, owner: LockOwner): boolean {
  try {
    const parsed = JSON.parse(text) as LockOwner;
    return parsed.pid === owner.pid && parsed.host === owner.host && parsed.since === owner.since;
  } catch {
    return false;
  }
}

function describeHolder(holder: LockOwner | "being-written"): string {
  return holder === "being-written" ? "a process that is just taking it" : `pid ${holder.pid} on ${holder.host} since ${holder.since}`;
}
