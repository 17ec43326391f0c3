import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import * as path from "node:path";
import fc from "fast-check";
import {
  GateDecision,
  GateError,
  GateInput,
  MANUAL_STEP_PATTERNS,
  decide,
  failedCanaries,
  failedUpgrades,
  manualStepLines,
  newRequiredKeys,
} from "../../infra/gate";
import type { AlertRecord } from "../../infra/adapters/alerts";
import { EnvFile } from "../../infra/adapters/app-env";
import { compareVersions, isVersion, parseVersion } from "../../infra/versions";

const SAFE_NOTES = "Patch: README wording.";
const SAFE_SAMPLE = "TYPE=app\nDOMAIN=app.example.com\n#OPTIONAL=\nCOMPOSE_FILE=\"compose.yml\"\n";

/** Every released version gets harmless notes and sample unless the case says otherwise. */
function gateInput(
  released: readonly string[],
  current: string | null,
  overrides: {
    notes?: Record<string, string | undefined>;
    envSamples?: Record<string, string | undefined>;
    currentEnvKeys?: string[];
    initialVersion?: string;
  } = {},
): GateInput {
  const notes: Record<string, string | undefined> = {};
  const envSamples: Record<string, string | undefined> = {};
  for (const v of released) {
    notes[v] = SAFE_NOTES;
    envSamples[v] = SAFE_SAMPLE;
  }
  return {
    app: "kc",
    current,
    ...(overrides.initialVersion !== undefined ? { initialVersion: overrides.initialVersion } : {}),
    released,
    notes: { ...notes, ...overrides.notes },
    envSamples: { ...envSamples, ...overrides.envSamples },
    currentEnvKeys: overrides.currentEnvKeys ?? ["TYPE", "DOMAIN", "COMPOSE_FILE"],
  };
}

describe("decide: hold reasons", () => {
  it("holds at a recipe-major bump and takes the newest minor below it, held at that minor", () => {
    const d = decide(gateInput(["1.0.0+1.0", "1.0.1+1.0", "1.1.0+1.0", "2.0.0+1.0", "2.1.0+1.0"], "1.0.0+1.0"));
    assert.deepEqual(d, {
      app: "kc",
      current: "1.0.0+1.0",
      target: "1.1.0+1.0",
      action: "upgrade",
      holds: [
        {
          app: "kc",
          from: "1.1.0+1.0",
          to: "2.1.0+1.0",
          blockedAt: "2.0.0+1.0",
          reason: "recipe-major",
          detail: "recipe major bump 1.x → 2.x needs a human",
          lines: ["1.0.0+1.0", "2.0.0+1.0"],
        },
      ],
      warnings: [],
    } satisfies GateDecision);
  });

  it("holds at an upstream-major bump", () => {
    const d = decide(gateInput(["1.0.0+26.5.6", "1.0.1+26.5.6", "1.1.0+27.0.0", "1.2.0+27.0.1"], "1.0.0+26.5.6"));
    assert.equal(d.target, "1.0.1+26.5.6");
    assert.equal(d.action, "upgrade");
    assert.deepEqual(d.holds, [
      {
        app: "kc",
        from: "1.0.1+26.5.6",
        to: "1.2.0+27.0.1",
        blockedAt: "1.1.0+27.0.0",
        reason: "upstream-major",
        detail: "upstream major bump 26 → 27 (26.5.6 → 27.0.0) needs a human",
        lines: ["1.0.0+26.5.6", "1.1.0+27.0.0"],
      },
    ]);
  });

  it("holds at an upstream change it cannot judge (no recognisable major)", () => {
    const d = decide(gateInput(["1.0.0+latest", "1.1.0+stable"], "1.0.0+latest"));
    assert.equal(d.target, "1.0.0+latest");
    assert.equal(d.action, "stay");
    assert.deepEqual(d.holds, [
      {
        app: "kc",
        from: "1.0.0+latest",
        to: "1.1.0+stable",
        blockedAt: "1.1.0+stable",
        reason: "upstream-major",
        detail: "upstream latest → stable has no recognisable major version, so the change cannot be judged safe; needs a human",
        lines: ["1.0.0+latest", "1.1.0+stable"],
      },
    ]);
  });

  it("holds at release notes that call for manual steps, quoting the lines", () => {
    const released = ["1.0.0+26.7.3", "1.1.0+26.7.3", "1.2.0+26.7.3", "1.2.1+26.7.3"];
    const notes = {
      "1.2.0+26.7.3": "Theme changes.\n\n  Manual steps required: re-import the realm themes after upgrading.  \nEnjoy.\n",
    };
    const d = decide(gateInput(released, "1.0.0+26.7.3", { notes }));
    assert.equal(d.target, "1.1.0+26.7.3");
    assert.deepEqual(d.holds, [
      {
        app: "kc",
        from: "1.1.0+26.7.3",
        to: "1.2.1+26.7.3",
        blockedAt: "1.2.0+26.7.3",
        reason: "manual-steps",
        detail: "the release notes of 1.2.0+26.7.3 call for manual steps (matched: manual steps; before/after deploying; action required)",
        lines: ["Manual steps required: re-import the realm themes after upgrading."],
      },
    ]);
  });

  it("holds at a new required key without a default that the app's env lacks", () => {
    const released = ["1.0.0+1.0", "1.1.0+1.0", "1.2.0+1.0"];
    const sample = 'TYPE=app\nSMTP_HOST=\nSITE_TITLE=""\nWITH_DEFAULT=1\n#OPTIONAL=\nDOMAIN=\n';
    const d = decide(gateInput(released, "1.0.0+1.0", { envSamples: { "1.2.0+1.0": sample }, currentEnvKeys: ["TYPE", "DOMAIN"] }));
    assert.equal(d.target, "1.1.0+1.0");
    assert.deepEqual(d.holds, [
      {
        app: "kc",
        from: "1.1.0+1.0",
        to: "1.2.0+1.0",
        blockedAt: "1.2.0+1.0",
        reason: "new-required-key",
        detail: "1.2.0+1.0 requires SMTP_HOST, SITE_TITLE without a default, and the app's env does not set them",
        lines: ["SMTP_HOST", "SITE_TITLE"],
      },
    ]);
  });

  it("says 'it' for one missing key, and lets the upgrade through once the env sets it", () => {
    const released = ["1.0.0+1.0", "1.1.0+1.0"];
    const envSamples = { "1.1.0+1.0": "TYPE=app\nKC_SMTP_HOST=\n" };
    const held = decide(gateInput(released, "1.0.0+1.0", { envSamples, currentEnvKeys: ["TYPE"] }));
    assert.equal(held.holds[0]?.detail, "1.1.0+1.0 requires KC_SMTP_HOST without a default, and the app's env does not set it");
    const set = decide(gateInput(released, "1.0.0+1.0", { envSamples, currentEnvKeys: ["TYPE", "KC_SMTP_HOST"] }));
    assert.deepEqual([set.target, set.action, set.holds], ["1.1.0+1.0", "upgrade", []]);
  });

  const MANUAL = "Manual migration required.";
  const NEEDS_KEY = "TYPE=app\nNEW_KEY=\n";
  const priority: { name: string; current: string; blocked: string; notes?: string; sample?: string; reason: string }[] = [
    { name: "recipe-major before manual-steps and new key", current: "1.0.0+1.0", blocked: "2.0.0+2.0", notes: MANUAL, sample: NEEDS_KEY, reason: "recipe-major" },
    { name: "upstream-major before manual-steps and new key", current: "1.0.0+1.0", blocked: "1.1.0+2.0", notes: MANUAL, sample: NEEDS_KEY, reason: "upstream-major" },
    { name: "manual-steps before new key", current: "1.0.0+1.0", blocked: "1.1.0+1.0", notes: MANUAL, sample: NEEDS_KEY, reason: "manual-steps" },
    { name: "new key alone", current: "1.0.0+1.0", blocked: "1.1.0+1.0", sample: NEEDS_KEY, reason: "new-required-key" },
  ];
  for (const c of priority) {
    it(`reason order: ${c.name}`, () => {
      const d = decide(
        gateInput([c.current, c.blocked], c.current, {
          ...(c.notes ? { notes: { [c.blocked]: c.notes } } : {}),
          ...(c.sample ? { envSamples: { [c.blocked]: c.sample } } : {}),
          currentEnvKeys: ["TYPE"],
        }),
      );
      assert.equal(d.holds.length, 1);
      assert.equal(d.holds[0].reason, c.reason);
      assert.equal(d.target, c.current);
      assert.equal(d.action, "stay");
    });
  }
});

