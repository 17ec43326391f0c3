import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import type { CanaryRunResult } from "../../infra/adapters/canary-runs";
import { outcomeOf } from "../../infra/keycloak-canary";

const run = (recipe: string, outcome: CanaryRunResult["outcome"], failedStep: string | null = null, error: string | null = null): CanaryRunResult => ({
  recipe,
  outcome,
  stack: outcome === "no-result" ? null : `run-${recipe}-abc123`,
  failedStep,
  error,
  resultsFile: outcome === "no-result" ? null : `/state/results/run-${recipe}-abc123/results.json`,
});

describe("the Keycloak canary's verdict", () => {
  it("is green when every canary run passed, naming them and the version", () => {
    const outcome = outcomeOf("1.1.0+26.7.3", { ok: true }, [run("sso-app", "passed"), run("wiki", "passed")], 95_400);
    assert.equal(outcome.passed, true);
    assert.match(outcome.reason, /^the canary passed: sso-app, wiki green against a copy of the live Keycloak at 1\.1\.0\+26\.7\.3 \(95 s\)$/);
  });

  it("is red when one run failed, naming the recipe, its step, its error and its results", () => {
    const outcome = outcomeOf("1.6.0+26.7.3", { ok: true }, [run("sso-app", "failed", "up", "admin login: HTTP 404"), run("wiki", "passed")], 61_000);
    assert.equal(outcome.passed, false);
    assert.match(outcome.reason, /sso-app failed in step up \(admin login: HTTP 404\), results in \/state\/results\/run-sso-app-abc123\/results\.json/);
    assert.doesNotMatch(outcome.reason, /wiki/, "only what failed is named");
  });

  it("is red when the canary Keycloak did not come up, without any run", () => {
    const outcome = outcomeOf("1.6.0+26.7.3", { ok: false, why: "the canary Keycloak at 1.6.0+26.7.3 on the live data did not come up: timed out" }, [], 300_000);
    assert.deepEqual([outcome.passed, outcome.runs], [false, []]);
    assert.match(outcome.reason, /did not come up: timed out \(canary of 300 s\)/);
  });

  it("is green only when every run passed and there was one (property)", () => {
    const outcomes = fc.constantFrom<CanaryRunResult["outcome"]>("passed", "failed", "interrupted", "no-result");
    fc.assert(
      fc.property(fc.array(outcomes, { maxLength: 5 }), fc.boolean(), (runOutcomes, booted) => {
        const runs = runOutcomes.map((outcome, index) => run(`r${index}`, outcome));
        const verdict = outcomeOf("1.0.1+1.0", booted ? { ok: true } : { ok: false, why: "down" }, runs, 1000);
        assert.equal(verdict.passed, booted && runs.length > 0 && runOutcomes.every((outcome) => outcome === "passed"));
      }),
    );
  });
});
