import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { median, numberFlag, percentile, stringFlag } from "../../bench/support";

describe("the benchmarks' shared figures and flags", () => {
  it("a percentile is one of the samples, no smaller than the share of samples below it", () => {
    fc.assert(
      fc.property(fc.array(fc.double({ min: 0, max: 1e6, noNaN: true }), { minLength: 1, maxLength: 200 }), fc.integer({ min: 1, max: 100 }), (values, p) => {
        const value = percentile(values, p);
        assert.ok(values.includes(value));
        assert.ok(values.filter((sample) => sample <= value).length >= Math.ceil((p / 100) * values.length));
      }),
    );
    assert.equal(median([3, 1, 2]), 2);
    assert.equal(percentile([5, 1, 4, 2, 3], 99), 5);
    assert.throws(() => percentile([], 50), /no samples/);
  });

  it("reads whole-number and string flags, refusing what is out of range, naming the flag", () => {
    assert.equal(numberFlag("--rounds", 3, 20, ["node", "bench"]), 3);
    assert.equal(numberFlag("--rounds", 3, 20, ["node", "bench", "--rounds", "7"]), 7);
    for (const bad of ["0", "21", "1.5", "x"]) assert.throws(() => numberFlag("--rounds", 3, 20, ["--rounds", bad]), /^Error: --rounds: must be a whole number from 1 to 20$/);
    assert.equal(stringFlag("--json", ["--json", "/tmp/r.json"]), "/tmp/r.json");
    assert.equal(stringFlag("--json", []), undefined);
    assert.throws(() => stringFlag("--json", ["--json", "--smoke"]), /--json: needs a value/);
  });
});
