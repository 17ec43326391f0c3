import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import { execa } from "execa";
import { Client } from "pg";
import { Coordination, FileCoordination, ifLockFree, PostgresCoordination, SCHEMA_VERSION } from "../../infra/adapters/coordination";
import { DeadlineError } from "../../infra/adapters/health";
import { REPO_ROOT } from "../support/pulumi-project";
import { scratchDatabase } from "../support/postgres";
import { SAMPLE_CANONICAL as canonical } from "../support/sample-canonical";

/**
 * The coordination contract, one suite run against both backends on the bed: files under a state
 * directory and the bed's real PostgreSQL. Locks, leases and registrations behave alike; what
 * differs is only how a holder is judged (pid on this host for files, heartbeat age for postgres).
 */

const COORDINATION = path.join(REPO_ROOT, "dist", "infra", "adapters", "coordination", "index.js");

/** A process of its own that holds the named lock until it is killed (it prints "held" once it has it). */
function lockHolder(env: Record<string, string>, stateDir: string, name: string) {
  const script = `const { coordinationAt } = require(${JSON.stringify(COORDINATION)});
coordinationAt(${JSON.stringify(stateDir)}).withLock(${JSON.stringify(name)}, { what: "test", timeoutMs: 60000 }, () => { process.stdout.write("held\\n"); return new Promise(() => setInterval(() => undefined, 1000)); });`;
  return execa(process.execPath, ["-e", script], { env: { ...process.env, ...env }, reject: false });
}

interface Backend {
  name: string;
  env: Record<string, string>;
  stateDir: string;
  open(): Coordination;
  /** Makes a registration's holder look dead to this backend, as a crash would leave it. */
  killHolder(stack: string): Promise<void>;
  dispose(): Promise<void>;
}

async function fileBackend(): Promise<Backend> {
  const stateDir = await mkdtemp(path.join(os.tmpdir(), "warmstack-coord-"));
  return {
    name: "file",
    env: {},
    stateDir,
    open: () => new FileCoordination(stateDir),
    killHolder: async (stack) => {
      const dead = spawnSync(process.execPath, ["-e", ""]).pid!;
      await new FileCoordination(stateDir).register(stack, dead);
    },
    dispose: () => rm(stateDir, { recursive: true, force: true }),
  };
}

async function postgresBackend(): Promise<Backend> {
  const database = await scratchDatabase();
  const stateDir = await mkdtemp(path.join(os.tmpdir(), "warmstack-coord-"));
  const opened: Coordination[] = [];
  return {
    name: "postgres",
    env: { WARMSTACK_COORDINATION_URL: database.url },
    stateDir,
    open: () => {
      const coordination = new PostgresCoordination(database.url);
      opened.push(coordination);
      return coordination;
    },
    killHolder: async (stack) => {
      await new PostgresCoordination(database.url).register(stack).then(async () => {
        const client = new Client({ connectionString: database.url });
        await client.connect();
        // Its heartbeat stopped ten minutes ago: the runner on that host is gone.
        await client.query("update warmstack_runs set heartbeat_at = now() - interval '10 minutes' where stack = $1", [stack]);
        await client.end();
      });
    },
    dispose: async () => {
      for (const coordination of opened) await coordination.close();
      await database.drop();
      await rm(stateDir, { recursive: true, force: true });
    },
  };
}

