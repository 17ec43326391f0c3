import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { checkRunApp, diffRunApp, RunAppInputs } from "../../infra/run-app";
import { checkRunRealm, diffRunRealm, RunRealmInputs } from "../../infra/run-realm";
import { checkWarmApp, diffWarmApp, WarmAppInputs } from "../../infra/warm-app";

/**
 * Each resource's pure checks, called directly as the provider calls them: what `check` refuses
 * (naming the property) and what `diff` calls a change, an update or a replace. The Canonical's are
 * with its other pure parts, in canonical-resource.test.ts.
 */
const settings = { deployer: "stack" as const, abraDir: "/srv/abra", server: "default", proxyUrl: "http://127.0.0.1:47080", dnsrrEndpoints: true };

const failedProperties = (result: { failures?: { property: string }[] }) => (result.failures ?? []).map((failure) => failure.property).sort();

describe("WarmApp's check and diff", () => {
  const inputs: WarmAppInputs = {
    app: "keycloak",
    recipe: "keycloak",
    domain: "keycloak.warm.test",
    kind: "stateful",
    version: "1.1.0+26.7.3",
    health: { path: "/realms/master" },
    deployTimeoutMs: 300_000,
    deployerSettings: settings,
    operations: { alertDir: "/srv/alerts", snapshotStore: "warmstack_snapshots", snapshotHelperImage: "warmstack/base:bookworm" },
  };
  const olds = { ...inputs, deployedVersion: inputs.version, lastGood: inputs.version, rolledBack: false, lastCheckedAt: "2026-01-01T00:00:00.000Z", appSecrets: {} };
  const running = { version: inputs.version, healthy: true };

  it("accepts its inputs and names every bad property", async () => {
    assert.deepEqual(failedProperties(await checkWarmApp(inputs)), []);
    const bad = await checkWarmApp({ ...inputs, recipe: "Key Cloak", domain: "localhost", version: "latest", kind: "warm" as never });
    assert.deepEqual(failedProperties(bad), ["domain", "kind", "recipe", "version"]);
    assert.match(bad.failures!.find((failure) => failure.property === "version")!.reason, /"latest" is not a recipe version/);
  });

  it("sees nothing to do when the swarm runs the wanted version healthily", () => {
    assert.deepEqual(diffWarmApp(olds, inputs, running), { changes: false, replaces: [], deleteBeforeReplace: true });
  });

  it("updates for a new version, a version the swarm does not run, an app that is down, a changed health spec and a recorded rollback", () => {
    const cases: [string, Parameters<typeof diffWarmApp>][] = [
      ["new version", [olds, { ...inputs, version: "1.2.0+26.7.3" }, running]],
      ["drifted on the swarm", [olds, inputs, { version: "1.0.0+26.5.6", healthy: true }]],
      ["not deployed", [olds, inputs, { version: null, healthy: true }]],
      ["down at its version", [olds, inputs, { version: inputs.version, healthy: false }]],
      ["health spec", [olds, { ...inputs, health: { path: "/health/ready" } }, running]],
      ["rollback recorded", [{ ...olds, rolledBack: true }, inputs, running]],
    ];
    for (const [what, args] of cases) assert.deepEqual(diffWarmApp(...args), { changes: true, replaces: [], deleteBeforeReplace: true }, what);
  });

  it("replaces it, deleting first, for another recipe, domain or kind", () => {
    assert.deepEqual(diffWarmApp(olds, { ...inputs, domain: "kc.warm.test", kind: "stateless" }, running).replaces, ["domain", "kind"]);
    assert.deepEqual(diffWarmApp(olds, { ...inputs, recipe: "keycloak-next" }, running).replaces, ["recipe"]);
  });

  it("never calls a healthy app at its version down, whatever the env or purge setting", () => {
    fc.assert(
      fc.property(fc.dictionary(fc.stringMatching(/^[A-Z_]{1,8}$/), fc.string()), fc.boolean(), (env, purge) => {
        assert.equal(diffWarmApp(olds, { ...inputs, env, purge }, running).changes, false);
      }),
    );
  });
});

