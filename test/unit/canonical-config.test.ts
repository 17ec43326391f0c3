import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { ConfigError, parseConfig, warmConfigSchema } from "../../infra/config";

const validWarm = {
  baseDomain: "warm.test",
  abraDir: "/var/lib/warmstack/abra",
  proxyUrl: "http://127.0.0.1:47080",
  alertDir: "/var/lib/warmstack/alerts",
  stateDir: "/var/lib/warmstack",
};

const customHtml = { knownGood: "1.0.0+1.0", health: { path: "/health" } };

function parseCanonicals(canonicals: unknown) {
  return parseConfig(warmConfigSchema, { ...validWarm, canonicals }, "warm stack").canonicals;
}

describe("warm stack config: canonicals", () => {
  it("enrols nothing by default and fills the deploy timeout", () => {
    assert.deepEqual(parseConfig(warmConfigSchema, validWarm, "warm stack").canonicals, {});
    assert.deepEqual(parseCanonicals({ "custom-html": customHtml }), {
      "custom-html": { knownGood: "1.0.0+1.0", health: { path: "/health" }, deployTimeoutSeconds: 300 },
    });
  });

  it("needs the state dir while canonicals are enrolled, and waits 30 min for a quick run by default", () => {
    const { stateDir: _stateDir, ...withoutStateDir } = validWarm;
    assert.deepEqual(parseConfig(warmConfigSchema, withoutStateDir, "warm stack").canonicals, {}, "not needed without canonicals");
    assert.throws(
      () => parseConfig(warmConfigSchema, { ...withoutStateDir, canonicals: { "custom-html": customHtml } }, "warm stack"),
      /warmstack:stateDir: is required while canonicals are enrolled: quick runs lease them under <stateDir>\/leases/,
    );
    assert.equal(parseConfig(warmConfigSchema, validWarm, "warm stack").leaseWaitSeconds, 1800);
    assert.throws(() => parseConfig(warmConfigSchema, { ...validWarm, leaseWaitSeconds: -1 }, "warm stack"), /warmstack:leaseWaitSeconds: /);
  });

  it("names a bad recipe key by its full config key, with the naming rule", () => {
    for (const recipe of ["Custom_HTML", "../etc", "-x", "a".repeat(33)]) {
      assert.throws(
        () => parseCanonicals({ [recipe]: customHtml }),
        (error: unknown) =>
          error instanceof ConfigError &&
          error.message.includes(`warmstack:canonicals.${recipe}: is not a valid recipe name`),
        recipe,
      );
    }
  });

  it("refuses a knownGood that is not a recipe version, naming the field", () => {
    for (const knownGood of ["latest", "1.0.0", "1.0+1.0", "v1.0.0+1.0", ""]) {
      assert.throws(
        () => parseCanonicals({ "custom-html": { ...customHtml, knownGood } }),
        /warmstack:canonicals\.custom-html\.knownGood: must be a recipe version X\.Y\.Z\+UPSTREAM/,
        knownGood,
      );
    }
  });

  it("refuses unknown keys, a missing health spec and timeouts out of bounds", () => {
    assert.throws(() => parseCanonicals({ "custom-html": { ...customHtml, purge: true } }), /warmstack:canonicals\.custom-html\.purge: unknown key/);
    assert.throws(() => parseCanonicals({ "custom-html": { knownGood: "1.0.0+1.0" } }), /warmstack:canonicals\.custom-html\.health: /);
    assert.throws(
      () => parseCanonicals({ "custom-html": { ...customHtml, health: { path: "health" } } }),
      /warmstack:canonicals\.custom-html\.health\.path: must be an absolute URL path/,
    );
    for (const deployTimeoutSeconds of [5, 3601, 1.5]) {
      assert.throws(
        () => parseCanonicals({ "custom-html": { ...customHtml, deployTimeoutSeconds } }),
        /warmstack:canonicals\.custom-html\.deployTimeoutSeconds: /,
        String(deployTimeoutSeconds),
      );
    }
    assert.throws(() => parseCanonicals(["custom-html"]), /warmstack:canonicals: /);
  });
});
