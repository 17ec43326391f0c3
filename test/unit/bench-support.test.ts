import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { execa } from "execa";
import { mergePeaks, MemoryPeaks, roleOf, samplePeaks } from "../../bench/process-memory";
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

  it("names each process of a run by its role, from its command line", () => {
    const cases: [string[], string][] = [
      [["node", "/opt/warmstack/dist/runner/cli.js", "run", "--recipe", "custom-html"], "runner"],
      [["/usr/local/bin/pulumi", "up", "--yes"], "pulumi CLI"],
      [["/var/cache/bed/bin/pulumi-language-nodejs", "127.0.0.1:4000"], "language host"],
      [["node", "/opt/warmstack/node_modules/@pulumi/pulumi/cmd/run", "dist/stacks/run.js"], "program"],
      [["node", "/opt/warmstack/node_modules/@pulumi/pulumi/cmd/dynamic-provider/index.js", "127.0.0.1:4001"], "dynamic providers"],
      [["/usr/local/bin/pulumi-resource-pulumi-nodejs", "127.0.0.1:4001"], "dynamic providers"],
      [["docker", "stack", "deploy"], "tools (docker, git, tests)"],
      [["bash", "test/fixtures/checks/custom-html.sh"], "tools (docker, git, tests)"],
    ];
    for (const [commandLine, role] of cases) assert.equal(roleOf(commandLine), role, commandLine.join(" "));
  });

  it("merged peaks keep the larger of each figure, whichever side it came from", () => {
    const roles = ["runner", "pulumi CLI", "dynamic providers", "whole run"] as const;
    const peaks = fc.dictionary(fc.constantFrom(...roles), fc.record({ peakMb: fc.nat(10_000), largestProcessMb: fc.nat(10_000) })) as fc.Arbitrary<MemoryPeaks>;
    fc.assert(
      fc.property(peaks, peaks, (a, b) => {
        const merged = mergePeaks(a, b);
        for (const role of roles) {
          const sides = [a[role], b[role]].filter((peak) => peak !== undefined);
          if (sides.length === 0) assert.equal(merged[role], undefined);
          else {
            assert.equal(merged[role]?.peakMb, Math.max(...sides.map((peak) => peak.peakMb)));
            assert.equal(merged[role]?.largestProcessMb, Math.max(...sides.map((peak) => peak.largestProcessMb)));
          }
        }
      }),
    );
  });

  it("samples the resident memory of a live process tree, children included", async (t) => {
    // A parent shell whose child holds 64 MB it has written to; the sampler's first sample is taken
    // before it looks at `stop`, so an already settled stop still sees the tree once.
    const child = execa("bash", ["-c", `node -e 'const b = Buffer.alloc(64 * 1024 * 1024, 1); console.log("ready"); process.stdin.resume(); process.stdin.on("end", () => process.exit(b[0] - 1))'; wait`], { stdin: "pipe" });
    t.after(() => child.kill());
    await new Promise<void>((resolve) => child.stdout!.once("data", () => resolve()));
    const peaks = await samplePeaks(child.pid!, Promise.resolve());
    child.stdin!.end();
    await child;
    const tools = peaks["tools (docker, git, tests)"];
    assert.ok(tools && tools.largestProcessMb >= 64, `the node child's 64 MB are seen: ${JSON.stringify(peaks)}`);
    assert.ok(peaks["whole run"] && peaks["whole run"].peakMb >= tools.largestProcessMb, "the whole tree is at least its largest process");
  });
});
