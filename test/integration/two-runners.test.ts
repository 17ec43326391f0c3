import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import { execa } from "execa";
import { Client } from "pg";
import * as swarm from "../../infra/adapters/swarm";
import { readRunProgress } from "../../infra/adapters/run-progress";
import { runProgressFile } from "../../runner/run-plan";
import { runProcesses } from "../../runner/processes";
import { CanonicalStackFixture, treeHash } from "../support/canonical-stack";
import { postgresPassword, postgresUrlWithoutPassword, scratchDatabase } from "../support/postgres";
import { PulumiProject } from "../support/pulumi-project";
import { assertPutBack, baselineOf, CanonicalBaseline, commitOf, eventually, leaseWaitMs, OutputWatch, TestCatalogue } from "../support/quick-runs";
import { leftovers, NOTHING_LEFT, reapReport, runResults, stackNamed, warmstack } from "../support/runs";

/**
 * Two runners as two hosts would run them: each with a state directory and host id of its own, both
 * on one PostgreSQL (coordination and Pulumi state) and one swarm, sharing the installation (project
 * directory) and the warm stack's ABRA_DIR. Runner A made the warm stack; runner B only runs and reaps.
 * The heartbeat expiry is raised so that no test depends on how fast the machine is: expiry is
 * proved by ageing the heartbeat in the database, as the clock would.
 */
const recipe = "custom-html";
const V100 = "1.0.0+1.0";
const V110 = "1.1.0+1.1";
const RUN = String.raw`run-custom-html-[0-9a-f]{6}`;

