import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { execa } from "execa";
import { checkPromotion, PromoteError } from "../../runner/promote";

/**
 * The canonical's pure parts: what the warm program registers for the enrolled recipes (Pulumi
 * mocks, a throwaway recipe repository), what counts as a change of a canonical, and which
 * promotions are refused.
 */
const registered: { type: string; name: string; inputs: Record<string, unknown> }[] = [];
let abraDir: string;

before(async () => {
  pulumi.runtime.setMocks(
    {
      newResource: (args) => {
        registered.push({ type: args.type, name: args.name, inputs: args.inputs as Record<string, unknown> });
        return { id: `${args.name}-id`, state: args.inputs };
      },
      call: (args) => args.inputs,
    },
    "warmstack",
    "warm",
    true,
  );
  abraDir = await mkdtemp(path.join(os.tmpdir(), "warmstack-unit-abra-"));
  const recipe = path.join(abraDir, "recipes", "custom-html");
  await mkdir(recipe, { recursive: true });
  const git = (args: string[]) => execa("git", ["-C", recipe, "-c", "user.name=t", "-c", "user.email=t@t", ...args]);
  await git(["init", "-q"]);
  await writeFile(path.join(recipe, "compose.yml"), "services: {}\n");
  await git(["add", "."]);
  await git(["commit", "-q", "-m", "init"]);
  for (const tag of ["1.0.0+1.0", "1.0.1+1.0"]) await git(["tag", "-a", "-m", tag, tag]);
  // A lightweight tag is no release.
  await git(["tag", "1.1.0+1.1"]);
});

after(async () => {
  await rm(abraDir, { recursive: true, force: true });
});

function warmConfig(canonicals: Record<string, unknown>) {
  return {
    baseDomain: "warm.test",
    server: "default",
    deployer: "stack" as const,
    abraDir,
    proxyUrl: "http://127.0.0.1:47080",
    dnsrrEndpoints: true,
    alertDir: "/srv/alerts",
    snapshotStore: "warmstack_snapshots",
    snapshotHelperImage: "warmstack/base:bookworm",
    apps: {},
    canonicals: canonicals as never,
    stateDir: "/srv/state",
    leaseWaitSeconds: 1800,
  };
}

const settings = { deployer: "stack" as const, abraDir: "/srv/abra", server: "default", proxyUrl: "http://127.0.0.1:47080", dnsrrEndpoints: true };
const enrolled = (knownGood: string) => ({ knownGood, health: { path: "/health" }, deployTimeoutSeconds: 60 });

describe("the warm program's canonicals", () => {
  it("registers one Canonical per enrolled recipe on its stable domain", async () => {
    const { canonicalResources } = await import("../../stacks/canonicals");
    registered.length = 0;
    await canonicalResources(warmConfig({ "custom-html": enrolled("1.0.1+1.0") }), settings);
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(
      registered.map((resource) => [resource.type, resource.name, resource.inputs.domain, resource.inputs.knownGood, resource.inputs.deployTimeoutMs, resource.inputs.leases]),
      [["pulumi-nodejs:dynamic/warmstack:Canonical", "custom-html", "warm-custom-html.warm.test", "1.0.1+1.0", 60_000, { stateDir: "/srv/state", waitMs: 1_800_000 }]],
    );
  });

  it("refuses a known-good that is not released and an unknown recipe before registering anything", async () => {
    const { canonicalResources } = await import("../../stacks/canonicals");
    const { ConfigError } = await import("../../infra/config");
    registered.length = 0;
    await assert.rejects(
      canonicalResources(warmConfig({ "custom-html": enrolled("1.1.0+1.1"), nextcloud: enrolled("1.0.0+1.0") }), settings),
      (error: unknown) =>
        error instanceof ConfigError &&
        /warmstack:canonicals\.custom-html\.knownGood: 1\.1\.0\+1\.1 is not a released version of custom-html \(released: 1\.0\.0\+1\.0, 1\.0\.1\+1\.0\)/.test(error.message) &&
        /warmstack:canonicals\.nextcloud: unknown recipe: there is no checkout at /.test(error.message),
    );
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(registered, []);
  });
});

