import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { RESULTS_SCHEMA_ID, RunResults, parseResults, renderMarkdown, resultsSchema } from "../../runner/results";

const STARTED = "2025-06-01T10:00:00.000Z";

function step(name: string, outcome: RunResults["steps"][number]["outcome"], durationMs: number) {
  return { name, outcome, startedAt: STARTED, durationMs };
}

function coldPass(): RunResults {
  return {
    schema: RESULTS_SCHEMA_ID,
    recipe: "keycloak",
    stack: "run-keycloak-a1b2c3",
    ref: "",
    deployed: "10.7.1+26.6.2",
    pr: 42,
    mode: "cold",
    lane: "cold",
    confidence: "authoritative",
    gatesMerge: true,
    sso: "none",
    fallbacks: [],
    steps: [
      step("prepare", "passed", 1200),
      step("up", "passed", 95_432),
      step("tests", "passed", 12_050),
      step("destroy", "passed", 20_000),
      step("promote", "passed", 30_000),
    ],
    deployCount: 1,
    leaseWaitMs: 0,
    tests: { outcome: "passed", exitCode: 0, durationMs: 12_050, outputTail: "ok 1 - login\nok 2 - logout\n" },
    promotion: { outcome: "promoted", version: "10.7.1+26.6.2", reason: "green cold run on the latest version" },
    outcome: "passed",
    failedStep: null,
    error: null,
    startedAt: STARTED,
    finishedAt: "2025-06-01T10:02:40.000Z",
    durationMs: 160_000,
  };
}

function quickFail(): RunResults {
  return {
    ...coldPass(),
    recipe: "lasuite-docs",
    stack: "run-lasuite-docs-0f0f0f",
    ref: "0123abcd",
    deployed: "0123abcd",
    mode: "quick",
    lane: "quick",
    confidence: "lower",
    gatesMerge: false,
    sso: "cold-keycloak",
    fallbacks: [{ from: "warm-keycloak", to: "cold-keycloak", reason: "the warm Keycloak did not answer its health check" }],
    steps: [step("prepare", "passed", 900), step("lease", "passed", 40), step("up", "failed", 300_000), step("destroy", "passed", 25_000)],
    tests: { outcome: "not-run", exitCode: null, durationMs: 0, outputTail: "" },
    promotion: { outcome: "not-eligible", version: null, reason: "a quick run never promotes" },
    outcome: "failed",
    failedStep: "up",
    error: "service lasuite-docs_app did not converge within 300 s",
  };
}

function rejects(value: unknown, field: RegExp): void {
  assert.throws(
    () => parseResults(value),
    (err: unknown) => {
      assert.ok(err instanceof Error);
      assert.match(err.message, field);
      return true;
    },
  );
}

