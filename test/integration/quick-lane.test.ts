import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { FileCoordination } from "../../infra/adapters/coordination";
import * as swarm from "../../infra/adapters/swarm";
import { runStackName } from "../../infra/naming";
import { leasedCanonicalOf } from "../../runner/warm-context";
import type { RunResults } from "../../runner/results";
import { CanonicalStackFixture, withVolumes } from "../support/canonical-stack";
import { assertPutBack, baselineOf, CanonicalBaseline, commitOf, leaseWaitMs, TestCatalogue } from "../support/quick-runs";
import { runResults, runToEnd, stackNamed, warmstack } from "../support/runs";

/**
 * The quick lane on the bed: `warmstack run --quick` borrows a seeded canonical of custom-html (its
 * check writes into the app's data), and afterwards the canonical is its known-good again, byte for
 * byte (invariant 2), and nothing of the run is left (invariant 5). One warm stack for the suite; its
 * tests share the canonical, so they run one after the other.
 */
const recipe = "custom-html";
const V100 = "1.0.0+1.0";
const V110 = "1.1.0+1.1";
const UNHEALTHY = "1.5.2+1.2";

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

function step(results: RunResults, name: string) {
  const found = results.steps.find((entry) => entry.name === name);
  assert.ok(found, `results have a ${name} step: ${JSON.stringify(results.steps)}`);
  return { ...found, endsAt: Date.parse(found.startedAt) + found.durationMs, startsAt: Date.parse(found.startedAt) };
}

