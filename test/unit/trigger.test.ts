import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { TRIGGER_FORMS, TriggerDecision, TriggerMode, parseTrigger } from "../../runner/trigger";

// The oracle is written independently of the parser: ASCII space, tab, LF and CR around one of the
// two forms, nothing else.
const ACCEPTED = /^[ \t\n\r]*!testme( --quick)?[ \t\n\r]*$/;
const MODES = Object.keys(TRIGGER_FORMS) as TriggerMode[];

const surroundingWs = fc.string({ unit: fc.constantFrom(" ", "\t", "\n", "\r"), maxLength: 8 });
const modeArb = fc.constantFrom(...MODES);

function expectedMode(text: string): TriggerMode {
  return text.includes("--quick") ? "quick" : "cold";
}

function assertRefused(decision: TriggerDecision, input: string): void {
  assert.equal(decision.accepted, false, `accepted ${JSON.stringify(input)}`);
  if (!decision.accepted) assert.ok(decision.reason.trim().length > 0, `no reason for ${JSON.stringify(input)}`);
}

// Characters a mutation may bring in: the ones the forms are made of, their lookalikes, and the
// invisible ones that make a comment look right while it is not.
const mutationChar = fc.oneof(
  fc.constantFrom(..."!testmquik- \t\n\rTESMQ`'\"_.:"),
  fc.constantFrom("\u00A0", "\u200B", "\u200C", "\u200D", "\u2060", "\uFEFF", "\u2013", "\u2014", "\u2212", "\uFF01", "\u0435"),
  fc.string({ unit: "binary", minLength: 1, maxLength: 1 }),
);

type Mutation = { kind: "insert" | "delete" | "replace"; at: number; ch: string };

function mutate(form: string, m: Mutation): string {
  const at = m.at % (m.kind === "insert" ? form.length + 1 : form.length);
  if (m.kind === "insert") return form.slice(0, at) + m.ch + form.slice(at);
  if (m.kind === "delete") return form.slice(0, at) + form.slice(at + 1);
  return form.slice(0, at) + m.ch + form.slice(at + 1);
}

const mutationArb: fc.Arbitrary<Mutation> = fc.record({
  kind: fc.constantFrom("insert", "delete", "replace"),
  at: fc.nat(),
  ch: mutationChar,
});

describe("parseTrigger: accepted forms", () => {
  it("exports the two forms", () => {
    assert.deepEqual(TRIGGER_FORMS, { cold: "!testme", quick: "!testme --quick" });
  });

  for (const mode of MODES) {
    it(`accepts ${JSON.stringify(TRIGGER_FORMS[mode])} as ${mode}`, () => {
      assert.deepEqual(parseTrigger(TRIGGER_FORMS[mode]), { accepted: true, mode });
    });
  }

  it("accepts either form inside any ASCII whitespace", () => {
    fc.assert(
      fc.property(surroundingWs, modeArb, surroundingWs, (before, mode, after) => {
        assert.deepEqual(parseTrigger(`${before}${TRIGGER_FORMS[mode]}${after}`), { accepted: true, mode });
      }),
    );
  });
});

