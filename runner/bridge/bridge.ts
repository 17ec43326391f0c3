import { randomBytes } from "node:crypto";
import { createWriteStream, existsSync } from "node:fs";
import { mkdir, readFile } from "node:fs/promises";
import * as path from "node:path";
import { execa } from "execa";
import { Forge, StatusState } from "../../infra/adapters/forge";
import type { LoadedCatalogue } from "../catalogue";
import type { RunnerContext } from "../context";
import { reapDeadRuns } from "../reap";
import { parseResults, RunResults } from "../results";
import { enqueue, Job, nextJob, pruneJobs, rememberDelivery, seenDelivery, updateJob } from "./queue";
import { QueueStore } from "./queue-store";
import { decideComment, deliveryIdOf, eventOf, isTrusted, parseIssueComment, Refusal, remoteKey, untrustedReply, verifySignature } from "./webhook";
import { processAlive, thisHost } from "../../infra/adapters/liveness";

/**
 * The forge bridge: hears `!testme` on pull requests through the forge's webhooks, queues the run it
 * asks for durably, runs it (`warmstack run`, a process of its own), and answers on the PR with the
 * head commit's status and the run's summary as a comment. It trusts a delivery only when it is signed
 * with the webhook secret, and a comment only when its author may push to the repository.
 */
export interface BridgeOptions {
  catalogue: LoadedCatalogue;
  webhookSecret: string;
  maxConcurrent: number;
  /** Where the bridge is reached from outside, for the statuses' links; default: no link. */
  publicUrl?: string;
  /** One structured line per event. */
  log: (event: string, fields: Record<string, unknown>) => void;
}

export interface DeliveryAnswer {
  status: number;
  body: Record<string, unknown>;
}

const CONTEXTS = { cold: "warmstack/cold", quick: "warmstack/quick" } as const;
const CLI = path.resolve(__dirname, "..", "cli.js");
const THIS_HOST = thisHost();

function describeStatus(job: Job, what: string): string {
  return job.mode === "quick" ? `${what} — quick lane: lower-confidence, never a required check` : what;
}


export class Bridge {
  private readonly store: QueueStore;
  private readonly children = new Map<string, Promise<void>>();
  private stopping = false;
  private botLogin = "";

  constructor(
    private readonly context: RunnerContext,
    private readonly forge: Forge,
    private readonly options: BridgeOptions,
  ) {
    this.store = QueueStore.at(context.settings.stateDir);
  }

  private jobDir(id: string): string {
    return path.join(this.context.settings.stateDir, "bridge", "jobs", id);
  }

  /** Learns who the bridge is, then settles what a previous bridge left: runs it was watching, answers it owed. */
  async start(): Promise<void> {
    this.botLogin = await this.forge.currentUser();
    const state = await this.store.read();
    for (const job of state.jobs.filter((entry) => entry.state === "running")) {
      if (job.pid !== undefined && job.host === THIS_HOST && processAlive(job.pid)) this.watch(job.id, this.adopted(job));
      else await this.finish(job.id, "a bridge restart found it had stopped");
    }
    for (const job of state.jobs.filter((entry) => !entry.reported && (entry.state === "finished" || entry.state === "interrupted" || entry.state === "superseded"))) await this.report(job.id);
    this.options.log("bridge-started", { bot: this.botLogin, queued: state.jobs.filter((job) => job.state === "queued").length });
    this.dispatch();
  }

  /** Stops taking work: running runs are asked to stop (they clean up and write their results), queued ones stay for the next start. */
  async stop(): Promise<void> {
    this.stopping = true;
    const state = await this.store.read();
    for (const job of state.jobs.filter((entry) => entry.state === "running" && entry.pid !== undefined)) {
      try {
        process.kill(job.pid!, "SIGTERM");
      } catch {
        // Gone already: its watcher settles it.
      }
    }
    await Promise.all(this.children.values());
    this.options.log("bridge-stopped", { queued: (await this.store.read()).jobs.filter((job) => job.state === "queued").length });
  }

