import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { ConfigError, namespacedConfig, parseConfig, parseWarmRetry, runConfigSchema, warmConfigSchema } from "../../infra/config";

const validWarm = {
  baseDomain: "warm.test",
  abraDir: "/var/lib/warmstack/abra",
  proxyUrl: "http://127.0.0.1:47080",
  alertDir: "/var/lib/warmstack/alerts",
};

describe("stack config", () => {
  it("takes only the warmstack namespace and decodes JSON values as Pulumi stores them", () => {
    assert.deepEqual(
      namespacedConfig({
        "warmstack:baseDomain": "warm.test",
        "warmstack:dnsrrEndpoints": "false",
        "warmstack:apps": '{"keycloak":{"recipe":"keycloak"}}',
        "aws:region": "eu-west-1",
      }),
      { baseDomain: "warm.test", dnsrrEndpoints: false, apps: { keycloak: { recipe: "keycloak" } } },
    );
  });

  it("fills the documented defaults", () => {
    const config = parseConfig(warmConfigSchema, validWarm, "warm stack");
    assert.equal(config.server, "default");
    assert.equal(config.deployer, "stack");
    assert.equal(config.dnsrrEndpoints, true);
    assert.equal(config.snapshotStore, "warmstack_snapshots");
    assert.deepEqual(config.apps, {});
  });

  it("validates the warm apps and names nested fields", () => {
    const keycloak = { recipe: "keycloak", kind: "stateful", health: { path: "/realms/master" } };
    const config = parseConfig(warmConfigSchema, { ...validWarm, apps: { keycloak } }, "warm stack");
    assert.equal(config.apps.keycloak?.deployTimeoutSeconds, 300);
    assert.throws(
      () => parseConfig(warmConfigSchema, { ...validWarm, apps: { gitea: keycloak } }, "warm stack"),
      /warmstack:apps\.gitea: unknown key/,
    );
    assert.throws(
      () => parseConfig(warmConfigSchema, { ...validWarm, apps: { keycloak: { ...keycloak, kind: "stateless-ish" } } }, "warm stack"),
      /warmstack:apps\.keycloak\.kind: /,
    );
    assert.throws(
      () => parseConfig(warmConfigSchema, { ...validWarm, apps: { keycloak: { ...keycloak, health: { path: "realms" } } } }, "warm stack"),
      /warmstack:apps\.keycloak\.health\.path: must be an absolute URL path/,
    );
    assert.throws(
      () => parseConfig(warmConfigSchema, { ...validWarm, alertWebhook: "ftp://hooks.example/x" }, "warm stack"),
      /warmstack:alertWebhook: must be an http\(s\) URL/,
    );
  });

  it("names every bad field by its full config key", () => {
    assert.throws(
      () => parseConfig(warmConfigSchema, { ...validWarm, baseDomain: "Warm_Test", deployer: "helm", extra: 1 }, "warm stack"),
      (error: unknown) =>
        error instanceof ConfigError &&
        /warmstack:baseDomain: /.test(error.message) &&
        /warmstack:deployer: /.test(error.message) &&
        /warmstack:extra: unknown key/.test(error.message),
    );
    assert.throws(() => parseConfig(warmConfigSchema, { ...validWarm, proxyUrl: "http://192.168.1.5:80" }, "warm stack"), /warmstack:proxyUrl: must be an http URL on loopback/);
    assert.throws(() => parseConfig(warmConfigSchema, { baseDomain: "warm.test" }, "warm stack"), /warmstack:abraDir: .*\n.*warmstack:proxyUrl/s);
  });

  it("validates run-stack refs, PR numbers and modes", () => {
    const base = {
      recipe: "custom-html",
      runId: "a1b2c3",
      baseDomain: "warm.test",
      abraDir: "/tmp/abra",
      proxyUrl: "http://127.0.0.1:1",
      stateDir: "/tmp/state",
    };
    assert.equal(parseConfig(runConfigSchema, { ...base, pr: "42" }, "run").pr, 42);
    const allDigits = namespacedConfig({ "warmstack:runId": "752380", "warmstack:pr": "7" });
    assert.equal(parseConfig(runConfigSchema, { ...base, ...allDigits }, "run").runId, "752380", "an all-digit run id stays a name");
    assert.equal(parseConfig(runConfigSchema, base, "run").mode, "cold");
    assert.throws(() => parseConfig(runConfigSchema, { ...base, sso: "warm-keycloak" }, "run"), /warmstack:keycloakDomain: is required when warmstack:sso is warm-keycloak/);
    for (const [field, value] of [
      ["ref", "main"],
      ["ref", "deadbeef; rm -rf /"],
      ["pr", "-1"],
      ["pr", "4.5"],
      ["mode", "fast"],
      ["runId", "A1B2C3"],
      ["sso", "true"],
      ["recipe", "../etc"],
    ] as const) {
      assert.throws(() => parseConfig(runConfigSchema, { ...base, [field]: value }, "run"), new RegExp(`warmstack:${field}: `), `${field}=${value}`);
    }
  });
});

describe("the warm apps to retry", () => {
  it("takes repeated and comma-separated names, ignoring blanks", () => {
    assert.deepEqual(parseWarmRetry(["keycloak,traefik", " traefik "], "--retry"), ["keycloak", "traefik", "traefik"]);
    assert.deepEqual(parseWarmRetry([""], "WARMSTACK_RETRY"), []);
  });

  it("refuses a name that is not a warm app, naming where it came from and the name", () => {
    assert.throws(() => parseWarmRetry(["keycloak", "nope"], "--retry"), (error: Error) => {
      assert.ok(error instanceof ConfigError);
      assert.equal(error.message, '--retry: "nope" is not a warm app (one of keycloak, traefik)');
      return true;
    });
    assert.throws(() => parseWarmRetry(["Keycloak;rm"], "WARMSTACK_RETRY"), /^ConfigError: WARMSTACK_RETRY: "Keycloak;rm" is not a warm app/);
  });
});