describe("the quick lane on the bed", { concurrency: false }, () => {
  let fixture: CanonicalStackFixture;
  let baseline: CanonicalBaseline;
  let v110: string;
  let unhealthy: string;
  let canonicalDomain: string;

  before(async () => {
    fixture = await CanonicalStackFixture.create([{ recipe, tags: [V100, V110, UNHEALTHY], knownGood: V100 }]);
    const up = await fixture.up();
    assert.equal(up.exitCode, 0, up.output);
    baseline = await baselineOf(fixture, recipe, V100);
    v110 = await commitOf(fixture, recipe, V110);
    unhealthy = await commitOf(fixture, recipe, UNHEALTHY);
    canonicalDomain = fixture.app(recipe).domain;
  });

  after(async () => {
    await fixture?.dispose();
  });

  it("quick PASS: the PR commit upgrades the borrowed canonical, the tests pass, and the canonical is put back byte-identical", async () => {
    const run = await runToEnd(fixture.project, ["run", "--recipe", recipe, "--quick", "--ref", v110]);
    const { output, stack, results } = run;
    assert.equal(run.exitCode, 0, output);
    assert.ok(stack && results, output);
    assert.equal(results.outcome, "passed", output);
    assert.equal(results.mode, "quick");
    assert.equal(results.lane, "quick");
    assert.equal(results.confidence, "lower");
    assert.equal(results.gatesMerge, false);
    assert.equal(results.deployCount, 2, "the known-good, then the PR commit");
    assert.equal(results.deployed, v110);
    assert.equal(results.ref, v110);
    assert.deepEqual(results.fallbacks, []);
    assert.equal(results.failedStep, null);
    assert.equal(results.promotion.outcome, "not-eligible");
    assert.match(results.promotion.reason, /quick run never promotes/);
    assert.equal(results.tests.outcome, "passed");
    assert.equal(results.tests.exitCode, 0);
    assert.deepEqual(
      results.steps.map((entry) => [entry.name, entry.outcome]),
      [["prepare", "passed"], ["up", "passed"], ["tests", "passed"], ["destroy", "passed"], ["promote", "passed"]],
    );
    assert.match(step(results, "up").detail ?? "", new RegExp(`^quick lane, ${v110} on ${escape(canonicalDomain)}, 2 deploy\\(s\\)$`));
    // The check wrote a file into the canonical's data: proof the put-back had something to undo.
    const written = /ok files: PUT then GET \/files\/(check-quick-[0-9]+-[0-9]+)/.exec(results.tests.outputTail);
    assert.ok(written, results.tests.outputTail);
    assert.match(output, /Lower-confidence result/);

    await assertPutBack(fixture, baseline, [stack]);
    const found = await withVolumes(baseline.volumes, `find /v -name '${written[1]}' | wc -l`, { readOnly: true });
    assert.equal(found.trim(), "0", "the file the tests wrote is gone");
    assert.equal(await fixture.configuredKnownGood(recipe), V100, "a quick run never promotes");
    assert.equal((await fixture.canonical(recipe))?.knownGood, V100);
  });

  it("quick FAIL: an unhealthy PR commit fails the up step, exits non-zero naming it, and the canonical is put back", async () => {
    // A short deploy timeout: the unhealthy version answers 503 until the deadline.
    const catalogue = await TestCatalogue.create(recipe, { deployTimeoutSeconds: 40 });
    try {
      const run = await runToEnd(fixture.project, ["run", "--recipe", recipe, "--quick", "--ref", unhealthy], { WARMSTACK_CATALOGUE: catalogue.file });
      const { output, stack, results } = run;
      assert.notEqual(run.exitCode, 0, output);
      assert.equal(run.exitCode, 1, output);
      assert.ok(stack && results, output);
      assert.equal(results.outcome, "failed");
      assert.equal(results.failedStep, "up");
      assert.equal(results.mode, "quick");
      assert.equal(results.lane, "quick", "the lane that ran, though the up failed");
      assert.equal(results.confidence, "lower");
      assert.equal(results.deployCount, 2, "the known-good, then the PR commit that failed");
      assert.match(results.error ?? "", /health \/health: HTTP 503|503/, results.error ?? "");
      assert.equal(results.tests.outcome, "not-run");
      assert.equal(results.promotion.outcome, "not-eligible");
      assert.equal(results.gatesMerge, false, "a failed quick request never gates a merge");
      assert.deepEqual(
        results.steps.map((entry) => [entry.name, entry.outcome]),
        [["prepare", "passed"], ["up", "failed"], ["destroy", "passed"], ["promote", "skipped"]],
      );
      assert.match(output, new RegExp(`up ${recipe} \\(${stack}\\): failed in [0-9.]+s`), "the progress names the failing step");
      assert.match(output, /\*\*Failed step:\*\* `up`/, "the summary names the failing step");

      await assertPutBack(fixture, baseline, [stack]);
    } finally {
      await catalogue.dispose();
    }
  });

  it("two quick runs at once on the same canonical: the lease serializes them, both pass, the canonical is put back", async (t) => {
    const runs = await Promise.all([0, 1].map(() => warmstack(fixture.project, ["run", "--recipe", recipe, "--quick", "--ref", v110])));
    const outputs = runs.map((run) => String(run.all));
    for (const [index, run] of runs.entries()) assert.equal(run.exitCode, 0, outputs[index]);
    const stacks = outputs.map((output) => stackNamed(output)!);
    assert.ok(stacks[0] && stacks[1] && stacks[0] !== stacks[1], stacks.join(" "));
    const results = (await runResults(fixture.project, stacks[0])).concat(await runResults(fixture.project, stacks[1]));
    for (const entry of results) {
      assert.equal(entry.outcome, "passed");
      assert.equal(entry.lane, "quick", "the second run waited for the lease instead of falling back");
      assert.deepEqual(entry.fallbacks, []);
      assert.equal(entry.deployCount, 2);
    }
    const waits = stacks.map((stack, index) => leaseWaitMs(outputs[index]!, stack));
    const [first, second] = waits[0]! <= waits[1]! ? [0, 1] : [1, 0];
    const [a, b] = [results[first!]!, results[second!]!];
    // The second took the lease only once the first had put the canonical back and released it.
    assert.ok(waits[second!]! > 10_000, `the second run waited for the lease (${waits.join(", ")} ms)`);
    assert.ok(waits[first!]! < 5_000, `the first run got the lease at once (${waits.join(", ")} ms)`);
    t.diagnostic(`lease waits: ${stacks[first!]} ${waits[first!]} ms, ${stacks[second!]} ${waits[second!]} ms`);
    const firstDestroy = step(a, "destroy");
    assert.ok(
      step(b, "tests").startsAt >= firstDestroy.endsAt - 1000,
      `the second run's tests started after the first run's destroy ended (${step(b, "tests").startedAt} vs ${new Date(firstDestroy.endsAt).toISOString()})`,
    );
    assert.ok(
      step(b, "up").endsAt - firstDestroy.endsAt > 5_000,
      "the second run deployed (both deploys) after the first released the canonical",
    );

    await assertPutBack(fixture, baseline, stacks);
  });

  it("a lease held past its deadline: the run falls back to the cold lane, says why, passes, and leaves the lease alone", async () => {
    const holder = runStackName(recipe, randomBytes(3).toString("hex"));
    const canonical = leasedCanonicalOf((await fixture.canonical(recipe)) as unknown as Record<string, unknown>);
    assert.ok(canonical, "the seeded canonical's state is what a quick run borrows");
    // A live run (this process) holds the canonical.
    await new FileCoordination(fixture.project.stateDir).register(holder, process.pid);
    try {
      const taken = await new FileCoordination(fixture.project.stateDir).tryTakeLease(recipe, holder, canonical);
      assert.equal(taken.taken, true);
      try {
        const run = await runToEnd(fixture.project, ["run", "--recipe", recipe, "--quick", "--ref", v110, "--lease-timeout", "2"]);
        const { output, stack, results } = run;
        assert.equal(run.exitCode, 0, output);
        assert.ok(stack && results, output);
        assert.equal(results.outcome, "passed");
        assert.equal(results.mode, "quick");
        assert.equal(results.lane, "cold");
        assert.equal(results.deployCount, 1);
        assert.equal(results.deployed, v110);
        assert.equal(results.fallbacks.length, 1, JSON.stringify(results.fallbacks));
        const [fallback] = results.fallbacks;
        assert.equal(fallback!.from, "quick");
        assert.equal(fallback!.to, "cold");
        assert.match(fallback!.reason, new RegExp(`lease stayed held for 2s \\(held by ${holder} since .*\\): ran in the cold lane`));
        assert.match(output, new RegExp(`quick → cold: .*lease stayed held for 2s`));
        assert.notEqual(results.promotion.outcome, "promoted", "an older ref never promotes");
        const wait = leaseWaitMs(output, stack);
        assert.ok(wait >= 2_000 && wait < 30_000, `bounded by the deadline (${wait} ms)`);
        assert.match(step(results, "up").detail ?? "", new RegExp(`^cold lane, ${v110} on cust-[0-9a-f]{6}\\.${escape(fixture.baseDomain)}, 1 deploy\\(s\\)$`));

        // The lease is still ours: the run neither took it nor freed it, and never touched the canonical.
        assert.equal((await new FileCoordination(fixture.project.stateDir).readLease(recipe))?.stack, holder);
        assert.deepEqual(await swarm.stackServices(fixture.stack(recipe)), []);
      } finally {
        assert.equal(await new FileCoordination(fixture.project.stateDir).releaseLease(recipe, holder), true);
      }
    } finally {
      await new FileCoordination(fixture.project.stateDir).unregister(holder);
    }
    await assertPutBack(fixture, baseline);
  });
});