for (const make of [fileBackend, postgresBackend]) {
  describe(`the coordination contract: ${make.name.replace("Backend", "")} backend`, () => {
    let backend: Backend;
    let coordination: Coordination;

    before(async () => {
      backend = await make();
      coordination = backend.open();
    });

    after(async () => {
      await backend.dispose();
    });

    it("a lease goes to one taker at a time, is adopted by its own holder, and only its holder releases it", async () => {
      const first = await coordination.tryTakeLease("custom-html", "run-custom-html-aaaaaa", canonical);
      assert.equal(first.taken, true);
      const again = await coordination.tryTakeLease("custom-html", "run-custom-html-aaaaaa", canonical);
      assert.deepEqual([again.taken, again.taken && again.adopted], [true, true]);
      const other = await coordination.tryTakeLease("custom-html", "run-custom-html-bbbbbb", canonical);
      assert.equal(other.taken, false);
      assert.equal(!other.taken && other.holder.stack, "run-custom-html-aaaaaa");
      await coordination.recordLeasedVolumes("custom-html", "run-custom-html-aaaaaa", ["warm-custom-html_warm_test_content"]);
      assert.deepEqual((await coordination.readLease("custom-html"))?.volumes, ["warm-custom-html_warm_test_content"]);
      await assert.rejects(coordination.recordLeasedVolumes("custom-html", "run-custom-html-bbbbbb", []), /not held by run-custom-html-bbbbbb/);
      assert.equal(await coordination.releaseLease("custom-html", "run-custom-html-bbbbbb"), false, "a lease someone else holds is never released");
      assert.deepEqual((await coordination.listLeases()).map((lease) => lease.recipe), ["custom-html"]);
      assert.equal(await coordination.releaseLease("custom-html", "run-custom-html-aaaaaa"), true);
      assert.equal(await coordination.readLease("custom-html"), null);
    });

    it("two takers at once: exactly one gets the lease", async () => {
      const takers = Array.from({ length: 8 }, (_, index) => `run-sso-app-${index.toString(16).padStart(6, "0")}`);
      const attempts = await Promise.all(takers.map((stack) => backend.open().tryTakeLease("sso-app", stack, canonical)));
      assert.equal(attempts.filter((attempt) => attempt.taken).length, 1);
      const winner = (await coordination.readLease("sso-app"))!.stack;
      assert.ok(attempts.every((attempt) => attempt.taken || attempt.holder.stack === winner));
      await coordination.releaseLease("sso-app", winner);
    });

    it("a registration lives while its holder beats, and a killed holder's is judged dead", async () => {
      const live = await coordination.register("run-custom-html-c0c0c0");
      await coordination.heartbeat("run-custom-html-c0c0c0");
      await backend.killHolder("run-custom-html-dead00");
      const listed = await coordination.listRegistrations();
      const judged = Object.fromEntries(listed.map((registration) => [registration.stack, coordination.isLive(registration)]));
      assert.deepEqual(judged, { "run-custom-html-c0c0c0": true, "run-custom-html-dead00": false });
      assert.equal(listed.find((registration) => registration.stack === live.stack)?.host, os.hostname());
      await coordination.unregister("run-custom-html-c0c0c0");
      await coordination.unregister("run-custom-html-dead00");
      assert.deepEqual(await coordination.listRegistrations(), []);
    });

    it("a lock is exclusive across processes, names its holder when it is not given up, and is freed when the holder dies", async () => {
      const holder = lockHolder(backend.env, backend.stateDir, "warm-config");
      await new Promise<void>((resolve, reject) => {
        holder.stdout?.on("data", (chunk: Buffer) => chunk.toString().includes("held") && resolve());
        void holder.then((ended) => reject(new Error(`the holder ended: ${ended.stderr}`)));
      });
      await assert.rejects(
        coordination.withLock("warm-config", { what: "the warm stack's config lock", timeoutMs: 1500 }, async () => "taken"),
        new RegExp(`timed out after 2s waiting for the warm stack's config lock; last state: .*held by pid ${holder.pid} on ${os.hostname()}`),
      );
      const asked = await ifLockFree(coordination, "warm-config", "the warm stack's config lock", async () => "taken");
      assert.equal(asked.ran, false, "a held lock is not waited for");
      assert.match(!asked.ran ? asked.holder : "", new RegExp(`held by pid ${holder.pid} on ${os.hostname()}`));
      holder.kill("SIGKILL");
      await holder;
      assert.equal(await coordination.withLock("warm-config", { what: "the warm stack's config lock", timeoutMs: 30_000 }, async () => "taken"), "taken");
      assert.deepEqual(await ifLockFree(coordination, "warm-config", "the warm stack's config lock", async () => "taken"), { ran: true, value: "taken" });
      await assert.rejects(
        ifLockFree(coordination, "warm-config", "the warm stack's config lock", async () => {
          throw new DeadlineError("the work's own wait", 1000, "still waiting");
        }),
        /the work's own wait/,
        "a deadline of the work itself is the work's error, not a held lock",
      );
    });
  });
}

describe("the coordination backends' own refusals", () => {
  it("a torn lease file (file backend) is an error naming the file, never a free lease", async () => {
    const stateDir = await mkdtemp(path.join(os.tmpdir(), "warmstack-coord-"));
    try {
      const files = new FileCoordination(stateDir);
      await files.tryTakeLease("custom-html", "run-custom-html-aaaaaa", canonical);
      await writeFile(files.leaseFile("custom-html"), '{"recipe":"custom-html","sta');
      await assert.rejects(files.readLease("custom-html"), /lease \S+custom-html\.json is not JSON/);
      await assert.rejects(files.tryTakeLease("custom-html", "run-custom-html-bbbbbb", canonical), /is not JSON/);
    } finally {
      await rm(stateDir, { recursive: true, force: true });
    }
  });

  it("an unreachable or wrong PostgreSQL names the host, never the password", async () => {
    const secret = "hunter2-not-a-real-one";
    const unreachable = new PostgresCoordination(`postgres://ci:${secret}@127.0.0.1:1/warmstack`);
    await assert.rejects(unreachable.listRegistrations(), (error: Error) => /the coordination database postgres 127\.0\.0\.1:1\/warmstack cannot be reached/.test(error.message) && !error.message.includes(secret));
    await unreachable.close();
    const database = await scratchDatabase();
    const wrong = new PostgresCoordination(database.url.replace(/:([^:@/]+)@/, `:${secret}@`));
    await assert.rejects(wrong.listLeases(), (error: Error) => /refused the login/.test(error.message) && !error.message.includes(secret));
    await wrong.close();
    await database.drop();
  });

  it("a schema from a newer warmstack is refused with both versions named", async () => {
    const database = await scratchDatabase();
    try {
      const client = new Client({ connectionString: database.url });
      await client.connect();
      await client.query("create table warmstack_schema (version integer not null)");
      await client.query("insert into warmstack_schema (version) values ($1)", [SCHEMA_VERSION + 1]);
      await client.end();
      const coordination = new PostgresCoordination(database.url);
      await assert.rejects(coordination.listLeases(), new RegExp(`has schema version ${SCHEMA_VERSION + 1}, newer than this warmstack's ${SCHEMA_VERSION}`));
      await coordination.close();
    } finally {
      await database.drop();
    }
  });
});
