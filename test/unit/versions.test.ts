import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  VersionError,
  bumpKind,
  compareVersions,
  isVersion,
  latestVersion,
  parseVersion,
  sortVersions,
  upstreamMajorChanged,
  versionsBetween,
} from "../../infra/versions";

const v = (raw: string) => parseVersion(raw);

// Well-formed versions, with upstream parts drawn from the schemes recipes really use plus odd ones.
const upstreamArb = fc.oneof(
  fc.stringMatching(/^v?\d{1,3}(\.\d{1,3}){0,2}(-[a-z]{1,6})?$/),
  fc.stringMatching(/^[0-9A-Za-z][0-9A-Za-z._-]{0,12}$/),
);
const rawArb = fc
  .tuple(fc.nat(12), fc.nat(12), fc.nat(12), upstreamArb)
  .map(([a, b, c, u]) => `${a}.${b}.${c}+${u}`);
// Anything at all, including near misses of the pattern.
const anyRawArb = fc.oneof(rawArb, fc.string({ maxLength: 20 }), rawArb.map((r) => ` ${r}`), rawArb.map((r) => r.replace("+", "-")));

describe("parseVersion", () => {
  it("parses the shapes recipes use", () => {
    assert.deepEqual(v("10.7.1+26.6.2"), {
      raw: "10.7.1+26.6.2",
      major: 10,
      minor: 7,
      patch: 1,
      upstream: "26.6.2",
      upstreamMajor: 26,
    });
    assert.equal(v("1.0.0+v3.6.12").upstreamMajor, 3);
    assert.equal(v("2.1.0+1.27.3-alpine").upstream, "1.27.3-alpine");
    assert.equal(v("2.1.0+1.27.3-alpine").upstreamMajor, 1);
    assert.equal(v("0.0.0+latest").upstreamMajor, null);
    assert.equal(v("0.1.0+vnext").upstreamMajor, null);
  });

  const nearMisses = [
    "1.0+1",
    "01.0.0+1",
    "1.00.0+1",
    "1.0.01+1",
    "1.0.0",
    "1.0.0+",
    "v1.0.0+1",
    "1.0.0-rc1+1",
    " 1.0.0+1",
    "1.0.0+1 ",
    "1.0.0+1\n",
    "1.0.0++1",
    "1.0.0+-1",
    "1.0.0+.1",
    "1.0.0+1+2",
    "1.0.0+1/2",
    "1.0.0+1 2",
    "1.0.0+ä",
    "1.0.0.0+1",
    "1.-1.0+1",
    "١.0.0+1",
    "",
    "99999999999999999999.0.0+1",
    `1.0.0+${"1".repeat(200)}`,
  ];
  for (const raw of nearMisses) {
    it(`refuses ${JSON.stringify(raw.slice(0, 30))}`, () => {
      assert.equal(isVersion(raw), false);
      assert.throws(() => parseVersion(raw, "knownGood"), (err: unknown) => {
        assert.ok(err instanceof VersionError);
        assert.equal(err.field, "knownGood");
        assert.equal(err.value, raw);
        assert.match(err.message, /^knownGood: ".*" is not a recipe version \(/s);
        return true;
      });
    });
  }

  it("names the field and quotes the value", () => {
    assert.throws(
      () => parseVersion("1.2+x"),
      new VersionError("version", "1.2+x", "expected X.Y.Z+UPSTREAM, e.g. 1.0.0+26.5.6"),
    );
    assert.throws(() => parseVersion("1.2+x"), {
      message: 'version: "1.2+x" is not a recipe version (expected X.Y.Z+UPSTREAM, e.g. 1.0.0+26.5.6)',
    });
  });

  it("refuses non-strings from untyped config without crashing", () => {
    assert.throws(() => parseVersion(42 as unknown as string), VersionError);
    assert.equal(isVersion(undefined as unknown as string), false);
  });

  it("accepts every generated well-formed version and keeps its parts", () => {
    fc.assert(
      fc.property(fc.nat(), fc.nat(), fc.nat(), upstreamArb, (a, b, c, u) => {
        const p = parseVersion(`${a}.${b}.${c}+${u}`);
        assert.deepEqual([p.major, p.minor, p.patch, p.upstream], [a, b, c, u]);
      }),
    );
  });
});

describe("ordering", () => {
  it("orders by recipe version before upstream", () => {
    const sorted = sortVersions(["1.10.0+1", "1.2.0+9", "1.2.0+10", "0.9.9+99", "2.0.0+0"]).versions.map(
      (x) => x.raw,
    );
    assert.deepEqual(sorted, ["0.9.9+99", "1.2.0+9", "1.2.0+10", "1.10.0+1", "2.0.0+0"]);
  });

  it("compares upstream segment-wise, numbers numerically", () => {
    assert.ok(compareVersions(v("1.0.0+1.9"), v("1.0.0+1.10")) < 0);
    assert.ok(compareVersions(v("1.0.0+1.27.3"), v("1.0.0+1.27.3-alpine")) < 0);
    assert.ok(compareVersions(v("1.0.0+1.2.3"), v("1.0.0+1.2.x")) < 0);
    assert.ok(compareVersions(v("1.0.0+123456789012345678901"), v("1.0.0+123456789012345678902")) < 0);
    // Segment-equal but different tags still get a fixed, non-zero order.
    assert.notEqual(compareVersions(v("1.0.0+1.01"), v("1.0.0+1.1")), 0);
    assert.equal(compareVersions(v("1.0.0+1.2"), v("1.0.0+1.2")), 0);
  });

  it("is a total order: antisymmetric, transitive, zero only for the same tag", () => {
    fc.assert(
      fc.property(rawArb, rawArb, rawArb, (ra, rb, rc) => {
        const [a, b, c] = [v(ra), v(rb), v(rc)];
        assert.equal(Math.sign(compareVersions(a, b)), -Math.sign(compareVersions(b, a)));
        assert.equal(compareVersions(a, b) === 0, ra === rb);
        if (compareVersions(a, b) <= 0 && compareVersions(b, c) <= 0) assert.ok(compareVersions(a, c) <= 0);
      }),
    );
  });

  it("sortVersions is ascending, duplicate-free, and independent of input order", () => {
    fc.assert(
      fc.property(fc.array(anyRawArb, { maxLength: 15 }), (raws) => {
        const { versions, rejected } = sortVersions(raws);
        for (let i = 1; i < versions.length; i++) assert.ok(compareVersions(versions[i - 1], versions[i]) < 0);
        const distinct = new Set(raws);
        assert.equal(versions.length + rejected.length, distinct.size);
        for (const r of rejected) assert.equal(isVersion(r.raw), false);
        const again = sortVersions([...raws].reverse()).versions.map((x) => x.raw);
        assert.deepEqual(again, versions.map((x) => x.raw));
      }),
    );
  });

  it("reports malformed tags with a reason", () => {
    const { versions, rejected } = sortVersions(["1.0.0+1", "9.9.9", "1.0.0+1", "latest"]);
    assert.deepEqual(
      versions.map((x) => x.raw),
      ["1.0.0+1"],
    );
    assert.deepEqual(
      rejected.map((r) => r.raw),
      ["9.9.9", "latest"],
    );
    assert.match(rejected[0].reason, /not a recipe version/);
  });

  it("latestVersion never returns a malformed tag and is the maximum", () => {
    assert.equal(latestVersion(["99.0.0", "1.0.0+1", "v100.0.0+1"])?.raw, "1.0.0+1");
    assert.equal(latestVersion(["nope", ""]), null);
    assert.equal(latestVersion([]), null);
    fc.assert(
      fc.property(fc.array(anyRawArb, { maxLength: 15 }), (raws) => {
        const latest = latestVersion(raws);
        const valid = raws.filter(isVersion);
        if (valid.length === 0) {
          assert.equal(latest, null);
          return;
        }
        assert.ok(latest !== null && valid.includes(latest.raw));
        for (const r of valid) assert.ok(compareVersions(v(r), latest) <= 0);
      }),
    );
  });
});

describe("versionsBetween", () => {
  const all = ["1.0.0+1", "1.1.0+1", "1.2.0+2", "2.0.0+3", "2.0.1+3"].map(v);

  it("returns those after from up to and including to, ascending", () => {
    const between = versionsBetween([...all].reverse(), v("1.0.0+1"), v("2.0.0+3"));
    assert.deepEqual(
      between.map((x) => x.raw),
      ["1.1.0+1", "1.2.0+2", "2.0.0+3"],
    );
  });

  it("is empty when there is nothing to pass through", () => {
    assert.deepEqual(versionsBetween(all, v("2.0.1+3"), v("2.0.1+3")), []);
    assert.deepEqual(versionsBetween(all, v("2.0.1+3"), v("1.0.0+1")), []);
  });

  it("works when the target itself is not listed, and drops duplicates", () => {
    assert.deepEqual(
      versionsBetween([...all, v("1.1.0+1")], v("1.0.0+1"), v("1.1.5+1")).map((x) => x.raw),
      ["1.1.0+1"],
    );
  });
});

describe("bumpKind and upstreamMajorChanged", () => {
  const cases: [string, string, string][] = [
    ["1.0.0+1", "1.0.0+1", "none"],
    ["1.0.0+1", "1.0.1+1", "patch"],
    ["1.0.9+1", "1.1.0+1", "minor"],
    ["1.9.9+1", "2.0.0+1", "recipe-major"],
    ["2.0.0+1", "1.0.0+1", "recipe-major"],
    ["1.0.0+1.2", "1.0.0+1.3", "none"],
  ];
  for (const [from, to, kind] of cases) {
    it(`${from} → ${to} is ${kind}`, () => assert.equal(bumpKind(v(from), v(to)), kind));
  }

  it("sees an upstream major change across `v` prefixes and suffixes", () => {
    assert.equal(upstreamMajorChanged(v("1.0.0+26.5.6"), v("1.1.0+26.6.2")), false);
    assert.equal(upstreamMajorChanged(v("1.0.0+25.0.0"), v("1.1.0+26.0.0")), true);
    assert.equal(upstreamMajorChanged(v("1.0.0+v3.6.12"), v("1.1.0+3.7.0")), false);
    assert.equal(upstreamMajorChanged(v("1.0.0+1.27.3-alpine"), v("1.1.0+2.0.0-alpine")), true);
  });

  it("treats any change of an unknown upstream scheme as a major change", () => {
    assert.equal(upstreamMajorChanged(v("1.0.0+latest"), v("1.1.0+latest")), false);
    assert.equal(upstreamMajorChanged(v("1.0.0+latest"), v("1.1.0+stable")), true);
    assert.equal(upstreamMajorChanged(v("1.0.0+latest"), v("1.1.0+3.0.0")), true);
    assert.equal(upstreamMajorChanged(v("1.0.0+3.0.0"), v("1.1.0+edge")), true);
  });

  it("is symmetric", () => {
    fc.assert(
      fc.property(rawArb, rawArb, (a, b) => {
        assert.equal(upstreamMajorChanged(v(a), v(b)), upstreamMajorChanged(v(b), v(a)));
        assert.equal(bumpKind(v(a), v(b)), bumpKind(v(b), v(a)));
      }),
    );
  });
});
