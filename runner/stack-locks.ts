import { readFile } from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import { pulumiLockRecords } from "../infra/adapters/pulumi-locks";
import type { RunnerSettings } from "./workspace";

/**
 * A Pulumi stack's locks in a DIY backend (files or postgres rows naming the CLI's pid and host),
 * judged: a lock whose owner is provably dead may be cleared; one whose owner lives, or that cannot be
 * judged from here, never is. Other backends keep their locks elsewhere: their locks are not read
 * here, and the engine's own "currently locked" error stands.
 */
export interface StackLock {
  file: string;
  pid?: number;
  host?: string;
  since?: string;
  /**
   * dead: the pid is gone on this host, or is a program other than the Pulumi CLI; live: it runs;
   * foreign: another host's, which this host cannot judge; unreadable: not a lock Pulumi wrote.
   */
  owner: "dead" | "live" | "foreign" | "unreadable";
}

/** Whether the pid runs the Pulumi CLI (a reused pid of another program means the lock's owner is gone). */
async function isPulumi(pid: number): Promise<boolean | undefined> {
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ESRCH") return undefined;
  }
  const commandLine = await readFile(`/proc/${pid}/cmdline`, "latin1").catch(() => "");
  const program = path.basename(commandLine.split("\0")[0] ?? "");
  return program === "" || program.startsWith("pulumi");
}

export function describeLock(lock: StackLock): string {
  if (lock.owner === "unreadable") return `${lock.file}, which is not a lock Pulumi wrote`;
  return `pid ${lock.pid} on ${lock.host}${lock.since ? ` since ${lock.since}` : ""} (${lock.file})`;
}

export async function stackLocks(settings: RunnerSettings, stack: string): Promise<StackLock[]> {
  const locks: StackLock[] = [];
  for (const record of await pulumiLockRecords(settings.backendUrl, stack)) {
    let content: { pid?: unknown; hostname?: unknown; timestamp?: unknown };
    try {
      content = JSON.parse(record.text ?? "") as typeof content;
    } catch {
      locks.push({ file: record.where, owner: "unreadable" });
      continue;
    }
    const pid = Number(content.pid);
    const host = typeof content.hostname === "string" ? content.hostname : "";
    if (!Number.isInteger(pid) || pid <= 0 || host === "") {
      locks.push({ file: record.where, owner: "unreadable" });
      continue;
    }
    const since = typeof content.timestamp === "string" ? content.timestamp : undefined;
    // The CLI names the machine's own hostname, whatever WARMSTACK_HOST_ID says: its pid is judged on this machine.
    const owner = host !== os.hostname() ? "foreign" : (await isPulumi(pid)) ? "live" : "dead";
    locks.push({ file: record.where, pid, host, since, owner });
  }
  return locks;
}