describe("decide: target selection", () => {
  it("takes the newest version when nothing is risky", () => {
    const d = decide(gateInput(["1.0.0+1.0", "1.0.1+1.0", "1.1.0+1.1", "1.1.3+1.1"], "1.0.0+1.0"));
    assert.deepEqual([d.target, d.action, d.holds, d.warnings], ["1.1.3+1.1", "upgrade", [], []]);
  });

  it("picks the safe patch and minor below a risky version, whatever the order of the tag list", () => {
    const released = ["1.3.0+1.0", "1.0.1+1.0", "1.2.0+1.0", "1.0.0+1.0", "1.1.0+1.0"];
    const d = decide(gateInput(released, "1.0.0+1.0", { notes: { "1.2.0+1.0": "Before upgrading, back up." } }));
    assert.equal(d.target, "1.1.0+1.0");
    assert.equal(d.holds[0].blockedAt, "1.2.0+1.0");
    assert.equal(d.holds[0].to, "1.3.0+1.0");
  });

  it("stops the walk at the first risky version: later versions are not looked at", () => {
    const released = ["1.0.0+1.0", "1.1.0+1.0", "1.2.0+1.0", "1.3.0+1.0", "2.0.0+1.0"];
    const d = decide(
      gateInput(released, "1.0.0+1.0", {
        notes: { "1.1.0+1.0": "This needs a human.", "1.2.0+1.0": undefined },
        envSamples: { "1.3.0+1.0": undefined },
      }),
    );
    assert.equal(d.target, "1.0.0+1.0");
    assert.equal(d.action, "stay");
    assert.equal(d.holds.length, 1);
    assert.deepEqual([d.holds[0].blockedAt, d.holds[0].reason, d.holds[0].to], ["1.1.0+1.0", "manual-steps", "2.0.0+1.0"]);
    assert.deepEqual(d.warnings, [], "versions past the first risky one are never examined");
  });

  it("ignores older releases when walking", () => {
    const d = decide(
      gateInput(["1.0.0+1.0", "1.1.0+1.0", "1.2.0+1.0"], "1.1.0+1.0", { notes: { "1.0.0+1.0": "Manual steps required." } }),
    );
    assert.deepEqual([d.target, d.holds], ["1.2.0+1.0", []]);
  });

  it("stays when current is the newest", () => {
    const d = decide(gateInput(["1.0.0+1.0", "1.1.0+1.0"], "1.1.0+1.0"));
    assert.deepEqual(d, { app: "kc", current: "1.1.0+1.0", target: "1.1.0+1.0", action: "stay", holds: [], warnings: [] });
  });

  it("stays with a warning when current is newer than every release", () => {
    const d = decide(gateInput(["1.0.0+1.0", "1.1.0+1.0"], "1.2.0+1.0"));
    assert.deepEqual([d.target, d.action, d.holds], ["1.2.0+1.0", "stay", []]);
    assert.deepEqual(d.warnings, [
      "kc: running 1.2.0+1.0, newer than every released version (newest 1.1.0+1.0): tag deleted, or running a commit? Staying",
    ]);
  });

  it("stays with a warning when nothing is released but the app runs", () => {
    const d = decide(gateInput(["junk"], "1.2.0+1.0"));
    assert.deepEqual([d.target, d.action, d.holds], ["1.2.0+1.0", "stay", []]);
    assert.equal(d.warnings.length, 2);
    assert.match(d.warnings[1], /^kc: nothing is released/);
  });

  it("warns when current is not a released version but upgrades from it", () => {
    const d = decide(gateInput(["1.0.0+1.0", "1.2.0+1.0"], "1.1.0+1.0"));
    assert.deepEqual([d.target, d.action], ["1.2.0+1.0", "upgrade"]);
    assert.deepEqual(d.warnings, ["kc: running 1.1.0+1.0, which is not a released version (tag deleted?); judging upgrades from it anyway"]);
  });
});

