import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import { execa } from "execa";
import { bed, BedGitea, GiteaRole } from "./bed";

/**
 * Typed access to the bed's real Gitea (test/bed/steps/gitea.sh): its three users' tokens, the
 * coop-cloud organization, and the few API calls the forge-bridge tests need. Secrets are read
 * from the bed's 0600 files and never reach a command line: git gets its credentials from its
 * environment (GIT_CONFIG_COUNT/KEY/VALUE → http.extraHeader).
 */

export type { GiteaRole } from "./bed";

export function gitea(): BedGitea {
  const described = bed().gitea;
  if (!described) throw new Error("bed.json has no gitea: run test/bed/setup.sh gitea describe");
  return described;
}

const tokens = new Map<GiteaRole, string>();

/** The API token of one of the bed's users, read from its file. */
export function giteaToken(role: GiteaRole): string {
  let token = tokens.get(role);
  if (!token) {
    const file = gitea().users[role].tokenFile;
    try {
      token = readFileSync(file, "utf8").trim();
    } catch (error) {
      throw new Error(`no Gitea token for ${role} (${file}: ${(error as Error).message}); run test/bed/setup.sh gitea`);
    }
    if (!token) throw new Error(`the Gitea token file of ${role} is empty (${file}); run test/bed/setup.sh gitea`);
    tokens.set(role, token);
  }
  return token;
}

export class GiteaError extends Error {
  constructor(
    readonly method: string,
    readonly apiPath: string,
    readonly status: number,
    readonly body: string,
  ) {
    super(`gitea ${method} ${apiPath}: ${status} ${body.slice(0, 500)}`);
  }
}

/** A repository in the bed's organization. */
export interface GiteaRepo {
  owner: string;
  name: string;
  /** git over HTTP, without credentials. */
  cloneUrl: string;
}

export interface GiteaComment {
  id: number;
  body: string;
  user: { login: string };
}

export type GiteaStatusState = "pending" | "success" | "error" | "failure" | "warning" | "skipped";

/** A commit status as Gitea returns it: the state is in `status` (it is `state` when creating one). */
export interface GiteaCommitStatus {
  id: number;
  status: GiteaStatusState;
  context: string;
  description: string;
  target_url: string;
  creator?: { login: string };
}

export interface GiteaCombinedStatus {
  state: string;
  sha: string;
  total_count: number;
  statuses: GiteaCommitStatus[] | null;
}

export interface GiteaPullRequest {
  number: number;
  state: "open" | "closed";
  merged: boolean;
  head: { ref: string; sha: string };
  base: { ref: string };
}

export interface WaitOptions {
  timeoutMs?: number;
  intervalMs?: number;
}

/**
 * Polls `probe` until `done` accepts what it returned, for at most `timeoutMs`; on timeout the error
 * names what was awaited and the last state seen. Bounded by a deadline, never asserts on time.
 */