describe("parseResults", () => {
  it("accepts a cold pass and a quick failure", () => {
    assert.deepEqual(parseResults(coldPass()), coldPass());
    assert.deepEqual(parseResults(quickFail()), quickFail());
    assert.deepEqual(parseResults(JSON.parse(JSON.stringify(quickFail()))), quickFail());
  });

  const wrong: Array<[string, (r: RunResults) => unknown, RegExp]> = [
    ["an unknown schema id", (r) => ({ ...r, schema: "warmstack/results@2" }), /^ {2}schema: /m],
    ["a bad recipe name", (r) => ({ ...r, recipe: "Key_cloak" }), /^ {2}recipe: /m],
    ["the warm stack as run stack", (r) => ({ ...r, stack: "warm" }), /^ {2}stack: .*run stack/m],
    ["a branch name as ref", (r) => ({ ...r, ref: "main" }), /^ {2}ref: .*commit hash/m],
    ["an uppercase commit", (r) => ({ ...r, ref: "ABCDEF0" }), /^ {2}ref: /m],
    ["a deployed value that is neither version nor commit", (r) => ({ ...r, deployed: "latest" }), /^ {2}deployed: /m],
    ["pr 0", (r) => ({ ...r, pr: 0 }), /^ {2}pr: /m],
    ["an unknown mode", (r) => ({ ...r, mode: "warm" }), /^ {2}mode: /m],
    ["a missing lane", (r) => ({ ...r, lane: undefined }), /^ {2}lane: /m],
    ["an authoritative quick lane", (r) => ({ ...r, lane: "quick", mode: "quick", gatesMerge: false }), /^ {2}confidence: .*lower-confidence/m],
    ["a lower-confidence run gating the merge", (r) => ({ ...r, confidence: "lower" }), /^ {2}gatesMerge: /m],
    ["an unknown sso", (r) => ({ ...r, sso: "keycloak" }), /^ {2}sso: /m],
    ["a fallback without reason", (r) => ({ ...r, fallbacks: [{ from: "quick", to: "cold" }] }), /^ {2}fallbacks\.0\.reason: /m],
    ["a negative step duration", (r) => ({ ...r, steps: [{ ...r.steps[0], durationMs: -1 }] }), /^ {2}steps\.0\.durationMs: /m],
    ["a fractional step duration", (r) => ({ ...r, steps: [{ ...r.steps[0], durationMs: 1.5 }] }), /^ {2}steps\.0\.durationMs: /m],
    ["a step time that is not ISO", (r) => ({ ...r, steps: [{ ...r.steps[0], startedAt: "yesterday" }] }), /^ {2}steps\.0\.startedAt: .*ISO/m],
    ["an unknown step outcome", (r) => ({ ...r, steps: [{ ...r.steps[0], outcome: "ok" }] }), /^ {2}steps\.0\.outcome: /m],
    ["an unknown field in a step", (r) => ({ ...r, steps: [{ ...r.steps[0], secret: "x" }] }), /^ {2}steps\.0\.secret: unknown field/m],
    ["an unknown top-level field", (r) => ({ ...r, password: "hunter2" }), /^ {2}password: unknown field/m],
    ["a negative deploy count", (r) => ({ ...r, deployCount: -1 }), /^ {2}deployCount: /m],
    ["an unknown tests outcome", (r) => ({ ...r, tests: { ...r.tests, outcome: "green" } }), /^ {2}tests\.outcome: /m],
    ["a missing output tail", (r) => ({ ...r, tests: { ...r.tests, outputTail: undefined } }), /^ {2}tests\.outputTail: /m],
    ["a promoted non-version", (r) => ({ ...r, promotion: { ...r.promotion, version: "latest" } }), /^ {2}promotion\.version: /m],
    ["a failed step that is not a step", (r) => ({ ...r, outcome: "failed", failedStep: "deploy" }), /^ {2}failedStep: .*one of the steps/m],
    ["a passed run with a failed step", (r) => ({ ...r, failedStep: "up" }), /^ {2}failedStep: .*null when the run passed/m],
    ["a finish time that is not ISO", (r) => ({ ...r, finishedAt: 1717236160000 }), /^ {2}finishedAt: /m],
  ];

  for (const [what, make, field] of wrong) {
    it(`rejects ${what}, naming the field`, () => rejects(make(coldPass()), field));
  }

  it("names every bad field at once", () => {
    rejects({ ...coldPass(), mode: "fast", durationMs: -5 }, /mode: [\s\S]*durationMs: /);
  });

  it("rejects what is not an object", () => {
    rejects(null, /results are invalid/);
    rejects("{}", /results are invalid/);
  });

  it("is the schema that parseResults applies", () => {
    assert.equal(resultsSchema.safeParse(coldPass()).success, true);
    assert.equal(resultsSchema.safeParse({ ...coldPass(), schema: undefined }).success, false);
  });
});

