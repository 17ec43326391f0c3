/**
 * A Gitea or Forgejo forge's REST API (`/api/v1`), as the bridge uses it: who the token is, what
 * permission a commenter has, a pull request's head, and the answers — commit statuses and comments.
 * Every call has a deadline; calls that change nothing are retried on 5xx and connection errors, and
 * so are the answers (a status or a comment posted twice says the same thing twice, no more). The
 * token goes only into the Authorization header; errors name the call, never the token.
 */
export interface ForgeOptions {
  /** The forge's base URL, e.g. https://git.coopcloud.tech */
  url: string;
  token: string;
  /** Per attempt; default 15 s. */
  timeoutMs?: number;
  /** Default 4. */
  attempts?: number;
  /** Pause before the second attempt, doubled each time; default 1 s. */
  backoffMs?: number;
}

export class ForgeError extends Error {
  constructor(
    readonly call: string,
    readonly status: number | undefined,
    detail: string,
  ) {
    super(`forge ${call}: ${detail}`);
    this.name = "ForgeError";
  }
}

export interface PullRequestHead {
  number: number;
  state: "open" | "closed";
  merged: boolean;
  /** The head commit. */
  sha: string;
  /** Where the head lives: the repository itself, or a fork. */
  headRepository: string;
  headCloneUrl: string;
}

export type StatusState = "pending" | "success" | "failure" | "error";

export interface CommitStatus {
  state: StatusState;
  /** e.g. warmstack/cold */
  context: string;
  description: string;
  targetUrl?: string;
}

/** A forge's status descriptions are short (Gitea keeps 255 characters). */
const DESCRIPTION_MAX = 140;

export class Forge {
  private readonly base: string;

  constructor(private readonly options: ForgeOptions) {
    this.base = `${options.url.replace(/\/+$/, "")}/api/v1`;
  }

  /** The login the token belongs to: the bridge ignores its own comments by it. */
  async currentUser(): Promise<string> {
    const user = (await this.call("GET", "/user")) as { login?: unknown };
    if (typeof user.login !== "string") throw new ForgeError("GET /user", undefined, "no login in the answer");
    return user.login;
  }

  /** admin, write, read or none; a user the forge does not know has none. */
  async permission(repository: string, user: string): Promise<string> {
    try {
      const answer = (await this.call("GET", `/repos/${repository}/collaborators/${encodeURIComponent(user)}/permission`)) as { permission?: unknown };
      return typeof answer.permission === "string" ? answer.permission : "none";
    } catch (error) {
      if (error instanceof ForgeError && (error.status === 404 || error.status === 403)) return "none";
      throw error;
    }
  }

  async pullRequest(repository: string, number: number): Promise<PullRequestHead> {
    const pr = (await this.call("GET", `/repos/${repository}/pulls/${number}`)) as {
      number?: number;
      state?: string;
      merged?: boolean;
      head?: { sha?: string; repo?: { full_name?: string; clone_url?: string } | null };
    };
    const sha = pr.head?.sha;
    if (typeof sha !== "string" || !/^[0-9a-f]{40}$/.test(sha)) throw new ForgeError(`GET /repos/${repository}/pulls/${number}`, undefined, "the answer names no head commit");
    return {
      number,
      state: pr.state === "open" ? "open" : "closed",
      merged: pr.merged === true,
      sha,
      headRepository: pr.head?.repo?.full_name ?? repository,
      headCloneUrl: pr.head?.repo?.clone_url ?? "",
    };
  }

  async setStatus(repository: string, sha: string, status: CommitStatus): Promise<void> {
    const description = status.description.length > DESCRIPTION_MAX ? `${status.description.slice(0, DESCRIPTION_MAX - 1)}…` : status.description;
    await this.call("POST", `/repos/${repository}/statuses/${sha}`, { state: status.state, context: status.context, description, ...(status.targetUrl ? { target_url: status.targetUrl } : {}) });
  }

  async comment(repository: string, number: number, body: string): Promise<void> {
    await this.call("POST", `/repos/${repository}/issues/${number}/comments`, { body });
  }

  private async call(method: "GET" | "POST", apiPath: string, body?: unknown): Promise<unknown> {
    const attempts = this.options.attempts ?? 4;
    const what = `${method} ${apiPath}`;
    let last: ForgeError | undefined;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      if (attempt > 1) await new Promise((resolve) => setTimeout(resolve, (this.options.backoffMs ?? 1000) * 2 ** (attempt - 2)));
      let response: Response;
      try {
        response = await fetch(`${this.base}${apiPath}`, {
          method,
          headers: { Authorization: `token ${this.options.token}`, Accept: "application/json", ...(body === undefined ? {} : { "Content-Type": "application/json" }) },
          body: body === undefined ? undefined : JSON.stringify(body),
          signal: AbortSignal.timeout(this.options.timeoutMs ?? 15_000),
        });
      } catch (error) {
        last = new ForgeError(what, undefined, `${(error as Error).name === "TimeoutError" ? "no answer in time" : ((error as { cause?: { code?: string } }).cause?.code ?? (error as Error).message)} (attempt ${attempt} of ${attempts})`);
        continue;
      }
      const text = await response.text();
      if (response.ok) return text === "" ? {} : JSON.parse(text);
      last = new ForgeError(what, response.status, `HTTP ${response.status} ${text.slice(0, 200)} (attempt ${attempt} of ${attempts})`);
      if (response.status < 500 && response.status !== 429) throw last;
    }
    throw last!;
  }
}