export async function waitUntil<T>(
  what: string,
  probe: () => Promise<T>,
  done: (value: T) => boolean,
  { timeoutMs = 30_000, intervalMs = 250 }: WaitOptions = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: string;
  for (;;) {
    try {
      const value = await probe();
      if (done(value)) return value;
      last = JSON.stringify(value);
    } catch (error) {
      last = `error: ${(error as Error).message}`;
    }
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs / 1000}s waiting for ${what}; last state: ${last.slice(0, 1000)}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

// The test machine's git identity is not ours to rely on: commits and annotated tags need one.
const IDENTITY = ["-c", "user.name=warmstack tests", "-c", "user.email=tests@warmstack.invalid"];

/** A unique repository name for a copy of a recipe, so tests never collide. */
export function uniqueRepoName(recipe: string): string {
  return `${recipe}-t${randomBytes(3).toString("hex")}`;
}

export class GiteaApi {
  readonly user: string;

  constructor(readonly role: GiteaRole) {
    this.user = gitea().users[role].name;
  }

  get org(): string {
    return gitea().org;
  }

  repo(name: string, owner = this.org): GiteaRepo {
    return { owner, name, cloneUrl: `${gitea().url}/${owner}/${name}.git` };
  }

  /** One API call as this user; any status outside `expect` throws with Gitea's answer. */
  async request<T>(method: string, apiPath: string, body?: unknown, expect: readonly number[] = [200, 201, 204]): Promise<{ status: number; data: T }> {
    const response = await fetch(`${gitea().url}/api/v1${apiPath}`, {
      method,
      headers: {
        Authorization: `token ${giteaToken(this.role)}`,
        Accept: "application/json",
        ...(body === undefined ? {} : { "Content-Type": "application/json" }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    });
    const text = await response.text();
    if (!expect.includes(response.status)) throw new GiteaError(method, apiPath, response.status, text);
    return { status: response.status, data: (text ? JSON.parse(text) : undefined) as T };
  }

  private async get<T>(apiPath: string): Promise<T> {
    return (await this.request<T>("GET", apiPath)).data;
  }

  /**
   * git as this user: the token travels in an HTTP header that git reads from its environment,
   * so it is in no process's arguments.
   */
  git(args: readonly string[], cwd?: string) {
    const basic = Buffer.from(`${this.user}:${giteaToken(this.role)}`).toString("base64");
    return execa("git", [...IDENTITY, ...args], {
      cwd,
      env: {
        GIT_TERMINAL_PROMPT: "0",
        GIT_CONFIG_COUNT: "2",
        GIT_CONFIG_KEY_0: "http.extraHeader",
        GIT_CONFIG_VALUE_0: `Authorization: Basic ${basic}`,
        GIT_CONFIG_KEY_1: "credential.helper",
        GIT_CONFIG_VALUE_1: "",
      },
    });
  }

  private async withClone<T>(repo: GiteaRepo, work: (dir: string) => Promise<T>): Promise<T> {
    const dir = await mkdtemp(path.join(os.tmpdir(), "warmstack-gitea-"));
    try {
      await this.git(["clone", "--quiet", repo.cloneUrl, dir]);
      return await work(dir);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  /**
   * A new public repository in the organization holding a copy of a fixture recipe (main and every
   * annotated tag; of the bed's repository, or of `from`), under a unique name, with maintainer as
   * write collaborator. Needs the admin.
   */
  async createRecipeRepo(recipe: string, name = uniqueRepoName(recipe), from = path.join(bed().recipes, recipe)): Promise<GiteaRepo> {
    await this.request("POST", `/orgs/${this.org}/repos`, {
      name,
      private: false,
      auto_init: false,
      default_branch: "main",
      description: `copy of the ${recipe} fixture recipe for one test`,
    });
    const repo = this.repo(name);
    await this.git(["-C", from, "push", "--quiet", repo.cloneUrl, "refs/heads/main:refs/heads/main", "refs/tags/*:refs/tags/*"]);
    await this.addCollaborator(repo, gitea().users.maintainer.name, "write");
    const main = (await execa("git", ["-C", from, "rev-parse", "main"])).stdout.trim();
    const tagCount = (await execa("git", ["-C", from, "tag"])).stdout.split("\n").filter(Boolean).length;
    await this.waitForBranch(repo, "main", main);
    await waitUntil(`the ${tagCount} tags of ${repo.name} in Gitea's API`, () => this.tags(repo), (tags) => tags.length === tagCount);
    return repo;
  }

  /**
   * Gitea records pushed branches in its database from a queue, a moment after git has them: an
   * API call that names a branch (opening a pull request) must wait for it.
   */
  async waitForBranch(repo: GiteaRepo, branch: string, sha: string, options?: WaitOptions): Promise<void> {
    await waitUntil(
      `branch ${branch} of ${repo.name} at ${sha.slice(0, 10)} in Gitea's API`,
      async () => (await this.request<{ commit: { id: string } }>("GET", `/repos/${repo.owner}/${repo.name}/branches/${encodeURIComponent(branch)}`, undefined, [200, 404])).data?.commit?.id,
      (id) => id === sha,
      options,
    );
  }

  async addCollaborator(repo: GiteaRepo, user: string, permission: "read" | "write" | "admin"): Promise<void> {
    await this.request("PUT", `/repos/${repo.owner}/${repo.name}/collaborators/${user}`, { permission });
  }

  /** read, write, admin or none, as Gitea computes it for `user` on the repository. */
  async permission(repo: GiteaRepo, user: string): Promise<string> {
    return (await this.get<{ permission: string }>(`/repos/${repo.owner}/${repo.name}/collaborators/${user}/permission`)).permission;
  }

  /** Deletes the repository; one that is already gone is fine. */
  async deleteRepo(repo: GiteaRepo): Promise<void> {
    await this.request("DELETE", `/repos/${repo.owner}/${repo.name}`, undefined, [204, 404]);
  }

  /** Tag names, all pages. */
  async tags(repo: GiteaRepo): Promise<string[]> {
    const names: string[] = [];
    for (let page = 1; ; page++) {
      const batch = await this.get<{ name: string }[]>(`/repos/${repo.owner}/${repo.name}/tags?page=${page}&limit=50`);
      names.push(...batch.map((tag) => tag.name));
      if (batch.length < 50) return names;
    }
  }

  /**
   * Pushes `branch` with one new commit on top of `base` (a tag, branch or commit) and returns the
   * commit's sha. The commit writes `file` (default: a marker file) with `content`.
   */
  async pushBranch(repo: GiteaRepo, branch: string, base: string, options: { file?: string; content?: string; message?: string } = {}): Promise<string> {
    return this.withClone(repo, async (dir) => {
      const file = options.file ?? "warmstack-test.txt";
      await this.git(["checkout", "--quiet", "-B", branch, base], dir);
      await writeFile(path.join(dir, file), options.content ?? `${branch} on ${base}\n`);
      await this.git(["add", "--", file], dir);
      await this.git(["commit", "--quiet", "-m", options.message ?? `test change on ${base}`], dir);
      await this.git(["push", "--quiet", "origin", `HEAD:refs/heads/${branch}`], dir);
      const sha = (await this.git(["rev-parse", "HEAD"], dir)).stdout.trim();
      await this.waitForBranch(repo, branch, sha);
      return sha;
    });
  }

  /** Pushes a new annotated tag on `target` (a tag, branch or commit) and returns the commit's sha. */
  async pushTag(repo: GiteaRepo, tag: string, target: string, message = `Release ${tag}`): Promise<string> {
    return this.withClone(repo, async (dir) => {
      await this.git(["tag", "-a", tag, "-m", message, target], dir);
      await this.git(["push", "--quiet", "origin", `refs/tags/${tag}:refs/tags/${tag}`], dir);
      const sha = (await this.git(["rev-parse", `${tag}^{commit}`], dir)).stdout.trim();
      await waitUntil(`tag ${tag} of ${repo.name} in Gitea's API`, () => this.tags(repo), (tags) => tags.includes(tag));
      return sha;
    });
  }

  /** Opens a pull request from `head` (a branch of the same repository) and returns its number. */
  async openPullRequest(repo: GiteaRepo, head: string, options: { base?: string; title?: string; body?: string } = {}): Promise<number> {
    const { data } = await this.request<GiteaPullRequest>("POST", `/repos/${repo.owner}/${repo.name}/pulls`, {
      head,
      base: options.base ?? "main",
      title: options.title ?? `test: ${head}`,
      body: options.body ?? "",
    });
    return data.number;
  }

  async pullRequest(repo: GiteaRepo, index: number): Promise<GiteaPullRequest> {
    return this.get<GiteaPullRequest>(`/repos/${repo.owner}/${repo.name}/pulls/${index}`);
  }

  async closePullRequest(repo: GiteaRepo, index: number): Promise<void> {
    await this.request("PATCH", `/repos/${repo.owner}/${repo.name}/pulls/${index}`, { state: "closed" });
  }

  /** Comments on a pull request (or issue) as this user; returns the comment's id. */
  async comment(repo: GiteaRepo, index: number, body: string): Promise<number> {
    const { data } = await this.request<GiteaComment>("POST", `/repos/${repo.owner}/${repo.name}/issues/${index}/comments`, { body });
    return data.id;
  }

  async comments(repo: GiteaRepo, index: number): Promise<GiteaComment[]> {
    return this.get<GiteaComment[]>(`/repos/${repo.owner}/${repo.name}/issues/${index}/comments`);
  }

  async setStatus(repo: GiteaRepo, sha: string, status: { state: GiteaStatusState; context: string; description?: string; targetUrl?: string }): Promise<GiteaCommitStatus> {
    const { data } = await this.request<GiteaCommitStatus>("POST", `/repos/${repo.owner}/${repo.name}/statuses/${sha}`, {
      state: status.state,
      context: status.context,
      description: status.description ?? "",
      target_url: status.targetUrl ?? "",
    });
    return data;
  }

  async statuses(repo: GiteaRepo, sha: string): Promise<GiteaCommitStatus[]> {
    return this.get<GiteaCommitStatus[]>(`/repos/${repo.owner}/${repo.name}/commits/${sha}/statuses`);
  }

  async combinedStatus(repo: GiteaRepo, sha: string): Promise<GiteaCombinedStatus> {
    return this.get<GiteaCombinedStatus>(`/repos/${repo.owner}/${repo.name}/commits/${sha}/status`);
  }

  /**
   * Waits until the commit's latest status for `context` (as the combined status reports it) is
   * one that `done` accepts; returns it.
   */
  async waitForStatus(repo: GiteaRepo, sha: string, context: string, done: (status: GiteaCommitStatus) => boolean = () => true, options?: WaitOptions): Promise<GiteaCommitStatus> {
    const latest = async () => (await this.combinedStatus(repo, sha)).statuses?.find((status) => status.context === context);
    const found = await waitUntil(
      `a ${context} status on ${repo.name}@${sha.slice(0, 10)}`,
      async () => {
        const status = await latest();
        return status && { ...status, creator: status.creator && { login: status.creator.login } };
      },
      (status) => status !== undefined && done(status),
      options,
    );
    return found as GiteaCommitStatus;
  }

  /** Waits until a comment that `done` accepts is on the pull request; returns it. */
  async waitForComment(repo: GiteaRepo, index: number, done: (comment: GiteaComment) => boolean, options?: WaitOptions): Promise<GiteaComment> {
    const comments = await waitUntil(`a comment on ${repo.name}#${index}`, () => this.comments(repo, index), (list) => list.some(done), options);
    return comments.find(done) as GiteaComment;
  }

  /**
   * A repository webhook of type gitea (JSON, signed with `secret`). A comment on a pull request
   * is the event "pull_request_comment" in a hook's event list (Gitea delivers it with
   * X-Gitea-Event: issue_comment); "issue_comment" alone covers comments on issues only.
   */
  async createWebhook(repo: GiteaRepo, hook: { url: string; secret: string; events?: readonly string[] }): Promise<number> {
    const { data } = await this.request<{ id: number }>("POST", `/repos/${repo.owner}/${repo.name}/hooks`, {
      type: "gitea",
      active: true,
      events: hook.events ?? ["issue_comment", "pull_request_comment"],
      config: { url: hook.url, content_type: "json", secret: hook.secret },
    });
    return data.id;
  }
}

const apis = new Map<GiteaRole, GiteaApi>();

/** The API as one of the bed's users: admin (site admin, owns coop-cloud), maintainer (write), outsider (read). */
export function giteaApi(role: GiteaRole): GiteaApi {
  let api = apis.get(role);
  if (!api) apis.set(role, (api = new GiteaApi(role)));
  return api;
}
