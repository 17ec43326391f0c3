import { appendFile, readFile } from "node:fs/promises";
import { z } from "zod";

/**
 * What a run's app has gone through so far — the lane it took, each deploy it started, whose lease it
 * waited for — appended to a file beside the run as it happens. A failed `up` returns no outputs, and
 * the results must still say which lane ran and how many deploys it cost.
 */
const eventSchema = z.union([
  z.object({ lane: z.enum(["cold", "quick"]) }).strict(),
  z.object({ deploy: z.string() }).strict(),
  z.object({ leaseHeldBy: z.string() }).strict(),
]);
export type RunProgressEvent = z.infer<typeof eventSchema>;

export interface RunProgress {
  /** The lane last entered (a quick run that falls back records the cold lane after it). */
  lane?: "cold" | "quick";
  deployAttempts: number;
  /** The holder the quick lane found on the canonical's lease, when it had to wait. */
  leaseHeldBy?: string;
}

export async function recordRunProgress(file: string | undefined, event: RunProgressEvent): Promise<void> {
  if (file === undefined) return;
  // A reporting aid: a deploy must not fail because its record could not be written (its dir gone).
  await appendFile(file, `${JSON.stringify(event)}\n`, { mode: 0o600 }).catch(() => undefined);
}

/** Lines that are not events (a write cut off by a kill) are skipped; a missing file is no progress. */
export async function readRunProgress(file: string): Promise<RunProgress> {
  const text = await readFile(file, "utf8").catch(() => "");
  const progress: RunProgress = { deployAttempts: 0 };
  for (const line of text.split("\n").filter(Boolean)) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      continue;
    }
    const event = eventSchema.safeParse(parsed);
    if (!event.success) continue;
    if ("lane" in event.data) progress.lane = event.data.lane;
    else if ("leaseHeldBy" in event.data) progress.leaseHeldBy = event.data.leaseHeldBy;
    else progress.deployAttempts += 1;
  }
  return progress;
}