/** A host going down: its runner and every process of the run it was running, all at once, without a chance to clean up. */
async function killHost(runnerPid: number, stack: string): Promise<void> {
  process.kill(runnerPid, "SIGKILL");
  for (let round = 0; round < 50; round++) {
    const pids = await runProcesses(stack);
    if (pids.length === 0) return;
    for (const pid of pids) {
      try {
        process.kill(pid, "SIGKILL");
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "ESRCH") throw error;
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.fail(`the processes of ${stack} kept coming back: ${(await runProcesses(stack)).join(" ")}`);
}

describe("two runners on one PostgreSQL and one swarm", { concurrency: false }, () => {
  let database: Awaited<ReturnType<typeof scratchDatabase>>;
  let runnerA: PulumiProject;
  let runnerB: PulumiProject;
  let fixture: CanonicalStackFixture;
  let baseline: CanonicalBaseline;
  let v100: string;
  let v110: string;
  let scratch: string;
  const password = () => postgresPassword();

  before(async () => {
    database = await scratchDatabase();
    const shared = {
      // The coordination URL carries its password; the Pulumi CLI's gets it from PGPASSWORD: both ways must work, and neither may print it.
      WARMSTACK_COORDINATION_URL: `${database.url}?sslmode=disable`,
      PGPASSWORD: postgresPassword(),
      WARMSTACK_HEARTBEAT_EXPIRY_SECONDS: "900",
    };
    const backendUrl = postgresUrlWithoutPassword(database.name);
    runnerA = await PulumiProject.create({ backendUrl, env: { ...shared, WARMSTACK_HOST_ID: "runner-a" } });
    runnerB = await PulumiProject.create({ backendUrl, env: { ...shared, WARMSTACK_HOST_ID: "runner-b" }, sharing: runnerA });
    fixture = await CanonicalStackFixture.create([{ recipe, tags: [V100, V110], knownGood: V100 }], { project: runnerA });
    runnerB.catalogue = runnerA.catalogue;
    const up = await fixture.up();
    assert.equal(up.exitCode, 0, up.output);
    baseline = await baselineOf(fixture, recipe, V100);
    v100 = await commitOf(fixture, recipe, V100);
    v110 = await commitOf(fixture, recipe, V110);
    scratch = await mkdtemp(path.join(os.tmpdir(), "warmstack-two-runners-"));
  });

  after(async () => {
    await fixture?.dispose();
    await runnerB?.dispose();
    // Both runners' coordination in this process is one pool (one URL).
    await runnerA?.coordination().close();
    await database?.drop();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  it("both runners see one backend: B lists the warm stack A made, and no runner prints the database password", async () => {
    const status = await warmstack(runnerB, ["status", "--json"]);
    assert.equal(status.exitCode, 0, String(status.all));
    assert.ok(String(status.stdout).includes(fixture.app(recipe).domain), `runner B's status names A's canonical:\n${String(status.stdout)}`);
    assert.ok(!String(status.all).includes(password()));
  });

  it("two quick runs of one canonical from the two runners at once: the lease serializes them, both pass; B's reap leaves A's live run alone", { timeout: 1_800_000 }, async () => {
    const fifo = path.join(scratch, "release-a");
    await execa("mkfifo", [fifo]);
    // A's tests hold the canonical (the check has written into it) until the test lets them finish.
    const holding = await TestCatalogue.create(recipe, { test: ["bash", "-c", `bash ${TestCatalogue.check(recipe)} && cat ${fifo} >/dev/null`], testTimeoutSeconds: 1200 });
    const normal = await TestCatalogue.create(recipe, {});
    try {
      const a = warmstack(runnerA, ["run", "--recipe", recipe, "--quick", "--ref", v110], { WARMSTACK_CATALOGUE: holding.file });
      const watchA = new OutputWatch(a.stderr!, a);
      const stackA = (await watchA.waitFor(new RegExp(`tests ${recipe} \\((${RUN})\\): started`), 900_000))[1]!;
      assert.equal((await runnerB.coordination().readLease(recipe))?.stack, stackA, "A's run holds the canonical");

      const b = warmstack(runnerB, ["run", "--recipe", recipe, "--quick", "--ref", v110, "--lease-timeout", "1200"], { WARMSTACK_CATALOGUE: normal.file });
      const watchB = new OutputWatch(b.stderr!, b);
      const stackB = (await watchB.waitFor(new RegExp(`up ${recipe} \\((${RUN})\\): started`), 900_000))[1]!;
      // B's quick lane has found the lease taken by A's run, and waits for it.
      const heldBy = await eventually("runner B's run to find the lease held", async () => (await readRunProgress(runProgressFile(runnerB.stateDir, stackB))).leaseHeldBy, 600_000, 200);
      assert.equal(heldBy, stackA);
      const hosts = Object.fromEntries((await runnerA.coordination().listRegistrations()).map((registration) => [registration.stack, registration.host]));
      assert.deepEqual([hosts[stackA], hosts[stackB]], ["runner-a", "runner-b"], "each run is registered under its runner's host id");

      const reap = await reapReport(runnerB);
      assert.equal(reap.exitCode, 0, reap.output);
      assert.deepEqual(reap.report.removed, [], `B's reap removed nothing of two live runs:\n${reap.output}`);
      assert.ok(reap.report.kept.some((decision) => decision.kind === "stack" && decision.stack === stackA), `B's reap kept A's run stack:\n${reap.output}`);
      assert.equal((await runnerB.coordination().readLease(recipe))?.stack, stackA, "A's lease is untouched");

      await writeFile(fifo, "go\n");
      const [doneA, doneB] = await Promise.all([a, b]);
      const [outputA, outputB] = [String(doneA.all), String(doneB.all)];
      assert.equal(doneA.exitCode, 0, outputA);
      assert.equal(doneB.exitCode, 0, outputB);
      const [resultsA] = await runResults(runnerA, stackA);
      const [resultsB] = await runResults(runnerB, stackB);
      for (const results of [resultsA!, resultsB!]) {
        assert.equal(results.outcome, "passed");
        assert.equal(results.lane, "quick", "neither fell back to the cold lane");
        assert.deepEqual(results.fallbacks, []);
        assert.equal(results.deployCount, 2);
      }
      assert.ok(leaseWaitMs(outputB, stackB) > 0, "B waited for the lease");
      const destroyA = resultsA!.steps.find((step) => step.name === "destroy")!;
      const testsB = resultsB!.steps.find((step) => step.name === "tests")!;
      assert.ok(Date.parse(testsB.startedAt) >= Date.parse(destroyA.startedAt), "B's tests ran on the canonical only after A had started putting it back");
      for (const output of [outputA, outputB]) assert.ok(!output.includes(password()), "no runner printed the database password");
      await assertPutBack(fixture, baseline, [stackA, stackB]);
    } finally {
      await holding.dispose();
      await normal.dispose();
    }
  });

  it("six cold runs at once, three on each runner: six stacks, six apps, all pass, nothing left", { timeout: 1_800_000 }, async () => {
    const runs = await Promise.all(
      [runnerA, runnerB, runnerA, runnerB, runnerA, runnerB].map(async (runner) => ({ runner, run: await warmstack(runner, ["run", "--recipe", recipe, "--ref", v100]) })),
    );
    const stacks: string[] = [];
    const domains = new Set<string>();
    for (const { runner, run } of runs) {
      const output = String(run.all);
      assert.equal(run.exitCode, 0, output);
      const stack = stackNamed(output);
      assert.ok(stack, output);
      stacks.push(stack);
      const [results] = await runResults(runner, stack);
      assert.ok(results, `the runner that ran ${stack} has its results`);
      assert.equal(results.outcome, "passed");
      assert.equal(results.lane, "cold");
      domains.add(/cold lane, [0-9a-f]+ on ([^,]+),/.exec(results.steps.find((step) => step.name === "up")?.detail ?? "")?.[1] ?? "");
    }
    assert.equal(new Set(stacks).size, 6, `six distinct run stacks: ${stacks.join(" ")}`);
    assert.equal(domains.size, 6, `six distinct run apps: ${[...domains].join(" ")}`);
    assert.deepEqual(await leftovers(runnerA, recipe, { baseDomain: fixture.baseDomain }), NOTHING_LEFT);
    for (const stack of stacks) assert.deepEqual(await runProcesses(stack), [], `no process of ${stack} is left`);
    await assertPutBack(fixture, baseline);
  });

  it("runner A killed with SIGKILL during a quick run: B's reap leaves A's lease alone until its heartbeat expires, then puts the canonical back byte-identical", { timeout: 1_800_000 }, async () => {
    const a = warmstack(runnerA, ["run", "--recipe", recipe, "--quick", "--ref", v110]);
    const watchA = new OutputWatch(a.stderr!, a);
    const stackA = (await watchA.waitFor(new RegExp(`up ${recipe} \\((${RUN})\\): started`), 900_000))[1]!;
    // Mid-up: the lease is A's and the canonical is being deployed; A's engine holds the stack's lock in the database.
    await eventually("A's run to take the lease and deploy the canonical", async () =>
      (await runnerB.coordination().readLease(recipe))?.stack === stackA && (await swarm.stackServices(fixture.stack(recipe))).length > 0 ? true : undefined,
    );
    await killHost(a.pid!, stackA);
    await a;

    const early = await reapReport(runnerB);
    assert.equal(early.exitCode, 0, early.output);
    assert.deepEqual(early.report.removed, [], `nothing of A's run is removed while its heartbeat is fresh:\n${early.output}`);
    assert.equal((await runnerB.coordination().readLease(recipe))?.stack, stackA, "A's lease is left alone");
    assert.ok((await runnerB.coordination().listRegistrations()).some((registration) => registration.stack === stackA && registration.host === "runner-a"));

    // The clock moves on past the expiry without A's heartbeat.
    const client = new Client({ connectionString: database.url });
    await client.connect();
    try {
      const aged = await client.query("update warmstack_runs set heartbeat_at = now() - interval '1 hour' where stack = $1", [stackA]);
      assert.equal(aged.rowCount, 1);
    } finally {
      await client.end();
    }

    const late = await reapReport(runnerB);
    assert.equal(late.exitCode, 0, late.output);
    assert.deepEqual(late.report.failed, [], late.output);
    const removed = late.report.removed.map((decision) => `${decision.kind} ${"stack" in decision ? decision.stack : ""}`);
    assert.ok(removed.includes(`stack ${stackA}`), `B's reap destroyed A's run stack (its lock in the database cleared): ${removed.join("; ")}`);
    assert.ok(removed.includes(`registration ${stackA}`), removed.join("; "));
    assert.ok(!late.output.includes(password()));
    assert.equal(await treeHash(baseline.volumes), baseline.tree);
    await assertPutBack(fixture, baseline, [stackA]);
  });
});
