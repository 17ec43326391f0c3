import { randomBytes } from "node:crypto";
import { mkdir, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import { z } from "zod";
import type { RunRegistration } from "../infra/reaper";
import { runStackNameSchema } from "../infra/naming";

/**
 * A run announces itself in `<stateDir>/runs/<stack>.json` for as long as it runs. This is the
 * reaper's only evidence that a run stack is live: age says nothing about a slow run, and a process
 * killed with SIGKILL cannot clean up, so its file stays and names a pid that is gone. A run must
 * register before it creates its stack, or a reap in between would judge the new stack stale.
 */
const registrationSchema = z
  .object({
    stack: runStackNameSchema,
    pid: z.number().int().positive(),
    host: z.string().min(1),
    startedAt: z.string().refine((value) => !Number.isNaN(Date.parse(value)), { error: "is not a timestamp" }),
  })
  .strict();

function registryDir(stateDir: string): string {
  return path.join(stateDir, "runs");
}

function registrationFile(stateDir: string, stack: string): string {
  return path.join(registryDir(stateDir), `${runStackNameSchema.parse(stack)}.json`);
}

/** A run's own working files (its ABRA_DIR): removed with its registration. */
export function runWorkDir(stateDir: string, stack: string): string {
  return path.join(registryDir(stateDir), runStackNameSchema.parse(stack));
}

export async function registerRun(stateDir: string, stack: string, pid = process.pid): Promise<RunRegistration> {
  const registration: RunRegistration = { stack: runStackNameSchema.parse(stack), pid, host: os.hostname(), startedAt: new Date().toISOString() };
  const file = registrationFile(stateDir, stack);
  await mkdir(registryDir(stateDir), { recursive: true, mode: 0o700 });
  // Written aside and renamed, so a reaper never reads half a registration.
  const tmp = `${file}.${randomBytes(6).toString("hex")}.tmp`;
  await writeFile(tmp, `${JSON.stringify(registration)}\n`, { mode: 0o600, flag: "wx" });
  await rename(tmp, file);
  return registration;
}

export async function unregisterRun(stateDir: string, stack: string): Promise<void> {
  await rm(registrationFile(stateDir, stack), { force: true });
}

export async function listRegistrations(stateDir: string): Promise<RunRegistration[]> {
  let names: string[];
  try {
    names = await readdir(registryDir(stateDir));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw error;
  }
  const registrations: RunRegistration[] = [];
  for (const name of names.filter((n) => n.endsWith(".json")).sort()) {
    const file = path.join(registryDir(stateDir), name);
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

/**
 * A process on another host cannot be checked from here, so its run counts as live: the reaper never
 * judges a run elsewhere by age alone. A reused pid also counts as live, which errs on the safe side.
 */
export function isRegistrationLive(registration: RunRegistration): boolean {
  if (registration.host !== os.hostname()) return true;
  try {
    process.kill(registration.pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to another user.
    return (error as NodeJS.ErrnoException).code !== "ESRCH";
  }
}
