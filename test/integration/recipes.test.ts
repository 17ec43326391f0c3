import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import { execa } from "execa";
import { EnvFile } from "../../infra/adapters/app-env";
import { RecipeError, envSampleAt, fetchCommit, gateInputsFor, releaseNotes, releasedVersions } from "../../infra/adapters/recipes";
import { decide } from "../../infra/gate";
import { VersionError, compareVersions, parseVersion } from "../../infra/versions";
import { AbraDir } from "../support/abra-dir";

const KEYCLOAK_VERSIONS = [
  "1.0.0+26.5.6",
  "1.0.1+26.5.6",
  "1.1.0+26.7.3",
  "1.2.0+26.7.3",
  "1.3.0+26.7.3",
  "1.4.0+27.0.0",
  "1.5.0+26.7.3",
  "1.5.1+26.7.3",
  "1.5.2+26.7.3",
  "1.6.0+26.7.3",
  "2.0.0+26.7.3",
];

// The test machine's git identity is not ours to rely on: annotated tags need one.
const IDENTITY = ["-c", "user.name=warmstack tests", "-c", "user.email=tests@warmstack.invalid"];

describe("recipe adapter on the real fixture repositories (keycloak)", () => {
  let abra: AbraDir;
  let dir: string;
  const git = (...args: string[]) => execa("git", [...IDENTITY, "-C", dir, ...args]);

  before(async () => {
    abra = await AbraDir.create(["keycloak"]);
    dir = abra.recipeDir("keycloak");
  });

  after(async () => {
    await abra.dispose();
  });

  it("lists the eleven released versions in ascending order", async () => {
    const { versions, rejected } = await releasedVersions(dir);
    assert.deepEqual(
      versions.map((v) => v.raw),
      KEYCLOAK_VERSIONS,
    );
    for (let i = 1; i < versions.length; i++) assert.ok(compareVersions(versions[i - 1], versions[i]) < 0);
    assert.deepEqual(rejected, []);
  });

  it("reads the release notes of a version, and the .env.sample it shipped", async () => {
    assert.equal(
      await releaseNotes(dir, "refs/tags/1.3.0+26.7.3", "1.3.0+26.7.3"),
      "Theme changes.\n\nManual steps required: re-import the realm themes after upgrading.",
    );
    // Notes of older versions are still in later trees (Co-op Cloud keeps release/ cumulative).
    assert.match((await releaseNotes(dir, "2.0.0+26.7.3", "1.3.0+26.7.3")) ?? "", /Manual steps required/);
    // ...but not in earlier ones.
    assert.equal(await releaseNotes(dir, "1.0.0+26.5.6", "1.3.0+26.7.3"), undefined);

    const sample = await envSampleAt(dir, "1.2.0+26.7.3");
    assert.match(sample ?? "", /^KC_SMTP_HOST=$/m);
    assert.equal(EnvFile.parse(sample as string).get("KC_SMTP_HOST"), "");
    assert.doesNotMatch((await envSampleAt(dir, "1.1.0+26.7.3")) ?? "", /KC_SMTP_HOST/);
  });

  it("refuses a malformed version or a ref that git would read as an option", async () => {
    await assert.rejects(releaseNotes(dir, "HEAD", "../../etc/passwd"), VersionError);
    await assert.rejects(envSampleAt(dir, "1.2.0"), VersionError);
    await assert.rejects(releaseNotes(dir, "--output=/tmp/x", "1.3.0+26.7.3"), RecipeError);
  });

  it("gives the gate what it needs, skipping malformed candidates", async () => {
    const inputs = await gateInputsFor(dir, ["1.2.0+26.7.3", "1.3.0+26.7.3", "not-a-version"]);
    assert.deepEqual(Object.keys(inputs.notes).sort(), ["1.2.0+26.7.3", "1.3.0+26.7.3"]);
    assert.deepEqual(Object.keys(inputs.envSamples).sort(), ["1.2.0+26.7.3", "1.3.0+26.7.3"]);
    assert.equal(inputs.notes["1.2.0+26.7.3"], "Adds KC_SMTP_HOST, which must be set.");
    assert.match(inputs.envSamples["1.2.0+26.7.3"] ?? "", /^KC_SMTP_HOST=$/m);
  });

  it("decides on real data: 1.0.0 → 1.1.0, held at 1.2.0 for the new required key", async () => {
    const { versions } = await releasedVersions(dir);
    const current = "1.0.0+26.5.6";
    const candidates = versions.filter((v) => compareVersions(v, parseVersion(current)) > 0).map((v) => v.raw);
    const { notes, envSamples } = await gateInputsFor(dir, candidates);
    const currentEnvKeys = EnvFile.parse((await envSampleAt(dir, current)) as string).keys();
    const released = versions.map((v) => v.raw);

    const d = decide({ app: "keycloak", current, released, notes, envSamples, currentEnvKeys });
    assert.deepEqual(d, {
      app: "keycloak",
      current,
      target: "1.1.0+26.7.3",
      action: "upgrade",
      holds: [
        {
          app: "keycloak",
          from: "1.1.0+26.7.3",
          to: released[released.length - 1],
          blockedAt: "1.2.0+26.7.3",
          reason: "new-required-key",
          detail: "1.2.0+26.7.3 requires KC_SMTP_HOST without a default, and the app's env does not set it",
          lines: ["KC_SMTP_HOST"],
        },
      ],
      warnings: [],
    });
    assert.equal(released[released.length - 1], "2.0.0+26.7.3");

    // Once the operator sets KC_SMTP_HOST, the next hold is 1.3.0's manual steps.
    const withKey = decide({ app: "keycloak", current, released, notes, envSamples, currentEnvKeys: [...currentEnvKeys, "KC_SMTP_HOST"] });
    assert.equal(withKey.target, "1.2.0+26.7.3");
    assert.deepEqual(
      withKey.holds.map((h) => [h.blockedAt, h.reason, h.lines]),
      [["1.3.0+26.7.3", "manual-steps", ["Manual steps required: re-import the realm themes after upgrading."]]],
    );
  });

  // Tag-changing tests last: they alter this test's own clone only.
  it("rejects a lightweight tag and a malformed annotated tag", async () => {
    await git("tag", "9.9.9+1", "2.0.0+26.7.3^{commit}");
    // Made from a tag's name, a lightweight tag points at that tag object: still not a release.
    await git("tag", "9.9.8+1", "2.0.0+26.7.3");
    await git("tag", "-a", "bad-tag", "-m", "x", "2.0.0+26.7.3^{commit}");
    const { versions, rejected } = await releasedVersions(dir);
    assert.deepEqual(
      versions.map((v) => v.raw),
      KEYCLOAK_VERSIONS,
    );
    const byTag = new Map(rejected.map((r) => [r.tag, r.reason]));
    assert.deepEqual([...byTag.keys()].sort(), ["9.9.8+1", "9.9.9+1", "bad-tag"]);
    assert.match(byTag.get("9.9.9+1") ?? "", /lightweight tag/);
    assert.equal(byTag.get("9.9.8+1"), 'points at the annotated tag "2.0.0+26.7.3", not at its own (a lightweight tag)');
    assert.match(byTag.get("bad-tag") ?? "", /is not a recipe version/);
    await git("tag", "-d", "9.9.9+1", "9.9.8+1", "bad-tag");
  });

  it("returns undefined for a version released without a notes file, and the gate warns about it", async () => {
    // 1.0.2 tagged on 1.0.1's commit: a real annotated release whose tree has no release/1.0.2+26.5.6.
    await git("tag", "-a", "1.0.2+26.5.6", "-m", "1.0.2+26.5.6", "1.0.1+26.5.6^{commit}");
    try {
      assert.equal(await releaseNotes(dir, "refs/tags/1.0.2+26.5.6", "1.0.2+26.5.6"), undefined);
      assert.match((await envSampleAt(dir, "1.0.2+26.5.6")) ?? "", /^TYPE=keycloak$/m);
      const { versions } = await releasedVersions(dir);
      const released = versions.map((v) => v.raw);
      assert.ok(released.includes("1.0.2+26.5.6"));
      const current = "1.0.1+26.5.6";
      const { notes, envSamples } = await gateInputsFor(dir, released);
      assert.equal(notes["1.0.2+26.5.6"], undefined);
      const currentEnvKeys = EnvFile.parse((await envSampleAt(dir, current)) as string).keys();
      const d = decide({ app: "keycloak", current, released, notes, envSamples, currentEnvKeys });
      assert.equal(d.target, "1.1.0+26.7.3");
      assert.deepEqual(d.warnings, ["keycloak: 1.0.2+26.5.6 has no release notes; nothing to check for manual steps"]);
      assert.equal(d.holds[0]?.blockedAt, "1.2.0+26.7.3");
    } finally {
      await git("tag", "-d", "1.0.2+26.5.6");
    }
  });

  it("returns undefined for the .env.sample of a version that has no tag", async () => {
    assert.equal(await envSampleAt(dir, "7.7.7+1"), undefined);
  });
});