describe("parseTrigger: everything else is refused", () => {
  // Arbitrary text rarely comes near the forms, so most cases are built around them.
  const nearForm = fc
    .tuple(fc.string({ maxLength: 4 }), modeArb, fc.string({ maxLength: 4 }))
    .map(([before, mode, after]) => `${before}${TRIGGER_FORMS[mode]}${after}`);
  const anyText = fc.oneof(
    fc.string(),
    fc.string({ unit: "binary" }),
    fc.string({ unit: fc.constantFrom(..."!testme --quick\t\n\r\u00A0\u200B`"), maxLength: 24 }),
    nearForm,
  );

  it("refuses, with a reason, any comment that is not whitespace + a form + whitespace", () => {
    fc.assert(
      fc.property(anyText, (comment) => {
        const decision = parseTrigger(comment);
        if (ACCEPTED.test(comment)) {
          assert.deepEqual(decision, { accepted: true, mode: expectedMode(comment) });
        } else {
          assertRefused(decision, comment);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it("refuses one-character edits of a form unless the edit leaves a form", () => {
    fc.assert(
      fc.property(modeArb, mutationArb, surroundingWs, surroundingWs, (mode, m, before, after) => {
        const edited = `${before}${mutate(TRIGGER_FORMS[mode], m)}${after}`;
        const decision = parseTrigger(edited);
        if (ACCEPTED.test(edited)) {
          assert.deepEqual(decision, { accepted: true, mode: expectedMode(edited) });
        } else {
          assertRefused(decision, edited);
        }
      }),
      { numRuns: 2000 },
    );
  });
});

describe("parseTrigger: near misses", () => {
  const nearMisses: Array<[string, RegExp]> = [
    ["", /empty comment/],
    ["   \n\t\r ", /empty comment/],
    ["!TESTME", /case-sensitive/],
    ["!Testme", /case-sensitive/],
    ["!testme --QUICK", /case-sensitive: `--quick`/],
    ["! testme", /no space between `!` and `testme`/],
    ["!testme--quick", /one space between/],
    ["!testme  --quick", /one space between/],
    ["!testme\t--quick", /one space between/],
    ["!testme\n--quick", /one space between/],
    ["!testme\r\n--quick", /one space between/],
    ["!testme --quick --quick", /only once/],
    ["!testme quick", /two hyphens/],
    ["!testme -q", /unknown option -q: only/],
    ["!testme --fast", /unknown option --fast: only/],
    ["!testme -quick", /unknown option -quick/],
    ["!testme ---quick", /unknown option ---quick/],
    ["!testme --quick=yes", /unknown option: only/],
    ["!testme \u2014quick", /U\+2014\) is not a hyphen/],
    ["!testme \u2013quick", /U\+2013\) is not a hyphen/],
    ["!testme \u2013-quick", /not a hyphen/],
    ["!testme\u00A0--quick", /non-ASCII space \(U\+00A0\)/],
    ["\u00A0!testme", /non-ASCII space/],
    ["!test\u200Bme", /invisible or non-ASCII character \(U\+200B\)/],
    ["\uFEFF!testme", /U\+FEFF/],
    ["!testme\u200D", /U\+200D/],
    ["\uFF01testme", /U\+FF01/],
    ["!t\u0435stme", /U\+0435/],
    ["!testme\u2028", /U\+2028/],
    ["!testme\f", /U\+000C/],
    ["!testme\v--quick", /U\+000B/],
    ["!testme\u0000", /U\+0000/],
    ["please !testme", /it contains other text/],
    ["!testme please", /it contains other text/],
    ["!testme --quick now", /it contains other text/],
    ["!testme\n\nthanks!", /it contains other text/],
    ["!testme!", /it contains other text/],
    ["!testmee", /it contains other text/],
    ["!testme.", /it contains other text/],
    ["`!testme`", /without quotes or backticks/],
    ["```\n!testme\n```", /without quotes or backticks/],
    ['"!testme"', /without quotes or backticks/],
    ["'!testme --quick'", /without quotes or backticks/],
    ["> !testme", /it contains other text/],
    ["!test me", /must be exactly/],
    ["testme", /must be exactly/],
    ["/testme", /must be exactly/],
    ["!!testme", /it contains other text/],
    ["lgtm", /must be exactly/],
  ];

  for (const [comment, reason] of nearMisses) {
    it(`refuses ${JSON.stringify(comment)}`, () => {
      const decision = parseTrigger(comment);
      assertRefused(decision, comment);
      if (!decision.accepted) assert.match(decision.reason, reason);
    });
  }

  it("never echoes an option that could carry a mention or markup", () => {
    const decision = parseTrigger("!testme --@octocat");
    assertRefused(decision, "!testme --@octocat");
    if (!decision.accepted) assert.doesNotMatch(decision.reason, /@/);
  });
});
