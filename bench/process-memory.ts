// Peak resident memory of a process tree while it runs (a warmstack run: the runner, the Pulumi CLI,
// the language host, the program and its dynamic-provider processes, and what they start), read
// from /proc at a fixed interval. Linux only, as the bed is.
import { readdir, readFile } from "node:fs/promises";

/** What a process of a run is, by its command line. */
export type ProcessRole = "runner" | "pulumi CLI" | "language host" | "program" | "dynamic providers" | "tools (docker, git, tests)";

export function roleOf(commandLine: readonly string[]): ProcessRole {
  const joined = commandLine.join(" ");
  if (/dynamic-provider|pulumi-resource-pulumi-nodejs/.test(joined)) return "dynamic providers";
  if (/pulumi-language-nodejs/.test(joined)) return "language host";
  if (/\/runner\/cli\.js\b/.test(joined)) return "runner";
  if (/@pulumi\/pulumi\/cmd\/run|\/stacks\/[a-z-]+\.js\b/.test(joined)) return "program";
  if (/(^|\/)pulumi$/.test(commandLine[0] ?? "")) return "pulumi CLI";
  return "tools (docker, git, tests)";
}

interface Seen {
  pid: number;
  ppid: number;
  rssKb: number;
  commandLine: string[];
}

async function processTable(): Promise<Seen[]> {
  const pids = (await readdir("/proc")).filter((entry) => /^[0-9]+$/.test(entry));
  const seen = await Promise.all(
    pids.map(async (pid): Promise<Seen | undefined> => {
      try {
        const [status, cmdline] = await Promise.all([readFile(`/proc/${pid}/status`, "utf8"), readFile(`/proc/${pid}/cmdline`, "utf8")]);
        const ppid = Number(/^PPid:\s+(\d+)/m.exec(status)?.[1]);
        const rssKb = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? 0);
        return { pid: Number(pid), ppid, rssKb, commandLine: cmdline.split("\0").filter(Boolean) };
      } catch {
        return undefined; // gone between the listing and the read
      }
    }),
  );
  return seen.filter((entry): entry is Seen => entry !== undefined);
}

function descendants(root: number, table: readonly Seen[]): Seen[] {
  const children = new Map<number, Seen[]>();
  for (const entry of table) {
    const siblings = children.get(entry.ppid);
    if (siblings) siblings.push(entry);
    else children.set(entry.ppid, [entry]);
  }
  const found: Seen[] = [];
  const stack = [root];
  while (stack.length > 0) {
    for (const child of children.get(stack.pop()!) ?? []) {
      found.push(child);
      stack.push(child.pid);
    }
  }
  return found;
}

/** Per role: the largest sum over its processes at one instant, and the largest single process, in MB. */
export type MemoryPeaks = Partial<Record<ProcessRole | "whole run", { peakMb: number; largestProcessMb: number }>>;

/** One instant of the tree, as peaks. */
function peaksOf(tree: readonly Seen[]): MemoryPeaks {
  const byRole = new Map<ProcessRole | "whole run", number[]>();
  for (const entry of tree) {
    for (const role of [roleOf(entry.commandLine), "whole run"] as const) byRole.set(role, [...(byRole.get(role) ?? []), entry.rssKb]);
  }
  const mb = (kb: number) => Math.round(kb / 1024);
  return Object.fromEntries([...byRole].map(([role, sizes]) => [role, { peakMb: mb(sizes.reduce((a, b) => a + b, 0)), largestProcessMb: mb(Math.max(...sizes)) }]));
}

/** Samples the tree under `rootPid` (itself included) until `stop` resolves; returns the peaks. */
export async function samplePeaks(rootPid: number, stop: Promise<unknown>, intervalMs = 250): Promise<MemoryPeaks> {
  let peaks: MemoryPeaks = {};
  let stopped = false;
  void stop.finally(() => {
    stopped = true;
  });
  while (!stopped) {
    const table = await processTable();
    const root = table.find((entry) => entry.pid === rootPid);
    peaks = mergePeaks(peaks, peaksOf([...(root ? [root] : []), ...descendants(rootPid, table)]));
    await Promise.race([new Promise((resolve) => setTimeout(resolve, intervalMs)), stop.catch(() => undefined)]);
  }
  return peaks;
}

/** The larger of each figure of two sets of peaks. */
export function mergePeaks(a: MemoryPeaks, b: MemoryPeaks): MemoryPeaks {
  const merged: MemoryPeaks = { ...a };
  for (const [role, peak] of Object.entries(b) as [keyof MemoryPeaks, { peakMb: number; largestProcessMb: number }][]) {
    const before = merged[role];
    merged[role] = before ? { peakMb: Math.max(before.peakMb, peak.peakMb), largestProcessMb: Math.max(before.largestProcessMb, peak.largestProcessMb) } : peak;
  }
  return merged;
}