describe("fetching a PR head that only a branch of the remote has (real git)", () => {
  let root: string;
  let head: string;
  before(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), "warmstack-fetch-"));
    const source = path.join(root, "source");
    const inSource = (...args: string[]) => execa("git", [...IDENTITY, "-C", source, ...args]);
    await execa("git", ["init", "-q", "-b", "main", source]);
    await inSource("commit", "-q", "--allow-empty", "-m", "released");
    await inSource("checkout", "-q", "-b", "pr-branch");
    await inSource("commit", "-q", "--allow-empty", "-m", "the PR");
    head = (await inSource("rev-parse", "HEAD")).stdout.trim();
    await inSource("checkout", "-q", "main");
    await execa("git", ["clone", "-q", "--single-branch", "-b", "main", source, path.join(root, "checkout")]);
  });
  after(() => rm(root, { recursive: true, force: true }));

  it("fetches every branch into a namespace of its own and finds the commit; a commit no branch has is not found", async () => {
    const checkout = path.join(root, "checkout");
    const access = { timeoutMs: 60_000 };
    assert.equal(await fetchCommit(checkout, path.join(root, "source"), "refs/heads/*", "0000000", access), false);
    assert.equal(await fetchCommit(checkout, path.join(root, "source"), "refs/heads/*", head, access), true);
    const refs = (await execa("git", ["-C", checkout, "for-each-ref", "--format=%(refname)"])).stdout.split("\n");
    assert.ok(refs.includes("refs/warmstack/fetched/heads/pr-branch"), refs.join(", "));
    assert.ok(!refs.includes("refs/heads/pr-branch"), "the checkout's own branches are not written");
  });
});