describe("decide: versions that failed before", () => {
  const why = "upgrade failed: timed out after 60s waiting for /ping";

  it("holds a version whose upgrade was rolled back instead of trying it every night, quoting why", () => {
    const d = decide({ ...gateInput(["1.0.0+1.0", "1.0.1+1.0"], "1.0.0+1.0"), failedBefore: { "1.0.1+1.0": why } });
    assert.deepEqual([d.target, d.action], ["1.0.0+1.0", "stay"]);
    assert.equal(d.holds.length, 1);
    assert.deepEqual([d.holds[0].reason, d.holds[0].blockedAt, d.holds[0].lines], ["failed-before", "1.0.1+1.0", [why]]);
    assert.match(d.holds[0].detail, /warmstack up --retry kc/);
  });

  it("takes a newer safe release past the failed one: the fix is not held", () => {
    const d = decide({ ...gateInput(["1.0.0+1.0", "1.0.1+1.0", "1.0.2+1.0"], "1.0.0+1.0"), failedBefore: { "1.0.1+1.0": why } });
    assert.deepEqual([d.target, d.holds], ["1.0.2+1.0", []]);
  });

  it("takes the safe version below a newest release that failed before", () => {
    const d = decide({ ...gateInput(["1.0.0+1.0", "1.0.1+1.0", "1.0.2+1.0"], "1.0.0+1.0"), failedBefore: { "1.0.2+1.0": why } });
    assert.equal(d.target, "1.0.1+1.0");
    assert.deepEqual(d.holds.map((hold) => [hold.reason, hold.blockedAt]), [["failed-before", "1.0.2+1.0"]]);
  });

  it("names both a failed version and a risky one above it", () => {
    const d = decide({
      ...gateInput(["1.0.0+1.0", "1.0.1+1.0", "2.0.0+1.0"], "1.0.0+1.0"),
      failedBefore: { "1.0.1+1.0": why },
    });
    assert.equal(d.target, "1.0.0+1.0");
    assert.deepEqual(d.holds.map((hold) => [hold.reason, hold.blockedAt]), [["failed-before", "1.0.1+1.0"], ["recipe-major", "2.0.0+1.0"]]);
  });

  it("ignores failures of versions at or below current, and inherited keys", () => {
    const failedBefore = Object.assign(Object.create({ "1.0.1+1.0": why }) as Record<string, string>, { "1.0.0+1.0": why });
    const d = decide({ ...gateInput(["1.0.0+1.0", "1.0.1+1.0"], "1.0.0+1.0"), failedBefore });
    assert.deepEqual([d.target, d.holds], ["1.0.1+1.0", []]);
  });
});

