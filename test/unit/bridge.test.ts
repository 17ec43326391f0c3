import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import fc from "fast-check";
import { EMPTY_QUEUE, enqueue, Job, nextJob, pruneJobs, QueueState, rememberDelivery, seenDelivery, updateJob } from "../../runner/bridge/queue";
import { decideComment, IssueComment, isTrusted, parseIssueComment, remoteKey, verifySignature } from "../../runner/bridge/webhook";

/**
 * The bridge's pure parts: who is believed (signatures, trust), what a comment asks for, how the
 * queue orders runs. The real forge and real deliveries are the integration suite's (forge-bridge).
 */
const SECRET = "the-webhook-secret";
const sign = (body: Buffer, secret = SECRET) => createHmac("sha256", secret).update(body).digest("hex");

describe("delivery signatures", () => {
  const body = Buffer.from(JSON.stringify({ action: "created" }));

  it("accepts Gitea's and GitHub's header forms of the right HMAC", () => {
    assert.equal(verifySignature(body, SECRET, { "x-gitea-signature": sign(body) }), undefined);
    assert.equal(verifySignature(body, SECRET, { "x-hub-signature-256": `sha256=${sign(body)}` }), undefined);
    assert.equal(verifySignature(body, SECRET, { "x-gitea-signature": sign(body).toUpperCase() }), undefined);
  });

  it("refuses a missing, malformed or wrong signature with 401", () => {
    assert.equal(verifySignature(body, SECRET, {})?.status, 401);
    assert.equal(verifySignature(body, SECRET, { "x-gitea-signature": "abc" })?.status, 401);
    assert.equal(verifySignature(body, SECRET, { "x-gitea-signature": sign(body, "another secret") })?.status, 401);
  });

  it("refuses any change of the body, and any other secret", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 256 }), fc.nat(), fc.integer({ min: 1, max: 255 }), (bytes, at, flip) => {
        const original = Buffer.from(bytes);
        const changed = Buffer.from(bytes);
        changed[at % changed.length] ^= flip;
        assert.equal(verifySignature(original, SECRET, { "x-gitea-signature": sign(original) }), undefined);
        assert.equal(verifySignature(changed, SECRET, { "x-gitea-signature": sign(original) })?.status, 401);
      }),
    );
  });
});

function comment(overrides: { body?: string; action?: string; login?: string; pull?: boolean; state?: string } = {}): IssueComment {
  const parsed = parseIssueComment({
    action: overrides.action ?? "created",
    issue: { number: 7, state: overrides.state ?? "open", pull_request: overrides.pull === false ? null : { merged: false } },
    comment: { id: 1, body: overrides.body ?? "!testme", user: { login: overrides.login ?? "maintainer" } },
    repository: { full_name: "coop-cloud/sso-app", clone_url: "http://127.0.0.1:47083/coop-cloud/sso-app.git" },
  });
  assert.ok("event" in parsed);
  return parsed.event;
}

describe("what a comment asks for", () => {
  it("an exact !testme or !testme --quick on an open PR is a run in that mode", () => {
    assert.deepEqual(decideComment(comment(), "warmstack-bot"), { kind: "run", mode: "cold", pr: 7, repository: "coop-cloud/sso-app", cloneUrl: "http://127.0.0.1:47083/coop-cloud/sso-app.git", commenter: "maintainer" });
    assert.equal((decideComment(comment({ body: "  !testme --quick\n" }), "warmstack-bot") as { mode: string }).mode, "quick");
  });

  it("ignores edits, the bridge's own comments, issues and ordinary comments, with no reply", () => {
    for (const event of [comment({ action: "edited" }), comment({ login: "warmstack-bot" }), comment({ pull: false }), comment({ body: "LGTM, thanks!" })]) {
      assert.equal(decideComment(event, "warmstack-bot").kind, "ignore");
    }
  });

  it("answers a near miss with the trigger's own reason, and a closed PR with its state", () => {
    const near = decideComment(comment({ body: "please !testme" }), "warmstack-bot");
    assert.equal(near.kind, "refuse");
    assert.match((near as { reply: string }).reply, /^@maintainer: no run started: .*`!testme`/);
    const closed = decideComment(comment({ state: "closed" }), "warmstack-bot");
    assert.deepEqual([closed.kind, (closed as { reply: string }).reply], ["refuse", "@maintainer: no run started: this pull request is closed."]);
  });

  it("refuses a payload that is not an issue comment with the field named", () => {
    const parsed = parseIssueComment({ action: "created", issue: { number: "seven" } });
    assert.ok("refusal" in parsed);
    assert.equal(parsed.refusal.status, 400);
    assert.match(parsed.refusal.reason, /issue\.number/);
  });

  it("trusts only write, admin and owner permission", () => {
    assert.deepEqual(["admin", "owner", "write", "read", "none", ""].map(isTrusted), [true, true, true, false, false, false]);
  });

  it("matches a repository to its source whatever the URL's form", () => {
    const key = remoteKey("http://127.0.0.1:47083/coop-cloud/sso-app.git");
    for (const same of ["http://127.0.0.1:47083/coop-cloud/sso-app", "http://127.0.0.1:47083/Coop-Cloud/SSO-app.git/", "https://bot@127.0.0.1:47083/coop-cloud/sso-app.git"]) assert.equal(remoteKey(same), key, same);
    assert.notEqual(remoteKey("http://127.0.0.1:47083/coop-cloud/sso-app-fork.git"), key);
  });
});