  async view(): Promise<Record<string, unknown>> {
    const { jobs } = await this.store.read();
    const shown = (job: Job) => ({ id: job.id, recipe: job.recipe, repository: job.repository, pr: job.pr, sha: job.sha, mode: job.mode, commenter: job.commenter, state: job.state, stack: job.stack, outcome: job.outcome, detail: job.detail, queuedAt: job.queuedAt, startedAt: job.startedAt, finishedAt: job.finishedAt });
    return {
      queued: jobs.filter((job) => job.state === "queued").map(shown),
      running: jobs.filter((job) => job.state === "running").map(shown),
      recent: jobs.filter((job) => job.state !== "queued" && job.state !== "running").slice(-50).reverse().map(shown),
    };
  }

  /** One delivery from the forge, checked in order: signature, replay, event, payload; only then does anything happen. */
  async delivery(headers: Record<string, string | undefined>, rawBody: Buffer): Promise<DeliveryAnswer> {
    const refused = (refusal: Refusal): DeliveryAnswer => {
      this.options.log("delivery-refused", { status: refusal.status, reason: refusal.reason, delivery: deliveryIdOf(headers) });
      return { status: refusal.status, body: { error: refusal.reason } };
    };
    const unsigned = verifySignature(rawBody, this.options.webhookSecret, headers);
    if (unsigned) return refused(unsigned);
    const deliveryId = deliveryIdOf(headers);
    if (deliveryId === undefined) return refused({ status: 400, reason: "no delivery id (X-Gitea-Delivery)" });
    if (seenDelivery(await this.store.read(), deliveryId)) return refused({ status: 409, reason: `delivery ${deliveryId} was already received` });
    if (this.stopping) return { status: 503, body: { error: "the bridge is stopping; redeliver later" } };
    const event = eventOf(headers);
    if (event !== "issue_comment") return this.accepted(deliveryId, "ignored", { event: event ?? "(none)" });
    let payload: unknown;
    try {
      payload = JSON.parse(rawBody.toString("utf8"));
    } catch {
      return refused({ status: 400, reason: "the body is not JSON" });
    }
    const parsed = parseIssueComment(payload);
    if ("refusal" in parsed) return refused(parsed.refusal);
    const comment = parsed.event;
    const decision = decideComment(comment, this.botLogin);
    const where = { repository: comment.repository.full_name, pr: comment.issue.number, commenter: comment.comment.user.login };
    if (decision.kind === "ignore") return this.accepted(deliveryId, "ignored", { ...where, reason: decision.reason });
    if (decision.kind === "refuse") {
      await this.forge.comment(where.repository, where.pr, decision.reply);
      return this.accepted(deliveryId, "refused", { ...where, reason: decision.reason });
    }
    const permission = await this.forge.permission(decision.repository, decision.commenter);
    if (!isTrusted(permission)) {
      await this.forge.comment(decision.repository, decision.pr, untrustedReply(decision.commenter, decision.repository));
      return this.accepted(deliveryId, "untrusted", { ...where, permission });
    }
    const recipe = this.recipeOf(decision.cloneUrl);
    if (recipe === undefined) {
      await this.forge.comment(decision.repository, decision.pr, `@${decision.commenter}: no run started: ${decision.repository} is not a recipe this CI tests (no catalogue entry has it as its source).`);
      return this.accepted(deliveryId, "unknown-repository", { ...where, cloneUrl: decision.cloneUrl });
    }
    const head = await this.forge.pullRequest(decision.repository, decision.pr);
    if (head.state !== "open") {
      await this.forge.comment(decision.repository, decision.pr, `@${decision.commenter}: no run started: this pull request is ${head.merged ? "merged" : "closed"}.`);
      return this.accepted(deliveryId, "closed", where);
    }
    const job: Job = {
      id: randomBytes(6).toString("hex"),
      recipe,
      repository: decision.repository,
      pr: decision.pr,
      sha: head.sha,
      ...(head.headRepository !== decision.repository && head.headCloneUrl ? { headRepo: head.headCloneUrl } : {}),
      mode: decision.mode,
      commenter: decision.commenter,
      deliveryId,
      state: "queued",
      queuedAt: new Date().toISOString(),
      reported: false,
    };
    const superseded = await this.store.update((state) => {
      const added = enqueue(rememberDelivery(state, deliveryId, new Date()), job);
      return { state: added.state, value: added.superseded };
    });
    await this.setStatus(job, "pending", "queued");
    for (const old of superseded) await this.report(old.id);
    this.options.log("run-queued", { job: job.id, recipe, mode: job.mode, sha: job.sha, ...where, superseded: superseded.map((old) => old.id) });
    this.dispatch();
    return { status: 202, body: { outcome: "queued", job: job.id } };
  }