describe("RunRealm's check and diff", () => {
  const inputs: RunRealmInputs = {
    recipe: "sso-app",
    runId: "a1b2c3",
    stack: "run-sso-app-a1b2c3",
    keycloakDomain: "keycloak.warm.test",
    proxyUrl: "http://127.0.0.1:47080",
    stateDir: "/srv/state",
  };
  const olds = { ...inputs, realm: "sso-app-a1b2c3", issuer: "", tokenEndpoint: "", clientId: "sso-app", clientSecret: "", testUser: "", testUserPassword: "", createdAt: "" };

  it("accepts its inputs and names every bad property", async () => {
    assert.deepEqual(failedProperties(await checkRunRealm(inputs)), []);
    const bad = await checkRunRealm({ ...inputs, runId: "A1B2C3", stack: "warm", proxyUrl: "http://10.0.0.1:80", stateDir: "state", keycloakDomain: "nope" });
    assert.deepEqual(failedProperties(bad), ["keycloakDomain", "proxyUrl", "runId", "stack", "stateDir"]);
  });

  it("refuses a realm name that would reach past the run pattern, under the recipe's name", async () => {
    const bad = await checkRunRealm({ ...inputs, recipe: "a".repeat(40) });
    assert.ok(failedProperties(bad).includes("recipe"), JSON.stringify(bad.failures));
  });

  it("replaces (deleting first) another realm, owner or Keycloak, and updates in place where the proxy or the lock live", () => {
    assert.deepEqual(diffRunRealm(olds, inputs), { changes: false, replaces: [], deleteBeforeReplace: true });
    assert.deepEqual(diffRunRealm(olds, { ...inputs, runId: "d4e5f6", keycloakDomain: "kc.warm.test" }).replaces, ["runId", "keycloakDomain"]);
    assert.deepEqual(diffRunRealm(olds, { ...inputs, proxyUrl: "http://127.0.0.1:47090" }), { changes: true, replaces: [], deleteBeforeReplace: true });
  });
});

describe("RunApp's check and diff", () => {
  const inputs: RunAppInputs = {
    recipe: "custom-html",
    stack: "run-custom-html-a1b2c3",
    domain: "cust-a1b2c3.warm.test",
    ref: "",
    health: { path: "/health" },
    deployTimeoutMs: 120_000,
    deployerSettings: settings,
  };
  const olds = { ...inputs, lane: "cold" as const, appDomain: inputs.domain, deployed: "1.0.1+1.0", deployCount: 1, deployMs: 1000, leaseWaitMs: 0, appSecrets: {} };

  it("takes the latest release, a version or a commit, and names every bad property", async () => {
    for (const ref of ["", "1.0.1+1.0", "3f2c1ab", "a".repeat(40)]) assert.deepEqual(failedProperties(await checkRunApp({ ...inputs, ref })), [], ref);
    const bad = await checkRunApp({ ...inputs, ref: "main; rm -rf /", stack: "warm", domain: "x" });
    assert.deepEqual(failedProperties(bad), ["domain", "ref", "stack"]);
  });

  it("checks the quick lane's canonical too", async () => {
    const canonical = { domain: "not a domain", knownGood: "one", snapshotStore: "s", helperImage: "i", deployerSettings: settings, health: { path: "/health" }, deployTimeoutMs: 1 };
    const bad = await checkRunApp({ ...inputs, quick: { canonical, stateDir: "/srv/state", leaseTimeoutMs: 0 } });
    assert.deepEqual(failedProperties(bad), ["quick.canonical.domain", "quick.canonical.knownGood"]);
  });

  it("is never changed in place: any change of what it deploys is a new app, and the env or progress file are not one", async () => {
    assert.deepEqual(await diffRunApp(olds, inputs), { changes: false, replaces: [], deleteBeforeReplace: true });
    assert.deepEqual((await diffRunApp(olds, { ...inputs, ref: "3f2c1ab", health: { path: "/ready" } })).replaces, ["ref", "health"]);
    assert.equal((await diffRunApp(olds, { ...inputs, env: { OIDC_ISSUER: "x" }, progressFile: "/srv/p" })).changes, false);
  });
});