describe("decide: versions whose canary failed", () => {
  const why = "the canary failed: sso-app failed in step up (the admin token endpoint answered 404)";

  it("holds a version whose canary failed, with reason canary-failed, quoting the canary", () => {
    const d = decide({ ...gateInput(["1.0.0+1.0", "1.0.1+1.0"], "1.0.0+1.0"), canaryFailed: { "1.0.1+1.0": why } });
    assert.deepEqual([d.target, d.action], ["1.0.0+1.0", "stay"]);
    assert.deepEqual(d.holds.map((hold) => [hold.reason, hold.blockedAt, hold.lines]), [["canary-failed", "1.0.1+1.0", [why]]]);
    assert.match(d.holds[0]!.detail, /canary of 1\.0\.1\+1\.0 failed.*warmstack up --retry kc/);
  });

  it("takes a newer safe release past the version whose canary failed", () => {
    const d = decide({ ...gateInput(["1.0.0+1.0", "1.0.1+1.0", "1.0.2+1.0"], "1.0.0+1.0"), canaryFailed: { "1.0.1+1.0": why } });
    assert.deepEqual([d.target, d.holds], ["1.0.2+1.0", []]);
  });

  it("names a rollback before a failed canary when one version has both", () => {
    const d = decide({ ...gateInput(["1.0.0+1.0", "1.0.1+1.0"], "1.0.0+1.0"), failedBefore: { "1.0.1+1.0": "rolled back" }, canaryFailed: { "1.0.1+1.0": why } });
    assert.deepEqual(d.holds.map((hold) => hold.reason), ["failed-before"]);
  });

  it("without records (a retry), the version is taken", () => {
    const d = decide({ ...gateInput(["1.0.0+1.0", "1.0.1+1.0"], "1.0.0+1.0"), canaryFailed: {} });
    assert.deepEqual([d.target, d.action, d.holds], ["1.0.1+1.0", "upgrade", []]);
  });
});

describe("failedCanaries", () => {
  it("keeps only the app's canary-failed targets, the newest record of each", () => {
    const record = (app: string, outcome: AlertRecord["outcome"], to: string, time: string): AlertRecord => ({ app, from: "1.0.0+1.0", to, outcome, severity: "warning", reason: `${outcome} reason`, time });
    const alerts = [
      record("keycloak", "canary-failed", "1.6.0+26.7.3", "2026-12-02T03:00:00Z"),
      record("keycloak", "canary-failed", "1.6.0+26.7.3", "2026-12-01T03:00:00Z"),
      record("keycloak", "rolled-back", "1.5.2+26.7.3", "2026-12-01T03:00:00Z"),
      record("traefik", "canary-failed", "1.1.0+3.6.12", "2026-12-01T03:00:00Z"),
    ];
    assert.deepEqual(failedCanaries(alerts, "keycloak"), { "1.6.0+26.7.3": "2026-12-02T03:00:00Z canary-failed: canary-failed reason" });
    assert.deepEqual(failedUpgrades(alerts, "keycloak"), { "1.5.2+26.7.3": "2026-12-01T03:00:00Z rolled-back: rolled-back reason" });
  });
});

describe("failedUpgrades", () => {
  const alert = (app: string, outcome: AlertRecord["outcome"], to: string | null, time: string): AlertRecord => ({
    app,
    from: "1.0.0+1.0",
    to,
    outcome,
    severity: "warning",
    reason: `${outcome} reason`,
    time,
  });

  it("keeps the app's rolled-back and rollback-failed targets, the newest record of each", () => {
    const alerts = [
      alert("kc", "rolled-back", "1.0.2+1.0", "2026-11-03T00:00:00Z"),
      alert("kc", "rollback-failed", "1.0.1+1.0", "2026-11-02T00:00:00Z"),
      alert("kc", "rolled-back", "1.0.2+1.0", "2026-11-01T00:00:00Z"),
      alert("kc", "held", "1.0.3+1.0", "2026-11-01T00:00:00Z"),
      alert("kc", "upgraded", "1.0.4+1.0", "2026-11-01T00:00:00Z"),
      alert("traefik", "rolled-back", "1.0.5+1.0", "2026-11-01T00:00:00Z"),
      alert("kc", "warning", null, "2026-11-01T00:00:00Z"),
    ];
    assert.deepEqual(failedUpgrades(alerts, "kc"), {
      "1.0.2+1.0": "2026-11-03T00:00:00Z rolled-back: rolled-back reason",
      "1.0.1+1.0": "2026-11-02T00:00:00Z rollback-failed: rollback-failed reason",
    });
  });

  it("is empty without alerts", () => {
    assert.deepEqual(failedUpgrades([], "kc"), {});
  });
});

