import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHmac, randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import * as net from "node:net";
import * as path from "node:path";
import { execa } from "execa";
import { runProcesses } from "../../runner/processes";
import { bed } from "../support/bed";
import { BridgeProcess } from "../support/bridge";
import { CanonicalStackFixture, treeHash } from "../support/canonical-stack";
import { catalogueWithSources } from "../support/catalogues";
import { gitea, giteaApi, GiteaRepo } from "../support/gitea";
import { PulumiProject } from "../support/pulumi-project";
import { leftovers, NOTHING_LEFT } from "../support/runs";
import { sharedKeycloak } from "../support/shared-keycloak";

/**
 * The forge bridge end to end on the bed's real Gitea, driven by Gitea's own webhook deliveries: a
 * maintainer's `!testme` on a pull request runs the PR's head and the result comes back to the PR as
 * a commit status and a comment. Hand-made bodies only for the forged and malformed cases.
 */
const admin = giteaApi("admin");
const maintainer = giteaApi("maintainer");
const outsider = giteaApi("outsider");
const repos: GiteaRepo[] = [];
const cleanups: (() => Promise<unknown>)[] = [];

after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch((error: unknown) => console.error(`cleanup: ${(error as Error).message}`));
  for (const repo of repos) await admin.deleteRepo(repo).catch(() => undefined);
});

async function recipeRepo(recipe: string): Promise<GiteaRepo> {
  const repo = await admin.createRecipeRepo(recipe);
  repos.push(repo);
  return repo;
}

/** A bridge of its own answering `repo`'s webhook (stopped after the suite), with `project` as its state. */
async function listeningBridge(project: PulumiProject, repo: GiteaRepo, options: Parameters<typeof BridgeProcess.create>[1]): Promise<BridgeProcess> {
  const bridge = await BridgeProcess.create(project, options);
  await bridge.start();
  cleanups.push(() => bridge.stop());
  await admin.createWebhook(repo, { url: `${bridge.url}/webhook`, secret: bridge.secret });
  return bridge;
}

/** A PR from a branch whose head commit exists only there (one commit on top of `base`). */
async function pullRequest(repo: GiteaRepo, base: string, branch = `pr-${randomBytes(3).toString("hex")}`): Promise<{ pr: number; sha: string }> {
  const sha = await maintainer.pushBranch(repo, branch, base);
  return { pr: await maintainer.openPullRequest(repo, branch), sha };
}

