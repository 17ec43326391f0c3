import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import fc from "fast-check";
import { ADVICE_WINDOW, laneAdvice, LaneSample } from "../../runner/lane-advice";
import { assembleResults, recentGreenRuns, renderMarkdown, RunFacts } from "../../runner/results";

const sample = (lane: LaneSample["lane"], seconds: number): LaneSample => ({ lane, durationMs: seconds * 1000 });

describe("lane advice: a quick run says when the cold lane has been the faster", () => {
  it("says so, with both medians, when quick's median is over 10% above cold's", () => {
    const advice = laneAdvice("custom-html", [sample("quick", 35), sample("cold", 24), sample("quick", 34), sample("cold", 25), sample("cold", 23)]);
    assert.equal(advice, "the cold lane is the faster one for custom-html: its green cold runs took 24.0 s (median of 3), its green quick runs 34.5 s (median of 2); a cold run is also authoritative");
  });

  it("says nothing until both lanes have a green run, or while quick is within 10% of cold", () => {
    assert.equal(laneAdvice("custom-html", [sample("quick", 35)]), undefined);
    assert.equal(laneAdvice("custom-html", [sample("cold", 24)]), undefined);
    assert.equal(laneAdvice("custom-html", [sample("quick", 26.4), sample("cold", 24)]), undefined);
    assert.match(laneAdvice("custom-html", [sample("quick", 26.5), sample("cold", 24)]) ?? "", /cold lane is the faster/);
  });

  it("looks only at the latest runs of each lane: an old slow quick run no longer counts", () => {
    const latest = [sample("quick", 20), ...Array.from({ length: ADVICE_WINDOW }, () => sample("cold", 24))];
    const older = Array.from({ length: ADVICE_WINDOW }, () => sample("quick", 60));
    assert.equal(laneAdvice("custom-html", [...latest, ...Array.from({ length: ADVICE_WINDOW - 1 }, () => sample("quick", 20)), ...older]), undefined);
  });

  it("advises exactly when the medians of the window differ by more than the tolerance", () => {
    const runs = fc.array(fc.record({ lane: fc.constantFrom("cold" as const, "quick" as const), durationMs: fc.integer({ min: 1, max: 3_600_000 }) }), { maxLength: 30 });
    fc.assert(
      fc.property(runs, (samples) => {
        const median = (values: number[]) => {
          const sorted = [...values].sort((a, b) => a - b);
          const middle = Math.floor(sorted.length / 2);
          return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
        };
        const window = (lane: LaneSample["lane"]) => samples.filter((run) => run.lane === lane).slice(0, ADVICE_WINDOW).map((run) => run.durationMs);
        const [cold, quick] = [window("cold"), window("quick")];
        const expected = cold.length > 0 && quick.length > 0 && median(quick) > median(cold) * 1.1;
        assert.equal(laneAdvice("r", samples) !== undefined, expected);
      }),
    );
  });
});

describe("lane advice: the runs it reads and the report that carries it", () => {
  const started = new Date("2026-12-01T10:00:00.000Z");
  const facts = (stack: string, mode: "cold" | "quick", seconds: number, finishedMinute: number, outcome: "passed" | "failed" = "passed"): RunFacts => ({
    recipe: "custom-html",
    stack,
    ref: "",
    pr: null,
    mode,
    up: { lane: mode, deployed: "1.0.1+1.0", deployCount: "1", leaseWaitMs: "0" },
    recorded: { lane: mode, deployAttempts: 1 },
    sso: "none",
    fallbacks: [],
    steps: [{ name: "tests", outcome: outcome, startedAt: started.toISOString(), durationMs: 10 }],
    tests: { outcome, exitCode: outcome === "passed" ? 0 : 1, durationMs: 10, outputTail: "" },
    promotion: { outcome: "not-eligible", version: null, reason: "not enrolled" },
    failedStep: outcome === "passed" ? null : "tests",
    error: outcome === "passed" ? null : "tests failed",
    startedAt: new Date(Date.parse("2026-12-01T10:00:00.000Z") + finishedMinute * 60_000 - seconds * 1000),
    finishedAt: new Date(Date.parse("2026-12-01T10:00:00.000Z") + finishedMinute * 60_000),
  });

  it("reads the recipe's green runs newest first, passing over failed runs, other recipes and unreadable files", async (t) => {
    const root = await mkdtemp(path.join(os.tmpdir(), "warmstack-lane-advice-"));
    t.after(() => rm(root, { recursive: true, force: true }));
    const write = async (stack: string, content: string) => {
      await mkdir(path.join(root, stack));
      await writeFile(path.join(root, stack, "results.json"), content);
    };
    await write("run-custom-html-000001", JSON.stringify(assembleResults(facts("run-custom-html-000001", "cold", 24, 1))));
    await write("run-custom-html-000002", JSON.stringify(assembleResults(facts("run-custom-html-000002", "quick", 35, 3))));
    await write("run-custom-html-000003", JSON.stringify(assembleResults(facts("run-custom-html-000003", "cold", 99, 5, "failed"))));
    await write("run-custom-html-000004", "{ not json");
    await write("run-sso-app-000005", JSON.stringify({ ...assembleResults(facts("run-custom-html-000005", "cold", 10, 7)), recipe: "sso-app", stack: "run-sso-app-000005" }));
    assert.deepEqual(await recentGreenRuns(root, "custom-html"), [sample("quick", 35), sample("cold", 24)]);
    assert.deepEqual(await recentGreenRuns(path.join(root, "missing"), "custom-html"), []);
  });

  it("the summary carries the advice when there is one, and no such line otherwise", () => {
    const results = assembleResults(facts("run-custom-html-000002", "quick", 35, 3));
    assert.doesNotMatch(renderMarkdown(results), /Lane advice/);
    const advised = { ...results, laneAdvice: "the cold lane is the faster one for custom-html: …" };
    assert.match(renderMarkdown(advised), /\n\*\*Lane advice:\*\* the cold lane is the faster one for custom-html: ….\n$/);
  });
});