describe("decide: bad and missing input", () => {
  for (const bad of ["10.0", "v1.0.0+1", "", "abc1234", "1.0.0+1 "]) {
    it(`refuses malformed current ${JSON.stringify(bad)}`, () => {
      assert.throws(
        () => decide(gateInput(["1.0.0+1.0"], bad)),
        (err: unknown) => {
          assert.ok(err instanceof GateError);
          assert.equal(err.app, "kc");
          assert.equal(err.field, "current");
          assert.ok(err.message.startsWith(`kc: current version ${JSON.stringify(bad)} is not a recipe version (`), err.message);
          return true;
        },
      );
    });
  }

  it("ignores malformed tags with a warning each and never takes one as the target", () => {
    const released = ["1.0.0+1.0", "9.9.9", "v9.0.0+1", "latest", "1.1.0+1.0", "latest", "99.0.0+1.0 "];
    const d = decide(gateInput(released, "1.0.0+1.0"));
    assert.equal(d.target, "1.1.0+1.0");
    assert.deepEqual(d.holds, []);
    assert.deepEqual(d.warnings, [
      'kc: ignoring tag "9.9.9": not a recipe version X.Y.Z+UPSTREAM',
      'kc: ignoring tag "v9.0.0+1": not a recipe version X.Y.Z+UPSTREAM',
      'kc: ignoring tag "latest": not a recipe version X.Y.Z+UPSTREAM',
      'kc: ignoring tag "99.0.0+1.0 ": not a recipe version X.Y.Z+UPSTREAM',
    ]);
  });

  it("warns about missing release notes and samples instead of holding", () => {
    const released = ["1.0.0+1.0", "1.1.0+1.0", "1.2.0+1.0"];
    const d = decide(
      gateInput(released, "1.0.0+1.0", { notes: { "1.1.0+1.0": undefined }, envSamples: { "1.2.0+1.0": undefined } }),
    );
    assert.deepEqual([d.target, d.holds], ["1.2.0+1.0", []]);
    assert.deepEqual(d.warnings, [
      "kc: 1.1.0+1.0 has no release notes; nothing to check for manual steps",
      "kc: 1.2.0+1.0 has no .env.sample; nothing to check for new required keys",
    ]);
  });

  it("does not take inherited properties for release notes", () => {
    const input = gateInput(["1.0.0+1.0", "1.1.0+1.0"], "1.0.0+1.0");
    const notes = Object.create({ "1.1.0+1.0": "Manual steps required." }) as Record<string, string>;
    const d = decide({ ...input, notes });
    assert.deepEqual(d.holds, []);
    assert.match(d.warnings[0], /1\.1\.0\+1\.0 has no release notes/);
  });

  it("warns about an unreadable .env.sample and still checks the rest", () => {
    const d = decide(gateInput(["1.0.0+1.0", "1.1.0+1.0"], "1.0.0+1.0", { envSamples: { "1.1.0+1.0": "not an env file\n" } }));
    assert.deepEqual([d.target, d.holds], ["1.1.0+1.0", []]);
    assert.equal(d.warnings.length, 1);
    assert.match(d.warnings[0], /^kc: the \.env\.sample of 1\.1\.0\+1\.0 cannot be read \(\.env\.sample:1: expected KEY=value\)/);
  });
});

describe("decide: not deployed", () => {
  const released = ["1.0.0+1.0", "1.1.0+1.0", "2.0.0+2.0"];
  const risky = {
    notes: { "2.0.0+2.0": "Manual migration required." },
    envSamples: { "2.0.0+2.0": "NEEDED=\n" },
    currentEnvKeys: [],
  };

  it("deploys the newest release, with no holds: a fresh install has nothing to migrate", () => {
    const d = decide(gateInput(released, null, risky));
    assert.deepEqual(d, { app: "kc", current: null, target: "2.0.0+2.0", action: "deploy", holds: [], warnings: [] });
  });

  it("deploys initialVersion when given", () => {
    const d = decide(gateInput(released, null, { ...risky, initialVersion: "1.1.0+1.0" }));
    assert.deepEqual([d.target, d.action, d.holds], ["1.1.0+1.0", "deploy", []]);
  });

  it("refuses an initialVersion that is not released", () => {
    assert.throws(
      () => decide(gateInput(released, null, { initialVersion: "1.2.0+1.0" })),
      (err: unknown) => err instanceof GateError && err.field === "initialVersion" && /^kc: initialVersion "1\.2\.0\+1\.0" is not a released version$/.test(err.message),
    );
  });

  it("refuses a malformed initialVersion, even while the app runs", () => {
    for (const current of [null, "1.0.0+1.0"]) {
      assert.throws(
        () => decide(gateInput(released, current, { initialVersion: "1.1" })),
        (err: unknown) =>
          err instanceof GateError && err.field === "initialVersion" && err.message.startsWith('kc: initialVersion "1.1" is not a recipe version ('),
      );
    }
  });

  it("refuses when nothing is released", () => {
    for (const tags of [[], ["latest", "bad-tag"]]) {
      assert.throws(
        () => decide(gateInput(tags, null)),
        (err: unknown) => err instanceof GateError && err.field === "released" && err.app === "kc" && /^kc: not deployed and nothing is released/.test(err.message),
      );
    }
  });
});

