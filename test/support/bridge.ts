import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import * as path from "node:path";
import { execa, ResultPromise } from "execa";
import { proxyUrl } from "./bed";
import { gitea } from "./gitea";
import { PulumiProject, REPO_ROOT } from "./pulumi-project";
import { freePort } from "./warm-stack";

/**
 * A real `warmstack serve` on a test project, answering the bed's real Gitea as its admin user (so the
 * bridge's own comments are the admin's), with a webhook secret of its own. Its structured log lines
 * are collected as they come.
 */
export class BridgeProcess {
  readonly lines: Record<string, unknown>[] = [];
  private child?: ResultPromise<{ reject: false; detached: true; stdin: "ignore" }>;

  private constructor(
    readonly project: PulumiProject,
    readonly port: number,
    readonly secret: string,
    readonly secretFile: string,
    readonly catalogue: string,
    private readonly env: Record<string, string>,
    private readonly maxConcurrent: number,
    private readonly forgeUrl: string,
  ) {}

  static async create(project: PulumiProject, options: { catalogue: string; env?: Record<string, string>; maxConcurrent?: number; forgeUrl?: string }): Promise<BridgeProcess> {
    const secret = randomBytes(24).toString("base64url");
    const secretFile = path.join(project.stateDir, `webhook-secret-${randomBytes(3).toString("hex")}`);
    await writeFile(secretFile, `${secret}\n`, { mode: 0o600 });
    return new BridgeProcess(project, await freePort(), secret, secretFile, options.catalogue, options.env ?? {}, options.maxConcurrent ?? 2, options.forgeUrl ?? gitea().url);
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Starts it (in a process group of its own, so a kill can take its runs with it) and waits until it listens. */
  async start(catalogue = this.catalogue): Promise<void> {
    const args = ["serve", "--listen", `127.0.0.1:${this.port}`, "--forge-url", this.forgeUrl, "--forge-token-file", gitea().users.admin.tokenFile, "--webhook-secret-file", this.secretFile, "--catalogue", catalogue, "--max-concurrent", String(this.maxConcurrent)];
    this.child = execa(process.execPath, [path.join(REPO_ROOT, "dist", "runner", "cli.js"), ...args], {
      env: { ...this.project.env(), WARMSTACK_PROXY_URL: proxyUrl(), ...this.env },
      reject: false,
      detached: true,
      stdin: "ignore",
    });
    let pending = "";
    this.child.stdout.on("data", (chunk: Buffer) => {
      pending += chunk.toString();
      const complete = pending.split("\n");
      pending = complete.pop() ?? "";
      for (const line of complete.filter(Boolean)) this.lines.push(JSON.parse(line) as Record<string, unknown>);
    });
    await this.waitForLine((line) => line.event === "listening", 120_000);
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** The first log line `match` accepts, waiting for it (bounded); the error shows the events so far. */
  async waitForLine(match: (line: Record<string, unknown>) => boolean, timeoutMs = 60_000): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.lines.find(match);
      if (found) return found;
      if (this.child?.exitCode !== undefined && this.child.exitCode !== null) throw new Error(`the bridge exited (${this.child.exitCode}): ${(await this.child).stderr}`);
      if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs / 1000}s waiting for a bridge log line; events so far: ${this.lines.map((line) => line.event).join(", ")}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }

  async runs(): Promise<{ queued: { id: string; pr: number }[]; running: { id: string; pr: number }[]; recent: { id: string; pr: number; state: string; outcome?: string }[] }> {
    return (await fetch(`${this.url}/runs`)).json() as never;
  }

  /** SIGTERM: it stops taking deliveries and lets its runs clean up. */
  async stop(): Promise<void> {
    if (!this.child || this.child.exitCode !== null) return;
    this.child.kill("SIGTERM");
    await this.child;
  }

  /** SIGKILL of its whole process group, as a crash or an OOM kill of the service would. */
  async kill(): Promise<void> {
    if (!this.child?.pid) return;
    try {
      process.kill(-this.child.pid, "SIGKILL");
    } catch {
      // already gone
    }
    await this.child;
  }
}