  private async accepted(deliveryId: string, outcome: string, fields: Record<string, unknown>): Promise<DeliveryAnswer> {
    await this.store.update((state) => ({ state: rememberDelivery(state, deliveryId, new Date()), value: undefined }));
    this.options.log(`delivery-${outcome}`, { delivery: deliveryId, ...fields });
    return { status: 202, body: { outcome } };
  }

  /** The catalogue entry whose source is this repository. */
  private recipeOf(cloneUrl: string): string | undefined {
    const key = remoteKey(cloneUrl);
    return Object.entries(this.options.catalogue.catalogue.recipes).find(([, entry]) => entry.source !== undefined && remoteKey(entry.source) === key)?.[0];
  }

  private statusUrl(job: Job): string | undefined {
    return this.options.publicUrl ? `${this.options.publicUrl.replace(/\/+$/, "")}/runs/${job.id}` : undefined;
  }

  private async setStatus(job: Job, state: StatusState, what: string): Promise<void> {
    await this.forge.setStatus(job.repository, job.sha, { state, context: CONTEXTS[job.mode], description: describeStatus(job, what), targetUrl: this.statusUrl(job) });
  }

  /** Starts queued runs while slots are free; safe to call at any time. */
  private dispatch(): void {
    if (this.stopping) return;
    void this.store
      .update((state) => {
        const job = nextJob(state, this.options.maxConcurrent);
        if (!job) return { state, value: undefined };
        return { state: updateJob(state, job.id, { state: "running", startedAt: new Date().toISOString(), host: THIS_HOST }), value: job };
      })
      .then((job) => {
        if (!job) return;
        this.watch(job.id, this.launch(job));
        this.dispatch();
      })
      .catch((error: unknown) => this.options.log("dispatch-failed", { error: error instanceof Error ? error.message : String(error) }));
  }

  private watch(id: string, running: Promise<void>): void {
    const settled = running
      .catch((error: unknown) => this.options.log("run-watch-failed", { job: id, error: error instanceof Error ? error.message : String(error) }))
      .finally(() => {
        this.children.delete(id);
        this.dispatch();
      });
    this.children.set(id, settled);
  }

  /** `warmstack run` for the job, in a process of its own; its results land in the job's directory. */
  private async launch(job: Job): Promise<void> {
    const dir = this.jobDir(job.id);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await this.setStatus(job, "pending", "running").catch((error: unknown) => this.options.log("status-failed", { job: job.id, error: (error as Error).message }));
    const args = ["run", "--recipe", job.recipe, "--ref", job.sha, "--pr", String(job.pr), "--results-dir", dir, ...(job.headRepo ? ["--repo", job.headRepo] : []), ...(job.mode === "quick" ? ["--quick"] : [])];
    const child = execa(process.execPath, [CLI, ...args], { env: { ...this.context.env, WARMSTACK_CATALOGUE: this.options.catalogue.file }, reject: false, stdin: "ignore", stdout: "ignore", stderr: "pipe" });
    const log = createWriteStream(path.join(dir, "run.log"), { mode: 0o600 });
    let stack: string | undefined;
    child.stderr?.on("data", (chunk: Buffer) => {
      log.write(chunk);
      stack ??= /\((run-[a-z0-9-]+-[0-9a-f]{6})\)/.exec(chunk.toString())?.[1];
    });
    await this.store.update((state) => ({ state: updateJob(state, job.id, { pid: child.pid }), value: undefined }));
    this.options.log("run-started", { job: job.id, recipe: job.recipe, mode: job.mode, pr: job.pr, pid: child.pid });
    const ended = await child;
    log.end();
    if (stack) await this.store.update((state) => ({ state: updateJob(state, job.id, { stack }), value: undefined }));
    await this.finish(job.id, `the run exited ${ended.exitCode ?? ended.signal ?? "without a code"}`);
  }