describe("a canonical's diff", () => {
  const olds = {
    recipe: "custom-html",
    knownGood: "1.0.0+1.0",
    domain: "warm-custom-html.warm.test",
    health: { path: "/health" },
    deployTimeoutMs: 60_000,
    deployerSettings: settings,
    snapshot: { store: "warmstack_snapshots", helperImage: "warmstack/base:bookworm" },
    snapshotId: "a".repeat(64),
    snapshotBytes: 10240,
    seededAt: "2026-01-01T00:00:00.000Z",
  };
  const { snapshotId: _id, snapshotBytes: _bytes, seededAt: _at, ...inputs } = olds;

  it("check accepts its inputs and names every bad property", async () => {
    const { checkCanonical } = await import("../../infra/canonical");
    assert.deepEqual((await checkCanonical(inputs)).failures, []);
    const bad = await checkCanonical({ ...inputs, recipe: "../x", knownGood: "1.0", deployTimeoutMs: -1, domain: `${"a".repeat(60)}.warm.test`, node: "n == m" });
    assert.deepEqual((bad.failures ?? []).map((failure) => failure.property).sort(), ["deployTimeoutMs", "domain", "knownGood", "node", "recipe"]);
  });

  it("sees no change when only the outputs differ from the inputs", async () => {
    const { diffCanonical } = await import("../../infra/canonical");
    assert.deepEqual(diffCanonical(olds, inputs), { changes: false, replaces: [], deleteBeforeReplace: false });
  });

  it("updates in place for a new known-good, health, timeout or store", async () => {
    const { diffCanonical } = await import("../../infra/canonical");
    for (const change of [
      { knownGood: "1.0.1+1.0" },
      { health: { path: "/ready" } },
      { deployTimeoutMs: 120_000 },
      { snapshot: { ...inputs.snapshot, store: "other_store" } },
    ]) {
      assert.deepEqual(diffCanonical(olds, { ...inputs, ...change }), { changes: true, replaces: [], deleteBeforeReplace: false }, JSON.stringify(change));
    }
  });

  it("sees a node named for the first time, or another than its volumes', as a change (which the update checks), and the same node as none", async () => {
    const { diffCanonical } = await import("../../infra/canonical");
    assert.equal(diffCanonical({ ...olds, pinnedNode: "n1" }, { ...inputs, node: "n1" }).changes, false);
    assert.equal(diffCanonical({ ...olds, pinnedNode: "n1" }, { ...inputs, node: "n2" }).changes, true);
    assert.equal(diffCanonical(olds, { ...inputs, node: "n1" }).changes, true, "seeded before pinning: the update pins it");
    assert.equal(diffCanonical({ ...olds, pinnedNode: "n1" }, inputs).changes, false, "no node named: it stays where it is");
  });

  it("sees no change when only where leases live or how long to wait for them changes", async () => {
    const { diffCanonical } = await import("../../infra/canonical");
    assert.equal(diffCanonical(olds, { ...inputs, leases: { stateDir: "/srv/other", waitMs: 5000 } }).changes, false);
  });

  it("replaces (seeding the new one first) when the domain moves", async () => {
    const { diffCanonical } = await import("../../infra/canonical");
    assert.deepEqual(diffCanonical(olds, { ...inputs, domain: "warm-custom-html.ci.example" }), {
      changes: true,
      replaces: ["domain"],
      deleteBeforeReplace: false,
    });
  });
});