const T0 = new Date("2026-12-01T10:00:00.000Z");

function job(id: string, overrides: Partial<Job> = {}): Job {
  return {
    id,
    recipe: "sso-app",
    repository: "coop-cloud/sso-app",
    pr: 1,
    sha: "a".repeat(40),
    mode: "cold",
    commenter: "maintainer",
    deliveryId: `d-${id}`,
    state: "queued",
    queuedAt: T0.toISOString(),
    reported: false,
    ...overrides,
  };
}

describe("the bridge's queue", () => {
  it("a newer request for the same PR and recipe replaces a queued one, not a running one", () => {
    let state: QueueState = enqueue(EMPTY_QUEUE, job("a0000001")).state;
    const replaced = enqueue(state, job("a0000002"));
    assert.deepEqual(replaced.superseded.map((old) => [old.id, old.state]), [["a0000001", "superseded"]]);
    state = updateJob(replaced.state, "a0000002", { state: "running" });
    const third = enqueue(state, job("a0000003"));
    assert.deepEqual(third.superseded, []);
    assert.equal(nextJob(third.state, 4), undefined, "one run per PR and recipe at a time");
  });

  it("starts the oldest queued job whose PR has nothing running, up to the limit", () => {
    let state = EMPTY_QUEUE;
    for (const [id, pr] of [["b0000001", 1], ["b0000002", 2], ["b0000003", 3]] as const) state = enqueue(state, job(id, { pr })).state;
    assert.equal(nextJob(state, 2)?.id, "b0000001");
    state = updateJob(state, "b0000001", { state: "running" });
    assert.equal(nextJob(state, 2)?.id, "b0000002");
    state = updateJob(state, "b0000002", { state: "running" });
    assert.equal(nextJob(state, 2), undefined, "the limit is reached");
  });

  it("never runs more than the limit or two jobs of one PR, whatever arrives", () => {
    fc.assert(
      fc.property(fc.array(fc.record({ pr: fc.integer({ min: 1, max: 4 }), action: fc.constantFrom("enqueue", "start", "finish") }), { maxLength: 60 }), fc.integer({ min: 1, max: 3 }), (steps, limit) => {
        let state = EMPTY_QUEUE;
        steps.forEach((step, index) => {
          if (step.action === "enqueue") state = enqueue(state, job(index.toString(16).padStart(8, "0"), { pr: step.pr })).state;
          if (step.action === "start") {
            const next = nextJob(state, limit);
            if (next) state = updateJob(state, next.id, { state: "running" });
          }
          if (step.action === "finish") {
            const running = state.jobs.find((entry) => entry.state === "running");
            if (running) state = updateJob(state, running.id, { state: "finished", reported: true });
          }
          const running = state.jobs.filter((entry) => entry.state === "running");
          assert.ok(running.length <= limit);
          assert.equal(new Set(running.map((entry) => entry.pr)).size, running.length);
          const queuedPerPr = state.jobs.filter((entry) => entry.state === "queued").map((entry) => entry.pr);
          assert.equal(new Set(queuedPerPr).size, queuedPerPr.length, "at most one queued request per PR");
        });
      }),
    );
  });

  it("remembers deliveries for a week, so a replay is refused", () => {
    const state = rememberDelivery(EMPTY_QUEUE, "delivery-1", T0);
    assert.equal(seenDelivery(state, "delivery-1"), true);
    assert.equal(seenDelivery(state, "delivery-2"), false);
    const later = rememberDelivery(state, "delivery-2", new Date(T0.getTime() + 8 * 86_400_000));
    assert.equal(seenDelivery(later, "delivery-1"), false);
  });

  it("drops only reported finished jobs past the last 200", () => {
    let state = EMPTY_QUEUE;
    for (let index = 0; index < 210; index++) state = { ...state, jobs: [...state.jobs, job(index.toString(16).padStart(8, "0"), { pr: index + 1, state: "finished", reported: index !== 3 })] };
    state = { ...state, jobs: [...state.jobs, job("ffffffff", { pr: 999 })] };
    const pruned = pruneJobs(state);
    assert.equal(pruned.jobs.filter((entry) => entry.state === "finished" && entry.reported).length, 200);
    assert.ok(pruned.jobs.some((entry) => entry.id === "00000003"), "an unreported one is kept");
    assert.ok(pruned.jobs.some((entry) => entry.id === "ffffffff"), "queued ones are kept");
  });
});