  /** A run of a previous bridge that is still going: it is not our child, so its end is seen by polling. */
  private async adopted(job: Job): Promise<void> {
    this.options.log("run-adopted", { job: job.id, pid: job.pid });
    while (processAlive(job.pid!)) await new Promise((resolve) => setTimeout(resolve, 2000));
    await this.finish(job.id, "the run ended while a restarted bridge watched it");
  }

  private async results(id: string): Promise<RunResults | undefined> {
    const file = path.join(this.jobDir(id), "results.json");
    if (!existsSync(file)) return undefined;
    try {
      return parseResults(JSON.parse(await readFile(file, "utf8")));
    } catch {
      return undefined;
    }
  }

  /** Records how the run ended (its results, or interrupted when it left none: then it is reaped) and answers on the PR. */
  private async finish(id: string, why: string): Promise<void> {
    const results = await this.results(id);
    const job = (await this.store.read()).jobs.find((entry) => entry.id === id)!;
    if (!results) {
      await this.store.update((state) => ({ state: updateJob(state, id, { state: "interrupted", outcome: "interrupted", finishedAt: new Date().toISOString(), detail: `interrupted: ${why}, leaving no results` }), value: undefined }));
      this.options.log("run-interrupted", { job: id, stack: job.stack, why });
      await reapDeadRuns(this.context, { recipe: job.recipe }, (line) => this.options.log("reap", { job: id, line })).catch((error: unknown) =>
        this.options.log("reap-failed", { job: id, error: error instanceof Error ? error.message : String(error) }),
      );
    } else {
      await this.store.update((state) => ({
        state: updateJob(state, id, { state: "finished", outcome: results.outcome, stack: results.stack, finishedAt: results.finishedAt, detail: results.error ?? `tests ${results.tests.outcome}` }),
        value: undefined,
      }));
      this.options.log("run-finished", { job: id, stack: results.stack, outcome: results.outcome, lane: results.lane, durationMs: results.durationMs });
    }
    await this.report(id);
  }

  /** The final status and the comment; a forge that is down is retried (bounded), and the job says whether it got them. */
  private async report(id: string): Promise<void> {
    const job = (await this.store.read()).jobs.find((entry) => entry.id === id)!;
    try {
      if (job.state === "superseded") {
        await this.setStatus(job, "error", "replaced by a newer !testme");
      } else if (job.state === "interrupted") {
        await this.setStatus(job, "error", "interrupted before it finished");
        await this.forge.comment(job.repository, job.pr, `### warmstack: ${job.recipe} INTERRUPTED\n\nThe ${job.mode} run of \`${job.sha.slice(0, 12)}\` was interrupted before it finished (${job.detail ?? "no results"}); what it left has been reaped. Comment \`!testme\` to run it again.\n`);
      } else {
        const results = (await this.results(id))!;
        const state: StatusState = results.outcome === "passed" ? "success" : results.outcome === "interrupted" ? "error" : "failure";
        await this.setStatus(job, state, `${results.outcome} in ${Math.round(results.durationMs / 1000)} s (${results.lane ?? "no"} lane)`);
        await this.forge.comment(job.repository, job.pr, await readFile(path.join(this.jobDir(id), "summary.md"), "utf8"));
      }
      await this.store.update((state) => ({ state: pruneJobs(updateJob(state, id, { reported: true })), value: undefined }));
      this.options.log("run-reported", { job: id, state: job.state });
    } catch (error) {
      this.options.log("report-failed", { job: id, error: error instanceof Error ? error.message : String(error), kept: this.jobDir(id) });
    }
  }
}