describe("renderMarkdown", () => {
  it("says a quick result is lower-confidence and does not gate the merge", () => {
    const md = renderMarkdown(quickFail());
    assert.match(md, /lower-confidence/i);
    assert.match(md, /does not gate the merge/);
    assert.doesNotMatch(md, /authoritative/i);
  });

  it("says a cold result is authoritative and gates the merge", () => {
    const md = renderMarkdown(coldPass());
    assert.match(md, /authoritative/i);
    assert.match(md, /gates the merge/);
    assert.doesNotMatch(md, /lower-confidence/i);
  });

  it("heads with the recipe and the outcome", () => {
    assert.match(renderMarkdown(coldPass()).split("\n")[0], /^#+ .*keycloak PASSED$/);
    assert.match(renderMarkdown(quickFail()).split("\n")[0], /^#+ .*lasuite-docs FAILED$/);
    const interrupted = { ...quickFail(), outcome: "interrupted" as const, failedStep: null };
    assert.match(renderMarkdown(interrupted).split("\n")[0], /INTERRUPTED$/);
  });

  it("names the failed step and the error", () => {
    const md = renderMarkdown(quickFail());
    assert.match(md, /\*\*Failed step:\*\* `up`/);
    assert.match(md, /did not converge within 300 s/);
    assert.doesNotMatch(renderMarkdown(coldPass()), /Failed step/);
  });

  it("tabulates the steps with durations in seconds to one decimal", () => {
    const md = renderMarkdown(coldPass());
    assert.match(md, /^\| prepare \| passed \| 1\.2 \|$/m);
    assert.match(md, /^\| up \| passed \| 95\.4 \|$/m);
    assert.match(md, /^\| tests \| passed \| 12\.1 \|$/m);
  });

  it("shows the ref, the deployed version, the PR, the lane asked for and fallbacks with reasons", () => {
    const cold = renderMarkdown(coldPass());
    assert.match(cold, /\*\*Ref:\*\* latest/);
    assert.match(cold, /`10\.7\.1\+26\.6\.2`/);
    assert.match(cold, /#42/);
    const fellBack = renderMarkdown({
      ...quickFail(),
      lane: "cold",
      confidence: "authoritative",
      fallbacks: [{ from: "quick", to: "cold", reason: "the lease was not free within 600 s" }],
    });
    assert.match(fellBack, /requested: quick/);
    assert.match(fellBack, /- quick → cold: the lease was not free within 600 s/);
    assert.match(renderMarkdown(quickFail()), /`0123abcd`/);
    const neverDeployed = renderMarkdown({ ...quickFail(), mode: "cold", lane: null, deployed: null, pr: null, confidence: "authoritative" });
    assert.match(neverDeployed, /\*\*Lane:\*\* none \(never deployed; requested: cold\)/);
    assert.match(neverDeployed, /\*\*Deployed:\*\* nothing/);
    assert.doesNotMatch(neverDeployed, /PR:/);
  });

  it("states the test outcome and the promotion", () => {
    const cold = renderMarkdown(coldPass());
    assert.match(cold, /\*\*Tests:\*\* passed in 12\.1 s, exit code 0/);
    assert.match(cold, /\*\*Promotion:\*\* promoted `10\.7\.1\+26\.6\.2`/);
    const quick = renderMarkdown(quickFail());
    assert.match(quick, /\*\*Tests:\*\* not run/);
    assert.match(quick, /\*\*Promotion:\*\* not eligible: a quick run never promotes/);
  });

  it("keeps free text on one line, and table cells free of pipes", () => {
    const r = quickFail();
    r.steps[2] = { ...r.steps[2], detail: "exit 1 | see\nlogs" };
    r.fallbacks = [{ from: "quick", to: "cold", reason: "line one\n## not a heading" }];
    const md = renderMarkdown(r);
    assert.match(md, /^\| up \| failed \(exit 1 \\\| see logs\) \| 300\.0 \|$/m);
    assert.doesNotMatch(md, /^## not a heading/m);
  });

  it("stays compact for a typical run", () => {
    const r = coldPass();
    r.tests.outputTail = Array.from({ length: 20 }, (_, i) => `ok ${i + 1} - case`).join("\n");
    r.fallbacks = [{ from: "warm-keycloak", to: "cold-keycloak", reason: "warm Keycloak unhealthy" }];
    assert.ok(renderMarkdown(r).split("\n").length <= 60);
  });

  it("shows no field that is not in the schema", () => {
    const withExtra = { ...coldPass(), adminPassword: "s3cret-value" } as RunResults;
    assert.doesNotMatch(renderMarkdown(withExtra), /s3cret-value/);
  });
});

describe("renderMarkdown: the output tail is fenced safely", () => {
  function longestRun(text: string): number {
    return Math.max(0, ...(text.match(/`+/g) ?? []).map((run) => run.length));
  }

  function fenceOf(md: string): string {
    const m = /^(`{3,})text$/m.exec(md);
    assert.ok(m !== null, "no fenced output block");
    return m[1];
  }

  it("fences a tail that contains ``` with a longer fence", () => {
    const r = coldPass();
    r.tests.outputTail = "before\n```\nnot the end\n````\nafter";
    const md = renderMarkdown(r);
    const fence = fenceOf(md);
    assert.equal(fence, "`````");
    assert.ok(md.includes(`${fence}text\n${r.tests.outputTail}\n${fence}\n`));
  });

  it("uses a fence longer than any backtick run in any tail, and keeps the tail verbatim", () => {
    const tailChar = fc.oneof(
      { weight: 4, arbitrary: fc.constant("`") },
      { weight: 2, arbitrary: fc.constantFrom("\n", " ", "~", "\r") },
      { weight: 3, arbitrary: fc.string({ minLength: 1, maxLength: 1 }) },
    );
    const tailArb = fc
      .string({ unit: tailChar, minLength: 1, maxLength: 200 })
      .filter((t) => t.replace(/\n+$/, "") !== "");
    fc.assert(
      fc.property(tailArb, (tail) => {
        const r = coldPass();
        r.tests.outputTail = tail;
        const md = renderMarkdown(r);
        const fence = fenceOf(md);
        const shown = tail.replace(/\n+$/, "");
        assert.ok(fence.length > longestRun(tail), `fence ${fence.length} vs run ${longestRun(tail)}`);
        assert.ok(md.includes(`\n${fence}text\n${shown}\n${fence}\n`));
      }),
      { numRuns: 500 },
    );
  });

  it("shows no block for an empty tail", () => {
    assert.doesNotMatch(renderMarkdown(quickFail()), /^```/m);
  });
});