describe("manualStepLines", () => {
  const positives = [
    "Manual migration required: run it.",
    "Manual steps required: re-import the realm themes after upgrading.",
    "There is one manual step.",
    "This release requires manual intervention: move your middlewares.",
    "Move the files manually.",
    "Requires a manual restart of the workers.",
    "Require manual review.",
    "Breaking change.",
    "BREAKING CHANGES in the API",
    "Back up your volumes before upgrading.",
    "After upgrading, run the reindex.",
    "after upgrading run the reindex",
    "Please run `abra app cmd example.com app migrate` once.",
    "run `php artisan migrate --force`",
    "run `rails db:migrate`",
    "Use abra app cmd to reindex.",
    "This needs a human.",
    "needs human attention",
    "Includes a data migration.",
  ];
  for (const line of positives) {
    it(`recognises ${JSON.stringify(line)}`, () => {
      assert.deepEqual(manualStepLines(`Intro.\n\n${line}\n`), [line]);
    });
  }

  const negatives = [
    "Broken on purpose: the app exits at start (never converges).",
    "Upgrade Keycloak to 26.7.3. The database is migrated on first start.",
    "Adds SITE_TITLE, which must be set: the app refuses to start without it.",
    "See the manual for details.",
    "Automatic migration on start.",
    "Upgrading is automatic.",
    "Run the tests.",
    "run `abra app deploy`",
    "A humane default.",
  ];
  for (const line of negatives) {
    it(`does not flag ${JSON.stringify(line)}`, () => {
      assert.deepEqual(manualStepLines(line), []);
    });
  }

  it("finds a phrase wrapped onto the next line, and returns both lines", () => {
    assert.deepEqual(manualStepLines("Upgrade notes: a manual\nmigration is needed.\nThanks."), ["Upgrade notes: a manual", "migration is needed."]);
  });

  it("trims, handles CRLF, and returns each line once, in order", () => {
    assert.deepEqual(manualStepLines("  Breaking change: do it manually.  \r\nok\r\n\tData migration.\r\n"), [
      "Breaking change: do it manually.",
      "Data migration.",
    ]);
  });

  it("exports stateless patterns (no global flag) with labels", () => {
    assert.ok(MANUAL_STEP_PATTERNS.length >= 12);
    for (const { pattern, label } of MANUAL_STEP_PATTERNS) {
      assert.ok(!pattern.global && !pattern.sticky, label);
      assert.ok(pattern.ignoreCase, label);
      assert.ok(label.length > 0);
    }
    manualStepLines("Breaking change.");
    assert.ok(MANUAL_STEP_PATTERNS.every(({ pattern }) => pattern.lastIndex === 0));
  });

  it("stays fast on long notes without a closing backtick", () => {
    const started = Date.now();
    manualStepLines(`run \`${"migrate ".repeat(20_000)}`);
    manualStepLines("run `".repeat(20_000));
    assert.ok(Date.now() - started < 2_000);
  });
});

describe("newRequiredKeys", () => {
  it("lists empty, uncommented keys the env lacks, in sample order", () => {
    const sample = [
      "TYPE=x",
      "EMPTY=",
      'QUOTED_EMPTY=""',
      "SINGLE_EMPTY=''",
      "EMPTY_WITH_COMMENT= # set me",
      "DEFAULTED=42",
      "#COMMENTED=",
      "# COMMENTED_SPACE=",
      "export EXPORTED=",
      "HAVE=",
      "LAST_WINS=",
      "LAST_WINS=value",
      "NO_NEWLINE=",
    ].join("\n");
    assert.deepEqual(newRequiredKeys(sample, ["TYPE", "HAVE"]), ["EMPTY", "QUOTED_EMPTY", "SINGLE_EMPTY", "EMPTY_WITH_COMMENT", "EXPORTED", "NO_NEWLINE"]);
  });

  it("is empty for an empty sample", () => {
    assert.deepEqual(newRequiredKeys("", []), []);
  });
});

// ---- properties ----

const UPSTREAMS = ["1.0", "1.2", "2.0", "26.5.6", "26.7.3", "27.0.0", "latest"];
const versionArb = fc
  .tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 2 }), fc.constantFrom(...UPSTREAMS))
  .map(([a, b, c, u]) => `${a}.${b}.${c}+${u}`);
const malformedArb = fc.constantFrom("latest", "9.9.9", "v9.0.0+1", "bad-tag", "9.9.9+", " 1.0.0+1.0");
const notesArb = fc.oneof(
  fc.constant({ text: SAFE_NOTES as string | undefined, risky: false }),
  fc.constant({ text: undefined, risky: false }),
  fc.constant({ text: "Broken on purpose: exits at start.", risky: false }),
  fc.constant({ text: "Theme changes.\n\nManual steps required: re-import.", risky: true }),
  fc.constant({ text: "Recipe rework. Breaking change.", risky: true }),
);
const sampleArb = fc.oneof(
  fc.constant({ text: SAFE_SAMPLE as string | undefined, risky: false }),
  fc.constant({ text: undefined, risky: false }),
  fc.constant({ text: "TYPE=app\nWITH_DEFAULT=x\n#HINT=\n", risky: false }),
  fc.constant({ text: "TYPE=app\nKNOWN_KEY=\n", risky: false }),
  fc.constant({ text: "TYPE=app\nNEW_KEY=\n", risky: true }),
);

const scenarioArb = fc
  .record({
    tags: fc.array(fc.oneof({ weight: 5, arbitrary: versionArb }, { weight: 1, arbitrary: malformedArb }), { maxLength: 12 }),
    current: fc.option(versionArb, { nil: null }),
    perVersion: fc.dictionary(versionArb, fc.record({ notes: notesArb, sample: sampleArb })),
  })
  .map(({ tags, current, perVersion }) => {
    const notes: Record<string, string | undefined> = {};
    const envSamples: Record<string, string | undefined> = {};
    const risky = new Set<string>();
    for (const [v, p] of Object.entries(perVersion)) {
      notes[v] = p.notes.text;
      envSamples[v] = p.sample.text;
      if (p.notes.risky || p.sample.risky) risky.add(v);
    }
    const input: GateInput = { app: "app", current, released: tags, notes, envSamples, currentEnvKeys: ["TYPE", "KNOWN_KEY"] };
    return { input, risky };
  });

// Written independently of the gate: what a human would check by hand for one candidate.
function riskyByHand(current: string, v: string, riskyContent: ReadonlySet<string>): boolean {
  const c = parseVersion(current);
  const x = parseVersion(v);
  const upstreamDiffers =
    c.upstreamMajor !== null && x.upstreamMajor !== null ? c.upstreamMajor !== x.upstreamMajor : c.upstream !== x.upstream;
  return c.major !== x.major || upstreamDiffers || riskyContent.has(v);
}

