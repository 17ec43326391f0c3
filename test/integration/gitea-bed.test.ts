import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHmac, timingSafeEqual } from "node:crypto";
import { readdirSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { execa } from "execa";
import { bed } from "../support/bed";
import { gitea, giteaApi, GiteaRepo, waitUntil } from "../support/gitea";

// The bed's Gitea is the forge the webhook bridge will be tested against: these tests prove it is
// real and set up as the bridge's tests expect (repositories, tags, permissions, pull request refs,
// signed webhook deliveries).

const admin = giteaApi("admin");
const maintainer = giteaApi("maintainer");
const outsider = giteaApi("outsider");

/** Plain git, no credentials: the fixture repositories are public. */
const git = (args: readonly string[], cwd?: string) => execa("git", [...args], { cwd, env: { GIT_TERMINAL_PROMPT: "0" } });

/** `git ls-remote` as a map of ref → sha. */
async function lsRemote(url: string, ...patterns: string[]): Promise<Map<string, string>> {
  const { stdout } = await git(["ls-remote", url, ...patterns]);
  return new Map(
    stdout
      .split("\n")
      .filter(Boolean)
      .map((line) => {
        const [sha, ref] = line.split("\t");
        return [ref, sha] as [string, string];
      }),
  );
}

const recipes = readdirSync(bed().recipes, { withFileTypes: true })
  .filter((entry) => entry.isDirectory())
  .map((entry) => entry.name)
  .sort();

/** Repositories a test made; each test removes its own, and `after` whatever a failure left. */
const made: GiteaRepo[] = [];
async function recipeCopy(recipe: string): Promise<GiteaRepo> {
  const repo = await admin.createRecipeRepo(recipe);
  made.push(repo);
  return repo;
}
async function cleanUp(repo: GiteaRepo): Promise<void> {
  await admin.deleteRepo(repo);
  made.splice(made.indexOf(repo), 1);
  await assert.rejects(admin.request("GET", `/repos/${repo.owner}/${repo.name}`), /: 404/);
}

describe("the bed's Gitea", () => {
  after(async () => {
    for (const repo of [...made]) await admin.deleteRepo(repo);
  });

  it("is up on loopback and knows its three users by their tokens", async () => {
    assert.match(gitea().url, /^http:\/\/127\.0\.0\.1:\d+$/);
    const health = await fetch(`${gitea().url}/api/healthz`);
    assert.equal(health.status, 200);
    const version = await admin.request<{ version: string }>("GET", "/version");
    assert.equal(version.data.version, gitea().version);
    for (const api of [admin, maintainer, outsider]) {
      const { data } = await api.request<{ login: string; is_admin: boolean }>("GET", "/user");
      assert.equal(data.login, api.user);
      assert.equal(data.is_admin, api === admin, `${api.user} is_admin`);
    }
    // Registration is closed: nobody but the admin makes users.
    const signUp = await fetch(`${gitea().url}/user/sign_up`);
    assert.match(await signUp.text(), /Registration is disabled/);
    await assert.rejects(
      outsider.request("POST", "/admin/users", { username: "intruder", email: "intruder@warm.test", password: "intruder-password-1" }),
      /: 403/,
    );
  });

  it("serves every fixture recipe in the organization with main and all its annotated tags", async () => {
    assert.ok(recipes.length >= 4, `fixture recipes in ${bed().recipes}: ${recipes.join(", ")}`);
    for (const recipe of recipes) {
      const local = path.join(bed().recipes, recipe);
      const repo = admin.repo(recipe);
      const { data } = await outsider.request<{ private: boolean; default_branch: string; empty: boolean }>("GET", `/repos/${gitea().org}/${recipe}`);
      assert.equal(data.private, false, `${recipe} is public`);
      assert.equal(data.default_branch, "main");

      const localTags = (await git(["tag"], local)).stdout.split("\n").filter(Boolean).sort();
      assert.ok(localTags.length > 0, `${recipe} has tags locally`);
      assert.deepEqual((await outsider.tags(repo)).sort(), localTags, `${recipe}: tags in Gitea`);

      // Plain git sees the same objects: every tag is annotated (a tag object that peels to a
      // commit), and main is the local main.
      const remote = await lsRemote(repo.cloneUrl, "refs/heads/*", "refs/tags/*");
      assert.equal(remote.get("refs/heads/main"), (await git(["rev-parse", "main"], local)).stdout.trim(), `${recipe}: main`);
      const { stdout } = await git(["for-each-ref", "--format=%(refname) %(objecttype) %(objectname) %(*objectname)", "refs/tags"], local);
      for (const line of stdout.split("\n").filter(Boolean)) {
        const [ref, type, object, commit] = line.split(" ");
        assert.equal(type, "tag", `${ref} of ${recipe} is annotated locally`);
        assert.equal(remote.get(ref), object, `${recipe} ${ref}: the same tag object`);
        assert.equal(remote.get(`${ref}^{}`), commit, `${recipe} ${ref}: peels to the same commit`);
      }
      assert.equal(stdout.split("\n").filter(Boolean).length, localTags.length);
    }
  });

  it("gives maintainer write and outsider only read, and Gitea enforces it on push", async () => {
    for (const recipe of recipes) {
      const repo = admin.repo(recipe);
      assert.equal(await admin.permission(repo, maintainer.user), "write", `maintainer on ${recipe}`);
      assert.equal(await admin.permission(repo, outsider.user), "read", `outsider on ${recipe}`);
    }
    const repo = await recipeCopy("custom-html");
    assert.equal(await admin.permission(repo, maintainer.user), "write");
    assert.equal(await admin.permission(repo, outsider.user), "read");
    const { data } = await outsider.request<{ permissions: { admin: boolean; push: boolean; pull: boolean } }>("GET", `/repos/${repo.owner}/${repo.name}`);
    assert.deepEqual(data.permissions, { admin: false, push: false, pull: true });

    const pushed = await maintainer.pushBranch(repo, "maintainer-change", "main");
    assert.equal((await lsRemote(repo.cloneUrl, "refs/heads/maintainer-change")).get("refs/heads/maintainer-change"), pushed);
    await assert.rejects(outsider.pushBranch(repo, "outsider-change", "main"), (error: Error) => {
      assert.match(error.message, /permission denied|403/i);
      return true;
    });
    assert.equal((await lsRemote(repo.cloneUrl, "refs/heads/outsider-change")).size, 0, "the outsider's branch is not there");
    // The outsider may comment (the bridge hears `!testme` from anyone) but not set statuses.
    await assert.rejects(outsider.setStatus(repo, pushed, { state: "success", context: "warmstack" }), /: 403/);
    await cleanUp(repo);
  });

  it("serves a pull request's refs/pull/N/head to plain git, equal to the branch head", async () => {
    const repo = await recipeCopy("custom-html");
    const tags = (await git(["tag"], path.join(bed().recipes, "custom-html"))).stdout.split("\n").filter(Boolean);
    const base = tags[0];
    const head = await maintainer.pushBranch(repo, "pr-ref", base, { content: "refs/pull test\n" });
    const index = await maintainer.openPullRequest(repo, "pr-ref", { title: "refs/pull test" });
    assert.ok(index > 0);

    const pull = await maintainer.pullRequest(repo, index);
    assert.equal(pull.head.sha, head);
    assert.equal(pull.head.ref, "pr-ref");
    assert.equal(pull.state, "open");
    const ref = `refs/pull/${index}/head`;
    const advertised = await waitUntil(`${ref} on ${repo.name}`, () => lsRemote(repo.cloneUrl, ref), (refs) => refs.has(ref));
    assert.equal(advertised.get(ref), head);

    const dir = await mkdtemp(path.join(os.tmpdir(), "warmstack-pull-"));
    try {
      await git(["init", "--quiet", dir]);
      await git(["fetch", "--quiet", repo.cloneUrl, ref], dir);
      assert.equal((await git(["rev-parse", "FETCH_HEAD"], dir)).stdout.trim(), head);
      assert.equal((await git(["show", "FETCH_HEAD:warmstack-test.txt"], dir)).stdout, "refs/pull test");
      assert.equal((await git(["rev-parse", "FETCH_HEAD^"], dir)).stdout.trim(), (await git(["rev-parse", `refs/tags/${base}^{commit}`], path.join(bed().recipes, "custom-html"))).stdout.trim());
    } finally {
      await rm(dir, { recursive: true, force: true });
    }

    // A commit status set by the maintainer (as the bridge will) shows in both status views.
    await maintainer.setStatus(repo, head, { state: "pending", context: "warmstack/cold", description: "queued" });
    await maintainer.setStatus(repo, head, { state: "success", context: "warmstack/cold", description: "green" });
    const status = await maintainer.waitForStatus(repo, head, "warmstack/cold", (s) => s.status === "success");
    assert.equal(status.description, "green");
    assert.equal(status.creator?.login, maintainer.user);
    const history = await outsider.statuses(repo, head);
    assert.deepEqual(history.map((s) => [s.context, s.status, s.description]).sort(), [
      ["warmstack/cold", "pending", "queued"],
      ["warmstack/cold", "success", "green"],
    ]);
    const combined = await outsider.combinedStatus(repo, head);
    assert.equal(combined.state, "success");
    assert.equal(combined.sha, head);
    assert.equal(combined.total_count, 1, "one context");

    // A new release on the PR's commit is an annotated tag, and a closed PR stays closed.
    const tagged = await maintainer.pushTag(repo, "9.9.9+test", head);
    assert.equal(tagged, head);
    const remote = await lsRemote(repo.cloneUrl, "refs/tags/9.9.9+test*");
    assert.equal(remote.get("refs/tags/9.9.9+test^{}"), head, "annotated: peels to the commit");
    assert.notEqual(remote.get("refs/tags/9.9.9+test"), head, "annotated: a tag object of its own");
    await maintainer.closePullRequest(repo, index);
    assert.equal((await outsider.pullRequest(repo, index)).state, "closed");
    await cleanUp(repo);
  });

  it("delivers a real issue_comment webhook for a pull request comment, signed with the secret", async () => {
    interface Delivery {
      headers: http.IncomingHttpHeaders;
      body: Buffer;
    }
    const deliveries: Delivery[] = [];
    const receiver = http.createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on("data", (chunk: Buffer) => chunks.push(chunk));
      request.on("end", () => {
        deliveries.push({ headers: request.headers, body: Buffer.concat(chunks) });
        response.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
    try {
      const port = (receiver.address() as AddressInfo).port;
      const secret = `s-${Math.random().toString(16).slice(2)}`;
      const repo = await recipeCopy("custom-html");
      const hookId = await admin.createWebhook(repo, { url: `http://127.0.0.1:${port}/hook`, secret });
      assert.ok(hookId > 0);
      const head = await maintainer.pushBranch(repo, "hooked", "main");
      const index = await maintainer.openPullRequest(repo, "hooked");
      const commentId = await outsider.comment(repo, index, "!testme");
      const listed = await maintainer.comments(repo, index);
      assert.deepEqual(
        listed.map((c) => [c.id, c.body, c.user.login]),
        [[commentId, "!testme", outsider.user]],
      );

      const ours = () =>
        deliveries.find((d) => d.headers["x-gitea-event"] === "issue_comment" && JSON.parse(d.body.toString("utf8")).comment?.id === commentId);
      await waitUntil(
        `an issue_comment delivery for comment ${commentId} on 127.0.0.1:${port}`,
        async () => deliveries.map((d) => ({ event: d.headers["x-gitea-event"], body: d.body.toString("utf8").slice(0, 200) })),
        () => ours() !== undefined,
      );
      const delivery = ours() as Delivery;

      assert.equal(delivery.headers["content-type"], "application/json");
      assert.equal(delivery.headers["x-gitea-event-type"], "pull_request_comment");
      const signature = String(delivery.headers["x-gitea-signature"] ?? "");
      assert.match(signature, /^[0-9a-f]{64}$/);
      const verifies = (key: string) => {
        const expected = Buffer.from(createHmac("sha256", key).update(delivery.body).digest("hex"), "hex");
        const given = Buffer.from(signature, "hex");
        return given.length === expected.length && timingSafeEqual(given, expected);
      };
      assert.equal(verifies(secret), true, "X-Gitea-Signature is HMAC-SHA256 of the raw body with the secret");
      assert.equal(verifies(`${secret}x`), false, "and not with another secret");

      const payload = JSON.parse(delivery.body.toString("utf8")) as {
        action: string;
        is_pull: boolean;
        comment: { id: number; body: string; user: { login: string } };
        issue: { number: number };
        pull_request?: { head: { sha: string } };
        repository: { full_name: string; clone_url: string };
        sender: { login: string };
      };
      assert.equal(payload.action, "created");
      assert.equal(payload.is_pull, true);
      assert.equal(payload.comment.body, "!testme");
      assert.equal(payload.comment.user.login, outsider.user);
      assert.equal(payload.sender.login, outsider.user);
      assert.equal(payload.issue.number, index);
      assert.equal(payload.pull_request?.head.sha, head);
      assert.equal(payload.repository.full_name, `${repo.owner}/${repo.name}`);
      assert.equal(payload.repository.clone_url, repo.cloneUrl);
      await cleanUp(repo);
    } finally {
      await new Promise((resolve) => receiver.close(resolve));
    }
  });
});