describe("the forge bridge on a real Gitea", { concurrency: true }, () => {
  describe("a cold run of the SSO fixture from a maintainer's !testme", () => {
    let project: PulumiProject;
    let bridge: BridgeProcess;
    let repo: GiteaRepo;

    before(async () => {
      project = await PulumiProject.create();
      const keycloak = await sharedKeycloak();
      const passwordFile = path.join(project.stateDir, "kc-admin-password");
      await writeFile(passwordFile, keycloak.adminPassword, { mode: 0o600 });
      repo = await recipeRepo("sso-app");
      const catalogue = await catalogueWithSources(project.stateDir, { "sso-app": repo.cloneUrl, keycloak: path.join(bed().recipes, "keycloak") });
      cleanups.push(() => project.dispose());
      bridge = await listeningBridge(project, repo, {
        catalogue,
        env: { WARMSTACK_KEYCLOAK_DOMAIN: keycloak.domain, WARMSTACK_KEYCLOAK_ADMIN_PASSWORD_FILE: passwordFile, WARMSTACK_BASE_DOMAIN: `b${randomBytes(3).toString("hex")}.${bed().domain}` },
      });
    });

    it("verifies the delivery, tests the PR's own head, and answers pending → success with the summary as a comment", { timeout: 1_200_000 }, async () => {
      const { pr, sha } = await pullRequest(repo, "1.1.0+1.1");
      await maintainer.comment(repo, pr, "!testme");
      const success = await maintainer.waitForStatus(repo, sha, "warmstack/cold", (status) => status.status !== "pending", { timeoutMs: 1_100_000, intervalMs: 2000 });
      assert.equal(success.status, "success", JSON.stringify(success));
      const states = (await maintainer.statuses(repo, sha)).filter((status) => status.context === "warmstack/cold").map((status) => `${status.status}: ${status.description}`).reverse();
      assert.deepEqual(states.map((state) => state.split(":")[0]), ["pending", "pending", "success"], states.join("\n"));
      const summary = await maintainer.waitForComment(repo, pr, (comment) => comment.user.login === admin.user && /^### warmstack: sso-app PASSED/.test(comment.body));
      assert.match(summary.body, new RegExp(`\\*\\*Ref:\\*\\* \`${sha}\``), "the PR's head commit was tested");
      assert.match(summary.body, /Authoritative result; it gates the merge/);
      assert.doesNotMatch(summary.body, new RegExp(bridge.secret));

      const finished = await bridge.waitForLine((line) => line.event === "run-reported");
      const stack = String((bridge.lines.find((line) => line.event === "run-finished") ?? {}).stack);
      assert.match(stack, /^run-sso-app-[0-9a-f]{6}$/, JSON.stringify(finished));
      assert.deepEqual(await leftovers(project, "sso-app"), NOTHING_LEFT);
      assert.deepEqual(await runProcesses(stack), []);
      assert.deepEqual((await bridge.runs()).recent.map((run) => [run.pr, run.state, run.outcome]), [[pr, "finished", "passed"]]);
    });
  });

  describe("who may start a run, and deliveries that are not believed", () => {
    let project: PulumiProject;
    let bridge: BridgeProcess;
    let repo: GiteaRepo;

    before(async () => {
      project = await PulumiProject.create();
      repo = await recipeRepo("custom-html");
      cleanups.push(() => project.dispose());
      bridge = await listeningBridge(project, repo, { catalogue: await catalogueWithSources(project.stateDir, { "custom-html": repo.cloneUrl }) });
    });

    it("a second bridge on the same state directory refuses to start, naming the one that serves it", async () => {
      const second = await BridgeProcess.create(project, { catalogue: bridge.catalogue });
      await assert.rejects(second.start(), (error: Error) =>
        new RegExp(`the bridge exited \\(1\\): warmstack: another warmstack serve serves the state directory ${project.stateDir} \\(.*held by pid ${bridge.pid} on .*\\): one bridge per state directory`).test(error.message),
      );
      assert.equal((await fetch(`${bridge.url}/runs`)).status, 200, "the first bridge serves on");
    });

    it("an outsider's !testme starts nothing and gets one reply saying who can", { timeout: 300_000 }, async () => {
      const { pr, sha } = await pullRequest(repo, "1.0.0+1.0");
      await outsider.comment(repo, pr, "!testme");
      const reply = await outsider.waitForComment(repo, pr, (comment) => comment.user.login === admin.user, { timeoutMs: 60_000 });
      assert.match(reply.body, /^@outsider: only collaborators with write access to .* can start runs here/);
      await bridge.waitForLine((line) => line.event === "delivery-untrusted" && line.pr === pr);
      assert.equal((await outsider.comments(repo, pr)).filter((comment) => comment.user.login === admin.user).length, 1);
      assert.deepEqual(await maintainer.statuses(repo, sha), [], "no status: nothing was queued");
      const runs = await bridge.runs();
      assert.deepEqual([runs.queued, runs.running, runs.recent], [[], [], []]);
    });

    it("a forged signature, a replayed delivery, an oversize or malformed body start nothing", { timeout: 300_000 }, async () => {
      const payload = Buffer.from(JSON.stringify({ action: "created", issue: { number: 1, state: "open", pull_request: {} }, comment: { id: 1, body: "!testme", user: { login: "maintainer" } }, repository: { full_name: `${repo.owner}/${repo.name}`, clone_url: repo.cloneUrl } }));
      const signature = (body: Buffer, secret = bridge.secret) => createHmac("sha256", secret).update(body).digest("hex");
      const post = (body: Buffer, headers: Record<string, string>) =>
        fetch(`${bridge.url}/webhook`, { method: "POST", headers: { "Content-Type": "application/json", "X-Gitea-Event": "issue_comment", ...headers }, body });
      assert.equal((await post(payload, { "X-Gitea-Delivery": "forged-1", "X-Gitea-Signature": signature(payload, "not the secret") })).status, 401);
      assert.equal((await post(payload, { "X-Gitea-Delivery": "unsigned-1" })).status, 401);
      const oversize = Buffer.alloc(2 * 1024 * 1024, 0x20);
      assert.equal((await post(oversize, { "X-Gitea-Delivery": "big-1", "X-Gitea-Signature": signature(oversize) })).status, 413);
      const notJson = Buffer.from("{ this is not json");
      assert.equal((await post(notJson, { "X-Gitea-Delivery": "bad-1", "X-Gitea-Signature": signature(notJson) })).status, 400);
      const push = Buffer.from("{}");
      assert.equal((await post(push, { "X-Gitea-Delivery": "push-1", "X-Gitea-Signature": signature(push), "X-Gitea-Event": "push" })).status, 202, "an event the bridge does not act on");
      assert.equal((await post(push, { "X-Gitea-Delivery": "push-1", "X-Gitea-Signature": signature(push), "X-Gitea-Event": "push" })).status, 409, "the same delivery again: a replay");
      assert.deepEqual(await bridge.runs(), { queued: [], running: [], recent: [] }, "nothing was queued by any of them");
    });

    it("a !testme on a closed PR, or on a repository the catalogue does not have, gets a reply and no run", { timeout: 300_000 }, async () => {
      const closed = await pullRequest(repo, "1.0.0+1.0");
      await maintainer.closePullRequest(repo, closed.pr);
      await maintainer.comment(repo, closed.pr, "!testme");
      const reply = await maintainer.waitForComment(repo, closed.pr, (comment) => comment.user.login === admin.user, { timeoutMs: 60_000 });
      assert.equal(reply.body, "@maintainer: no run started: this pull request is closed.");

      const stranger = await recipeRepo("custom-html");
      await admin.createWebhook(stranger, { url: `${bridge.url}/webhook`, secret: bridge.secret });
      const unknown = await pullRequest(stranger, "1.0.0+1.0");
      await maintainer.comment(stranger, unknown.pr, "!testme");
      const answer = await maintainer.waitForComment(stranger, unknown.pr, (comment) => comment.user.login === admin.user, { timeoutMs: 60_000 });
      assert.match(answer.body, /is not a recipe this CI tests \(no catalogue entry has it as its source\)/);
      assert.deepEqual(await maintainer.statuses(stranger, unknown.sha), []);
      assert.deepEqual(await bridge.runs(), { queued: [], running: [], recent: [] });
    });

    it("a comment that only mentions the trigger gets the trigger's rule as its one reply, and no run", { timeout: 300_000 }, async () => {
      const { pr, sha } = await pullRequest(repo, "1.0.0+1.0");
      await maintainer.comment(repo, pr, "please !testme");
      const reply = await maintainer.waitForComment(repo, pr, (comment) => comment.user.login === admin.user, { timeoutMs: 60_000 });
      assert.match(reply.body, /^@maintainer: no run started: .*`!testme`/);
      assert.deepEqual(await maintainer.statuses(repo, sha), []);
    });
  });

  describe("a quick run on a head that breaks the app", () => {
    let fixture: CanonicalStackFixture;
    let repo: GiteaRepo;

    before(async () => {
      fixture = await CanonicalStackFixture.create([{ recipe: "custom-html", tags: ["1.0.0+1.0", "1.0.1+1.0", "1.5.2+1.2"], knownGood: "1.0.0+1.0", deployTimeoutSeconds: 60 }]);
      const up = await fixture.up();
      assert.equal(up.exitCode, 0, up.output);
      repo = await recipeRepo("custom-html");
      const catalogue = await catalogueWithSources(fixture.project.stateDir, { "custom-html": repo.cloneUrl }, (recipes) => {
        recipes["custom-html"]!.deployTimeoutSeconds = 40;
      });
      cleanups.push(() => fixture.dispose());
      await listeningBridge(fixture.project, repo, { catalogue, env: { WARMSTACK_BASE_DOMAIN: fixture.baseDomain } });
    });

    it("!testme --quick: failure, a comment labelled quick and lower-confidence, the canonical byte-identical to its snapshot", { timeout: 900_000 }, async () => {
      const deployer = fixture.deployer();
      const volumes = await deployer.volumes(fixture.app("custom-html"));
      const before = await treeHash(volumes);
      const { pr, sha } = await pullRequest(repo, "1.5.2+1.2");
      await maintainer.comment(repo, pr, "!testme --quick");
      const final = await maintainer.waitForStatus(repo, sha, "warmstack/quick", (status) => status.status !== "pending", { timeoutMs: 800_000, intervalMs: 2000 });
      assert.equal(final.status, "failure", JSON.stringify(final));
      assert.match(final.description, /lower-confidence, never a required check/);
      const summary = await maintainer.waitForComment(repo, pr, (comment) => comment.user.login === admin.user && /^### warmstack: custom-html FAILED/.test(comment.body));
      assert.match(summary.body, /\*\*Lane:\*\* quick\. \*\*Lower-confidence result\*\*/);
      assert.equal(await treeHash(volumes), before, "the canonical is its known-good snapshot again");
      assert.equal(await deployer.envVersion(fixture.app("custom-html")), "1.0.0+1.0");
      assert.equal(await deployer.currentVersion(fixture.app("custom-html")), null, "idle again");
    });
  });

  describe("a forge that is down when the result is posted", () => {
    let project: PulumiProject;
    let bridge: BridgeProcess;
    let repo: GiteaRepo;
    let forge: Switchable;

    before(async () => {
      project = await PulumiProject.create();
      repo = await recipeRepo("custom-html");
      forge = await switchableProxy(new URL(gitea().url));
      cleanups.push(() => project.dispose(), () => forge.close());
      const catalogue = await catalogueWithSources(project.stateDir, { "custom-html": repo.cloneUrl });
      bridge = await listeningBridge(project, repo, { catalogue, forgeUrl: forge.url, env: { WARMSTACK_BASE_DOMAIN: `f${randomBytes(3).toString("hex")}.${bed().domain}` } });
    });

    it("is retried a bounded number of times; the result stays in /runs and a restarted bridge posts it", { timeout: 900_000 }, async () => {
      const { pr, sha } = await pullRequest(repo, "1.0.0+1.0");
      await maintainer.comment(repo, pr, "!testme");
      const started = await bridge.waitForLine((line) => line.event === "run-started" && line.pr === pr, 120_000);
      forge.down();
      const failed = await bridge.waitForLine((line) => line.event === "report-failed" && line.job === started.job, 600_000);
      assert.match(String(failed.error), /attempt 4 of 4/);
      const runs = await bridge.runs();
      assert.deepEqual(runs.recent.map((run) => [run.pr, run.state, run.outcome]), [[pr, "finished", "passed"]], "the result is kept");
      assert.equal((await maintainer.statuses(repo, sha)).find((status) => status.status !== "pending"), undefined, "nothing final reached the forge");

      await bridge.stop();
      forge.up();
      await bridge.start();
      const status = await maintainer.waitForStatus(repo, sha, "warmstack/cold", (entry) => entry.status !== "pending", { timeoutMs: 120_000 });
      assert.equal(status.status, "success");
      await maintainer.waitForComment(repo, pr, (comment) => /^### warmstack: custom-html PASSED/.test(comment.body));
    });
  });

  describe("a bridge killed while one run runs and two are queued", () => {
    let project: PulumiProject;
    let bridge: BridgeProcess;
    let repo: GiteaRepo;
    let normal: string;
    let fifo: string;

    before(async () => {
      project = await PulumiProject.create();
      repo = await recipeRepo("custom-html");
      fifo = path.join(project.stateDir, "hold-the-tests");
      await execa("mkfifo", ["-m", "0600", fifo]);
      normal = await catalogueWithSources(project.stateDir, { "custom-html": repo.cloneUrl });
      // The first run's tests block on the fifo: the kill comes while it certainly runs.
      const held = await catalogueWithSources(project.stateDir, { "custom-html": repo.cloneUrl }, (recipes) => {
        recipes["custom-html"]!.test = { command: ["bash", "-c", `cat ${fifo} >/dev/null`], timeoutSeconds: 1800 };
      });
      cleanups.push(() => project.dispose());
      bridge = await listeningBridge(project, repo, { catalogue: held, maxConcurrent: 1, env: { WARMSTACK_BASE_DOMAIN: `k${randomBytes(3).toString("hex")}.${bed().domain}` } });
    });

    it("after a restart the queued runs run exactly once, and the interrupted one is reported and reaped", { timeout: 1_500_000 }, async () => {
      const prs: { pr: number; sha: string }[] = [];
      for (const base of ["1.0.0+1.0", "1.0.1+1.0", "1.1.0+1.1"]) prs.push(await pullRequest(repo, base));
      await maintainer.comment(repo, prs[0]!.pr, "!testme");
      const started = await bridge.waitForLine((line) => line.event === "run-started" && line.pr === prs[0]!.pr, 120_000);
      for (const { pr } of prs.slice(1)) await maintainer.comment(repo, pr, "!testme");
      await bridge.waitForLine((line) => line.event === "run-queued" && line.pr === prs[2]!.pr, 120_000);
      // The tests of the first run are blocked on the fifo: it is certainly still in its tests step.
      await waitForProcess(`cat ${fifo}`, 600_000);
      const before = await bridge.runs();
      assert.deepEqual([before.running.map((run) => run.pr), before.queued.map((run) => run.pr)], [[prs[0]!.pr], [prs[1]!.pr, prs[2]!.pr]]);
      await bridge.kill();
      assert.ok(started.pid);

      await bridge.start(normal);
      const interrupted = await maintainer.waitForStatus(repo, prs[0]!.sha, "warmstack/cold", (status) => status.status !== "pending", { timeoutMs: 600_000, intervalMs: 2000 });
      assert.equal(interrupted.status, "error");
      await maintainer.waitForComment(repo, prs[0]!.pr, (comment) => /^### warmstack: custom-html INTERRUPTED/.test(comment.body));
      for (const { pr, sha } of prs.slice(1)) {
        const status = await maintainer.waitForStatus(repo, sha, "warmstack/cold", (entry) => entry.status !== "pending", { timeoutMs: 900_000, intervalMs: 2000 });
        assert.equal(status.status, "success", JSON.stringify(status));
        await maintainer.waitForComment(repo, pr, (comment) => /^### warmstack: custom-html PASSED/.test(comment.body));
      }
      for (const { pr } of prs) {
        const summaries = (await maintainer.comments(repo, pr)).filter((comment) => comment.user.login === admin.user);
        assert.equal(summaries.length, 1, `exactly one answer on #${pr}: ${summaries.map((comment) => comment.body.split("\n")[0]).join(" | ")}`);
      }
      assert.equal(bridge.lines.filter((line) => line.event === "run-started").length, 1 + 2, "each queued run started once after the restart");
      assert.ok(bridge.lines.some((line) => line.event === "reap"), "the interrupted run was reaped");
      assert.deepEqual(await leftovers(project, "custom-html"), NOTHING_LEFT);
    });
  });
});

/** Waits (bounded) until a process whose command line is exactly `command` runs. */
async function waitForProcess(command: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { stdout } = await execa("pgrep", ["-f", "-x", command], { reject: false });
    if (stdout.trim()) return;
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs / 1000}s waiting for a process "${command}"`);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

interface Switchable {
  url: string;
  down(): void;
  up(): void;
  close(): Promise<void>;
}

/** A loopback TCP proxy to the forge that the test can switch off (refusing every connection) and on. */
async function switchableProxy(target: URL): Promise<Switchable> {
  let refusing = false;
  const open = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    if (refusing) return void socket.destroy();
    const upstream = net.connect(Number(target.port), target.hostname);
    for (const end of [socket, upstream]) {
      open.add(end);
      end.on("close", () => open.delete(end));
      end.on("error", () => undefined);
    }
    socket.pipe(upstream).pipe(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    down: () => {
      refusing = true;
      for (const socket of open) socket.destroy();
    },
    up: () => {
      refusing = false;
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