const cmp = (a: string, b: string) => compareVersions(parseVersion(a), parseVersion(b));

function wellFormedReleased(tags: readonly string[]): string[] {
  return [...new Set(tags.filter(isVersion))].sort(cmp);
}

describe("decide: properties", () => {
  it("the target is a released well-formed version or current, and never older than current", () => {
    fc.assert(
      fc.property(scenarioArb, ({ input }) => {
        const released = wellFormedReleased(input.released);
        if (input.current === null && released.length === 0) {
          assert.throws(() => decide(input), GateError);
          return;
        }
        const d = decide(input);
        assert.ok(isVersion(d.target));
        assert.ok(released.includes(d.target) || d.target === input.current);
        if (input.current !== null) assert.ok(cmp(d.target, input.current) >= 0);
        assert.equal(d.action, input.current === null ? "deploy" : d.target === input.current ? "stay" : "upgrade");
      }),
      { numRuns: 500 },
    );
  });

  it("a hold keeps the target below the version it blocks, and names the newest release", () => {
    fc.assert(
      fc.property(scenarioArb, ({ input }) => {
        fc.pre(input.current !== null);
        const d = decide(input);
        assert.ok(d.holds.length <= 1);
        for (const h of d.holds) {
          assert.ok(cmp(d.target, h.blockedAt) < 0);
          assert.equal(h.from, d.target, "held at what it will run, not at what ran before this up");
          assert.equal(h.to, wellFormedReleased(input.released).at(-1));
          assert.ok(cmp(h.blockedAt, h.from) > 0);
          assert.ok(h.lines.length > 0);
        }
      }),
      { numRuns: 500 },
    );
  });

  it("agrees with a by-hand check: no risky candidate → the newest release; else just below the first risky one", () => {
    fc.assert(
      fc.property(scenarioArb, ({ input, risky }) => {
        fc.pre(input.current !== null);
        const current = input.current as string;
        const released = wellFormedReleased(input.released);
        const candidates = released.filter((v) => cmp(v, current) > 0);
        const firstRisky = candidates.find((v) => riskyByHand(current, v, risky));
        const d = decide(input);
        if (firstRisky === undefined) {
          assert.deepEqual(d.holds, []);
          const newest = released.at(-1);
          if (newest !== undefined && cmp(newest, current) >= 0) assert.equal(d.target, newest);
          else assert.equal(d.target, current);
        } else {
          assert.equal(d.holds.length, 1);
          assert.equal(d.holds[0].blockedAt, firstRisky);
          const below = candidates.filter((v) => cmp(v, firstRisky) < 0).at(-1);
          assert.equal(d.target, below ?? current);
        }
      }),
      { numRuns: 1000 },
    );
  });

  it("a version that failed before is never the target; the target is the newest other safe one", () => {
    fc.assert(
      fc.property(scenarioArb, fc.array(versionArb, { maxLength: 6 }), ({ input, risky }, failed) => {
        fc.pre(input.current !== null);
        const current = input.current as string;
        const failedBefore = Object.fromEntries(failed.map((version) => [version, "rolled back"]));
        const d = decide({ ...input, failedBefore });
        const candidates = wellFormedReleased(input.released).filter((v) => cmp(v, current) > 0);
        const firstRisky = candidates.find((v) => riskyByHand(current, v, risky));
        const reachable = candidates.filter((v) => firstRisky === undefined || cmp(v, firstRisky) < 0);
        const expected = reachable.filter((v) => !(v in failedBefore)).at(-1) ?? current;
        assert.equal(d.target, expected);
        const failedHold = d.holds.find((hold) => hold.reason === "failed-before");
        const skipped = reachable.filter((v) => v in failedBefore && cmp(v, expected) > 0).at(-1);
        assert.equal(failedHold?.blockedAt, skipped);
        for (const hold of d.holds) assert.ok(cmp(d.target, hold.blockedAt) < 0);
      }),
      { numRuns: 1000 },
    );
  });

  it("never throws on well-formed current, whatever the tags, notes and samples", () => {
    fc.assert(
      fc.property(
        versionArb,
        fc.array(fc.string({ maxLength: 12 }), { maxLength: 8 }),
        fc.dictionary(fc.string({ maxLength: 12 }), fc.option(fc.string({ maxLength: 60 }), { nil: undefined })),
        (current, tags, texts) => {
          const d = decide({ app: "app", current, released: tags, notes: texts, envSamples: texts, currentEnvKeys: [] });
          assert.ok(d.target === current || tags.includes(d.target));
        },
      ),
      { numRuns: 300 },
    );
  });
});

// ---- the fixture recipes' own release notes and samples ----

const FIXTURES = path.resolve(__dirname, "..", "..", "..", "test", "fixtures", "recipes");

interface FixtureRecipe {
  name: string;
  versions: string[];
  notes: Record<string, string | undefined>;
  envSamples: Record<string, string | undefined>;
}

