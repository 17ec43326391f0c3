import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { assembleResults, RunFacts } from "../../runner/results";

/**
 * How a run's facts become its results: which lane ran, what that result is worth, and what failed.
 * Pure: the runner gathers the facts, this decides.
 */
const started = new Date("2026-12-01T10:00:00.000Z");
const finished = new Date("2026-12-01T10:01:30.000Z");
const step = (name: string, outcome: "passed" | "failed" | "skipped" | "interrupted") => ({ name, outcome, startedAt: started.toISOString(), durationMs: 10 });

function facts(overrides: Partial<RunFacts> = {}): RunFacts {
  return {
    recipe: "custom-html",
    stack: "run-custom-html-a1b2c3",
    ref: "",
    pr: 7,
    mode: "cold",
    up: { lane: "cold", deployed: "1.0.1+1.0", deployCount: "1", leaseWaitMs: "0" },
    recorded: { lane: "cold", deployAttempts: 1 },
    sso: "none",
    fallbacks: [],
    steps: [step("prepare", "passed"), step("up", "passed"), step("tests", "passed"), step("destroy", "passed"), step("promote", "passed")],
    tests: { outcome: "passed", exitCode: 0, durationMs: 10, outputTail: "" },
    promotion: { outcome: "not-eligible", version: null, reason: "custom-html is not an enrolled canonical" },
    failedStep: null,
    error: null,
    startedAt: started,
    finishedAt: finished,
    ...overrides,
  };
}

describe("a run's results from its facts", () => {
  it("a green cold run is authoritative, gates the merge and takes its figures from the up", () => {
    const results = assembleResults(facts());
    assert.equal(results.outcome, "passed");
    assert.equal(results.lane, "cold");
    assert.equal(results.confidence, "authoritative");
    assert.equal(results.gatesMerge, true);
    assert.equal(results.deployCount, 1);
    assert.equal(results.durationMs, 90_000);
    assert.equal(results.pr, 7);
  });

  it("a failed up with no outputs still says which lane ran and how many deploys it started", () => {
    const results = assembleResults(
      facts({
        mode: "quick",
        up: {},
        recorded: { lane: "quick", deployAttempts: 2 },
        steps: [step("prepare", "passed"), step("up", "failed"), step("destroy", "passed")],
        failedStep: "up",
        error: "health /health: HTTP 503",
      }),
    );
    assert.deepEqual([results.outcome, results.lane, results.confidence, results.gatesMerge, results.deployCount], ["failed", "quick", "lower", false, 2]);
    assert.equal(results.deployed, null);
  });

  it("a quick run whose lease stayed held ran cold: the fallback is added and the result still does not count as asked-for quick", () => {
    const results = assembleResults(facts({ mode: "quick", up: { lane: "cold", deployed: "1.0.1+1.0", deployCount: "1", laneFallback: "the canonical's lease stayed held for 2s" } }));
    assert.equal(results.mode, "quick");
    assert.equal(results.lane, "cold");
    assert.deepEqual(results.fallbacks, [{ from: "quick", to: "cold", reason: "the canonical's lease stayed held for 2s" }]);
  });

  it("a run that never deployed has no lane and is not a merge gate", () => {
    const results = assembleResults(facts({ up: {}, recorded: { deployAttempts: 0 }, steps: [step("prepare", "failed"), step("destroy", "passed")], failedStep: "prepare", error: "x" }));
    assert.equal(results.lane, null);
    assert.equal(results.gatesMerge, false);
  });

  it("a signal makes it interrupted, whatever else happened", () => {
    fc.assert(
      fc.property(fc.constantFrom<NodeJS.Signals>("SIGINT", "SIGTERM"), fc.constantFrom("up", "tests", null), (received, failedStep) => {
        const steps = [step("prepare", "passed"), step("up", failedStep === "up" ? "interrupted" : "passed"), step("tests", failedStep === "tests" ? "interrupted" : "passed"), step("destroy", "passed")];
        assert.equal(assembleResults(facts({ received, steps, failedStep, error: failedStep ? "stopped" : null })).outcome, "interrupted");
      }),
    );
  });

  it("only a cold lane ever gates the merge", () => {
    fc.assert(
      fc.property(fc.constantFrom("cold", "quick", undefined), fc.constantFrom("cold", "quick", undefined), (upLane, recordedLane) => {
        const results = assembleResults(facts({ up: { lane: upLane }, recorded: { lane: recordedLane, deployAttempts: 0 } }));
        assert.equal(results.gatesMerge, (upLane ?? recordedLane) === "cold");
        assert.equal(results.confidence === "lower", (upLane ?? recordedLane) === "quick");
      }),
    );
  });
});
