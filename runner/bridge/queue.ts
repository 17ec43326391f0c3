import { z } from "zod";

/**
 * The bridge's queue of runs, as pure transitions over its state (the store persists it). At most
 * `maxConcurrent` run at once and one per (repository, PR, recipe); a newer `!testme` replaces one that
 * is still queued; deliveries already seen are refused, so a replay starts nothing.
 */
const jobSchema = z
  .object({
    id: z.string().regex(/^[0-9a-f]{8,32}$/),
    recipe: z.string(),
    /** The base repository, owner/name. */
    repository: z.string(),
    pr: z.number().int().positive(),
    /** The head commit to test. */
    sha: z.string().regex(/^[0-9a-f]{40}$/),
    /** The head repository's clone URL, for a PR from a fork. */
    headRepo: z.string().optional(),
    mode: z.enum(["cold", "quick"]),
    commenter: z.string(),
    deliveryId: z.string(),
    state: z.enum(["queued", "running", "finished", "interrupted", "superseded"]),
    queuedAt: z.string(),
    startedAt: z.string().optional(),
    finishedAt: z.string().optional(),
    /** The run's process, while it runs. */
    pid: z.number().int().positive().optional(),
    host: z.string().optional(),
    /** The run stack, once the run named it. */
    stack: z.string().optional(),
    /** The run's outcome (results.json's), or error when it left none. */
    outcome: z.enum(["passed", "failed", "interrupted", "error"]).optional(),
    /** One line on what happened, for /runs and the logs. */
    detail: z.string().optional(),
    /** The PR has its final status and comment. */
    reported: z.boolean().default(false),
  })
  .strict();
export type Job = z.infer<typeof jobSchema>;

export const queueStateSchema = z
  .object({
    version: z.literal(1),
    jobs: z.array(jobSchema),
    /** Delivery ids seen, with when: replays are refused for as long as they are kept. */
    deliveries: z.array(z.object({ id: z.string(), at: z.string() }).strict()),
  })
  .strict();
export type QueueState = z.infer<typeof queueStateSchema>;

export const EMPTY_QUEUE: QueueState = { version: 1, jobs: [], deliveries: [] };

const DELIVERY_MEMORY_MS = 7 * 86_400_000;
const FINISHED_KEPT = 200;

function sameTarget(a: Pick<Job, "repository" | "pr" | "recipe">, b: Pick<Job, "repository" | "pr" | "recipe">): boolean {
  return a.repository === b.repository && a.pr === b.pr && a.recipe === b.recipe;
}

export function seenDelivery(state: QueueState, id: string): boolean {
  return state.deliveries.some((delivery) => delivery.id === id);
}

/** Remembers a delivery; those older than a week are forgotten (a forge redelivers within minutes). */
export function rememberDelivery(state: QueueState, id: string, now: Date): QueueState {
  const since = now.getTime() - DELIVERY_MEMORY_MS;
  const kept = state.deliveries.filter((delivery) => Date.parse(delivery.at) >= since);
  return { ...state, deliveries: [...kept, { id, at: now.toISOString() }] };
}

/** Adds a job; a still-queued job for the same PR and recipe is superseded by it (returned, to be told so). */
export function enqueue(state: QueueState, job: Job): { state: QueueState; superseded: Job[] } {
  const superseded: Job[] = [];
  const jobs = state.jobs.map((existing) => {
    if (existing.state !== "queued" || !sameTarget(existing, job)) return existing;
    const replaced = { ...existing, state: "superseded" as const, finishedAt: job.queuedAt, detail: `replaced by a newer request (${job.id})` };
    superseded.push(replaced);
    return replaced;
  });
  return { state: { ...state, jobs: [...jobs, job] }, superseded };
}

/** The next job to start: the oldest queued one whose PR has no run going, if a slot is free. */
export function nextJob(state: QueueState, maxConcurrent: number): Job | undefined {
  const running = state.jobs.filter((job) => job.state === "running");
  if (running.length >= maxConcurrent) return undefined;
  return state.jobs.find((job) => job.state === "queued" && !running.some((other) => sameTarget(other, job)));
}

export function updateJob(state: QueueState, id: string, change: Partial<Job>): QueueState {
  return { ...state, jobs: state.jobs.map((job) => (job.id === id ? { ...job, ...change } : job)) };
}

/** Finished, interrupted and superseded jobs beyond the last FINISHED_KEPT are dropped (their results stay on disk). */
export function pruneJobs(state: QueueState): QueueState {
  const done = state.jobs.filter((job) => job.state !== "queued" && job.state !== "running" && job.reported);
  const drop = new Set(done.slice(0, Math.max(0, done.length - FINISHED_KEPT)).map((job) => job.id));
  return drop.size === 0 ? state : { ...state, jobs: state.jobs.filter((job) => !drop.has(job.id)) };
}