// Mirrors the fixture build: `versions` lists VERSION [NAME=value ...], "defaults" first; values fill
// @NAME@ in that version's files. Only the sample is needed here.
function loadFixture(name: string): FixtureRecipe {
  const dir = path.join(FIXTURES, name);
  const template = readFileSync(path.join(dir, "base", ".env.sample"), "utf8");
  const defaults: Record<string, string> = {};
  const versions: string[] = [];
  const envSamples: Record<string, string | undefined> = {};
  for (const line of readFileSync(path.join(dir, "versions"), "utf8").split("\n")) {
    if (line.trim() === "" || line.startsWith("#")) continue;
    const [head, ...assignments] = line.trim().split(/\s+/);
    const values: Record<string, string> = head === "defaults" ? defaults : { ...defaults };
    for (const a of assignments) {
      const eq = a.indexOf("=");
      values[a.slice(0, eq)] = a.slice(eq + 1);
    }
    if (head === "defaults") continue;
    versions.push(head);
    envSamples[head] = template.replace(/@([A-Z_]+)@/g, (m, key: string) => values[key] ?? m);
  }
  const notes: Record<string, string | undefined> = {};
  for (const file of readdirSync(path.join(dir, "release"))) notes[file] = readFileSync(path.join(dir, "release", file), "utf8");
  return { name, versions, notes, envSamples };
}

const fixtures = readdirSync(FIXTURES).map(loadFixture);

describe("the fixture recipes' release notes", () => {
  it("finds the fixture recipes", () => {
    assert.deepEqual(
      fixtures.map((f) => f.name),
      ["custom-html", "keycloak", "sso-app", "traefik"],
    );
  });

  it("every recipe with a 1.3.0 has notes for it, recognised as manual-steps by decide", () => {
    let checked = 0;
    for (const f of fixtures) {
      const v130 = f.versions.find((v) => v.startsWith("1.3.0+"));
      if (v130 === undefined) continue;
      const v120 = f.versions.find((v) => v.startsWith("1.2.0+")) as string;
      // Run from 1.2.0 with its env, so 1.3.0 is the first thing that can hold.
      const envKeys = EnvFile.parse(f.envSamples[v120] as string).keys();
      const d = decide({ app: f.name, current: v120, released: f.versions, notes: f.notes, envSamples: f.envSamples, currentEnvKeys: envKeys });
      assert.equal(d.holds[0]?.reason, "manual-steps", f.name);
      assert.equal(d.holds[0].blockedAt, v130);
      assert.equal(d.target, v120);
      assert.deepEqual(d.warnings, []);
      checked++;
    }
    assert.equal(checked, 3);
  });

  const expected: Record<string, { target: string; blockedAt?: string; reason?: string; lines?: string[] }> = {
    "custom-html": { target: "1.1.0+1.1", blockedAt: "1.2.0+1.2", reason: "new-required-key", lines: ["SITE_TITLE"] },
    keycloak: { target: "1.1.0+26.7.3", blockedAt: "1.2.0+26.7.3", reason: "new-required-key", lines: ["KC_SMTP_HOST"] },
    traefik: { target: "1.1.0+3.6.12", blockedAt: "1.2.0+3.6.12", reason: "new-required-key", lines: ["ACME_EMAIL"] },
    "sso-app": { target: "1.1.1+1.1" },
  };
  for (const f of fixtures) {
    it(`${f.name}: from 1.0.0 with its sample's keys → ${expected[f.name].target}`, () => {
      const first = f.versions[0];
      const envKeys = EnvFile.parse(f.envSamples[first] as string).keys();
      const d = decide({ app: f.name, current: first, released: f.versions, notes: f.notes, envSamples: f.envSamples, currentEnvKeys: envKeys });
      const want = expected[f.name];
      assert.equal(d.target, want.target);
      assert.deepEqual(d.warnings, []);
      if (want.reason === undefined) {
        assert.deepEqual(d.holds, []);
      } else {
        assert.deepEqual(
          d.holds.map((h) => [h.blockedAt, h.reason, h.lines, h.to]),
          [[want.blockedAt, want.reason, want.lines, wellFormedReleased(f.versions).at(-1)]],
        );
      }
    });
  }

  it("1.4.0 is held as upstream-major and 2.0.0 as recipe-major, from 1.3.0", () => {
    for (const f of fixtures.filter((x) => x.versions.some((v) => v.startsWith("1.4.0+")))) {
      const v130 = f.versions.find((v) => v.startsWith("1.3.0+")) as string;
      const keys = EnvFile.parse(f.envSamples[v130] as string).keys();
      const from13 = decide({ app: f.name, current: v130, released: f.versions, notes: f.notes, envSamples: f.envSamples, currentEnvKeys: keys });
      assert.equal(from13.holds[0].reason, "upstream-major", f.name);
      assert.match(from13.holds[0].blockedAt, /^1\.4\.0\+/);
      // Without 1.4.0, the next risky one is 2.0.0 (1.5.x notes say "Broken on purpose", which is no manual step).
      const without14 = f.versions.filter((v) => !v.startsWith("1.4.0+"));
      const d = decide({ app: f.name, current: v130, released: without14, notes: f.notes, envSamples: f.envSamples, currentEnvKeys: keys });
      assert.equal(d.holds[0].reason, "recipe-major", f.name);
      assert.match(d.holds[0].blockedAt, /^2\.0\.0\+/);
      // Every 1.x above 1.3.0 is safe by the gate's table (the canary, not the gate, stops keycloak 1.6.0).
      assert.equal(d.target, wellFormedReleased(without14).filter((v) => v.startsWith("1.")).at(-1), f.name);
    }
  });
});