describe("promote's checks", () => {
  const facts = { recipe: "custom-html", version: "1.1.0+1.1", enrolled: ["custom-html"], released: ["1.0.0+1.0", "1.0.1+1.0", "1.1.0+1.1"], knownGood: "1.0.1+1.0" };

  it("goes ahead for a newer release and does nothing for the current known-good", () => {
    assert.equal(checkPromotion(facts), "promote");
    assert.equal(checkPromotion({ ...facts, version: "1.0.1+1.0" }), "current");
  });

  it("refuses an unknown recipe, an unreleased version and an older version, saying why", () => {
    assert.throws(() => checkPromotion({ ...facts, recipe: "nextcloud" }), (error: unknown) => error instanceof PromoteError && /recipe nextcloud is not enrolled in the warm stack \(enrolled: custom-html\)/.test(error.message));
    assert.throws(() => checkPromotion({ ...facts, version: "1.2.0+1.2" }), /1\.2\.0\+1\.2 is not a released version of custom-html \(released: 1\.0\.0\+1\.0, 1\.0\.1\+1\.0, 1\.1\.0\+1\.1\)/);
    assert.throws(() => checkPromotion({ ...facts, version: "1.0.0+1.0" }), /1\.0\.0\+1\.0 is older than custom-html's known-good 1\.0\.1\+1\.0/);
  });
});

describe("status", () => {
  const now = new Date("2026-01-01T01:00:00.000Z");
  const warmApp = (app: string) => ({
    app,
    domain: `${app}.warm.test`,
    deployedVersion: "1.0.0+26.5.6",
    lastGood: "1.0.0+26.5.6",
    rolledBack: false,
    lastCheckedAt: "2026-01-01T00:00:00.000Z",
  });

  it("reads warm apps (leaving their secret outputs out) and canonicals by their resource type", async () => {
    const { describeResource } = await import("../../runner/status");
    assert.deepEqual(
      describeResource(
        {
          type: "WarmApp",
          outputs: {
          app: "keycloak",
          domain: "kc.warm.test",
          deployedVersion: "1.0.0+26.5.6",
          lastGood: "1.0.0+26.5.6",
          rolledBack: true,
          rollbackReason: "upgrade failed: HTTP 503",
          lastCheckedAt: "2026-01-01T00:00:00.000Z",
          appSecrets: { "4dabf18193072939515e22adc298a1": "1b47061264138c4ac30d75fd1eb44270", ciphertext: "v1:x" },
          },
        },
        now,
      ),
      {
        kind: "warm-app",
        status: {
          app: "keycloak",
          domain: "kc.warm.test",
          deployedVersion: "1.0.0+26.5.6",
          lastGood: "1.0.0+26.5.6",
          rolledBack: true,
          rollbackReason: "upgrade failed: HTTP 503",
          lastCheckedAt: "2026-01-01T00:00:00.000Z",
        },
      },
    );
    assert.deepEqual(
      describeResource(
        {
          type: "Canonical",
          outputs: { recipe: "custom-html", domain: "warm-custom-html.warm.test", knownGood: "1.0.1+1.0", snapshotId: "ab".repeat(32), snapshotBytes: 3_145_728, seededAt: "2026-01-01T00:30:00.000Z" },
        },
        now,
      ),
      {
        kind: "canonical",
        status: {
          recipe: "custom-html",
          domain: "warm-custom-html.warm.test",
          knownGood: "1.0.1+1.0",
          snapshotId: "ab".repeat(32),
          snapshotBytes: 3_145_728,
          seededAt: "2026-01-01T00:30:00.000Z",
          snapshotAgeSeconds: 1800,
        },
      },
    );
  });

  it("names a canonical's node, and says when that node cannot run it", async () => {
    const { describeResource, renderStatus } = await import("../../runner/status");
    const outputs = { recipe: "custom-html", domain: "warm-custom-html.warm.test", knownGood: "1.0.1+1.0", snapshotId: "ab".repeat(32), snapshotBytes: 1024, seededAt: "2026-01-01T00:30:00.000Z" };
    const pinned = describeResource({ type: "Canonical", outputs: { ...outputs, pinnedNode: "ci-node-2" } }, now);
    assert.equal(pinned.kind === "canonical" && pinned.status.node, "ci-node-2");
    const line = (nodeState?: { usable: true } | { usable: false; why: string } | { checked: false; reason: string }, node: string | null = "ci-node-2") =>
      renderStatus({
        stack: "warm",
        warmApps: [],
        canonicals: [{ ...outputs, snapshotAgeSeconds: 60, state: "idle", ...(node ? { node } : {}), ...(nodeState ? { nodeState } : {}) }],
        holds: [],
        alerts: [],
      })
        .split("\n")
        .find((text) => text.includes("custom-html"));
    assert.match(line({ usable: true }) ?? "", /, idle, on node ci-node-2$/);
    assert.match(line({ usable: false, why: "has left the swarm" }) ?? "", /, idle, on node ci-node-2, which has left the swarm: its quick runs fall back to cold$/);
    assert.match(line({ checked: false, reason: "the swarm's nodes cannot be read (x)" }) ?? "", /on node ci-node-2 \(not checked: the swarm's nodes cannot be read \(x\)\)$/);
    assert.match(line(undefined, null) ?? "", /, idle$/, "seeded before pinning: no node named");
  });

  it("tells the warm stack's resources apart by type, and reads a state not yet moved to the typed resources by name", async () => {
    const { stateResourceOf } = await import("../../runner/warm-state");
    const urn = (type: string, name: string) => `urn:pulumi:warm::warmstack::${type}::${name}`;
    const kinds = [
      ["pulumi-nodejs:dynamic/warmstack:WarmApp", "keycloak"],
      ["pulumi-nodejs:dynamic/warmstack:Canonical", "keycloak"],
      ["pulumi-nodejs:dynamic:Resource", "traefik"],
      ["pulumi-nodejs:dynamic:Resource", "canonical-custom-html"],
      ["pulumi-nodejs:dynamic/warmstack:RunApp", "app"],
      ["pulumi:pulumi:Stack", "warmstack-warm"],
      ["pulumi:providers:pulumi-nodejs", "default"],
    ].map(([type, name]) => stateResourceOf({ urn: urn(type!, name!), type: type! }));
    assert.deepEqual(
      kinds.map((resource) => resource && [resource.type, resource.name]),
      [["WarmApp", "keycloak"], ["Canonical", "keycloak"], ["WarmApp", "traefik"], ["Canonical", "custom-html"], undefined, undefined, undefined],
    );
  });

  it("does not look at a warm app whose state it cannot read, and names the field", async () => {
    const { liveState } = await import("../../runner/status");
    assert.deepEqual(await liveState({ recipe: "keycloak", domain: "kc.warm.test", health: { path: "/realms/master" } }), {
      checked: false,
      reason: "its state cannot be read (deployerSettings: Invalid input: expected object, received undefined)",
    });
  });

  it("renders rollbacks, canonicals with size, age and lease, holds and alerts", async () => {
    const { renderStatus } = await import("../../runner/status");
    const text = renderStatus({
      stack: "warm",
      warmApps: [
        { ...warmApp("keycloak"), rolledBack: true, rollbackReason: "upgrade failed: HTTP 503", live: { checked: true, version: "1.0.0+26.5.6", healthy: true, detail: "/realms/master: HTTP 200" } },
        { ...warmApp("traefik"), live: { checked: true, version: "1.0.0+26.5.6", healthy: false, detail: "/ping: ECONNREFUSED" } },
        { ...warmApp("other"), live: { checked: true, version: "1.1.0+26.7.3", healthy: true, detail: "/ping: HTTP 200" } },
        { ...warmApp("gone"), live: { checked: true, version: null, healthy: false, detail: "/ping: ECONNREFUSED" } },
        { ...warmApp("odd"), live: { checked: false, reason: "its state cannot be read (domain: Required)" } },
      ],
      canonicals: [
        { recipe: "custom-html", domain: "warm-custom-html.warm.test", knownGood: "1.0.1+1.0", snapshotId: "ab".repeat(32), snapshotBytes: 3_145_728, seededAt: "2026-01-01T00:30:00.000Z", snapshotAgeSeconds: 1800, state: "leased", lease: { stack: "run-custom-html-a1b2c3" } },
        { recipe: "sso-app", domain: "warm-sso-app.warm.test", knownGood: "1.0.0+1.0", snapshotId: "cd".repeat(32), snapshotBytes: 1024, seededAt: "2026-01-01T00:30:00.000Z", snapshotAgeSeconds: 1800, state: "deployed", deployedVersion: "1.1.0+1.1" },
      ],
      holds: [{ app: "keycloak", from: "1.0.0+26.5.6", to: "2.0.0+26.7.3", blockedAt: "2.0.0+26.7.3", reason: "recipe-major", detail: "recipe major 1 → 2", lines: [] }],
      alerts: [{ app: "keycloak", from: "1.0.0+26.5.6", to: "1.1.0+26.7.3", outcome: "rolled-back", severity: "warning", reason: "upgrade failed: HTTP 503", time: "2026-01-01T00:00:00.000Z" }],
    });
    assert.match(text, /keycloak \(keycloak\.warm\.test\): 1\.0\.0\+26\.5\.6, ROLLED BACK: upgrade failed: HTTP 503; checked .*; now running 1\.0\.0\+26\.5\.6, healthy\n/);
    assert.match(text, /traefik .*; now running 1\.0\.0\+26\.5\.6, DOWN \(\/ping: ECONNREFUSED\): the next up brings it back\n/);
    assert.match(text, /other .*; now running 1\.1\.0\+26\.7\.3 \(state says 1\.0\.0\+26\.5\.6\), healthy\n/);
    assert.match(text, /gone .*; now NOT DEPLOYED: the next up deploys it\n/);
    assert.match(text, /odd .*; now not checked: its state cannot be read \(domain: Required\)\n/);
    assert.match(text, /custom-html \(warm-custom-html\.warm\.test\): known-good 1\.0\.1\+1\.0, snapshot 3\.0 MiB taken 30m ago \(abababababab\), leased/);
    assert.match(text, /sso-app .*\(cdcdcdcdcdcd\), DEPLOYED at 1\.1\.0\+1\.1 without a lease: quick runs will not borrow it until it is undeployed/);
    assert.match(text, /keycloak: 2\.0\.0\+26\.7\.3 held at 1\.0\.0\+26\.5\.6 — recipe-major at 2\.0\.0\+26\.7\.3/);
    assert.match(text, /2026-01-01T00:00:00\.000Z warning keycloak rolled-back 1\.0\.0\+26\.5\.6 → 1\.1\.0\+26\.7\.3: upgrade failed: HTTP 503/);
  });
});
