import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { FileCoordination } from "../../infra/adapters/coordination";
import type { NightlyReport } from "../../runner/nightly";
import { CanonicalStackFixture } from "../support/canonical-stack";
import { leftovers, NOTHING_LEFT, warmstack } from "../support/runs";

const V100 = "1.0.0+1.0";
const V101 = "1.0.1+1.0";

/** The nightly job on a warm stack of its own with one enrolled recipe (custom-html). */
describe("warmstack nightly", { concurrency: false }, () => {
  let fixture: CanonicalStackFixture;

  before(async () => {
    fixture = await CanonicalStackFixture.create([{ recipe: "custom-html", tags: [V100, V101], knownGood: V100 }]);
  });

  after(async () => {
    await fixture.dispose();
  });

  async function nightly(args: string[] = []): Promise<{ exitCode: number; report: NightlyReport; output: string }> {
    const run = await warmstack(fixture.project, ["nightly", "--json", ...args]);
    return { exitCode: run.exitCode ?? -1, report: JSON.parse(run.stdout) as NightlyReport, output: String(run.all) };
  }

  it("does nothing while a run is in flight, and says which", async () => {
    const stack = "run-custom-html-0f0f0f";
    await new FileCoordination(fixture.project.stateDir).register(stack);
    try {
      const { exitCode, report } = await nightly();
      assert.equal(exitCode, 0);
      assert.equal(report.skipped, true);
      assert.match(report.reason ?? "", /run-custom-html-0f0f0f/);
      assert.equal(report.warm, undefined);
      // Not even the warm stack's up ran: the canonical was never seeded.
      assert.equal(await fixture.canonical("custom-html"), undefined);
    } finally {
      await new FileCoordination(fixture.project.stateDir).unregister(stack);
    }
  });

  it("with --max-tests 0 seeds the warm stack and leaves the cold runs for another night", async () => {
    const { exitCode, report, output } = await nightly(["--max-tests", "0"]);
    assert.equal(exitCode, 0, output);
    assert.equal(report.warm?.ok, true);
    assert.deepEqual(report.runs, []);
    assert.deepEqual(report.notRun, ["custom-html"]);
    assert.equal((await fixture.canonical("custom-html"))?.knownGood, V100);
  });

  it("runs the enrolled recipe cold on its latest release and promotes it when green", async () => {
    const { exitCode, report, output } = await nightly();
    assert.equal(exitCode, 0, output);
    assert.equal(report.runs.length, 1);
    assert.equal(report.runs[0]?.outcome, "passed", output);
    assert.match(report.runs[0]?.promotion ?? "", /^promoted: known-good 1\.0\.0\+1\.0 → 1\.0\.1\+1\.0/);
    assert.equal((await fixture.canonical("custom-html"))?.knownGood, V101);
    assert.equal(await fixture.configuredKnownGood("custom-html"), V101);
    assert.deepEqual(await leftovers(fixture.project, "custom-html", { baseDomain: fixture.baseDomain }), NOTHING_LEFT);
  });
});
