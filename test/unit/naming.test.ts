import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  NameError,
  assertDomain,
  assertRunId,
  assertRecipeName,
  assertRunRealmName,
  assertServerName,
  canonicalDomain,
  domainSchema,
  runIdSchema,
  parseRunStackName,
  recipeNameSchema,
  runDomain,
  runRealmName,
  runStackName,
  runStackNameSchema,
  secretName,
  serverNameSchema,
  stackNameForDomain,
  volumeName,
} from "../../infra/naming";

const recipeArb = fc.stringMatching(/^[a-z][a-z0-9]{0,8}(-[a-z0-9]{1,6}){0,3}$/).filter((r) => r.length <= 32);
const hexArb = fc.stringMatching(/^[0-9a-f]{6}$/);
const labelArb = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?$/);
const baseArb = fc.array(labelArb, { minLength: 2, maxLength: 4 }).map((ls) => ls.join("."));

function refuses(fn: () => unknown, field: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof NameError, `expected a NameError, got ${String(err)}`);
    assert.equal(err.field, field);
    return true;
  });
}

function table(
  name: string,
  assertFn: (v: unknown) => string,
  schema: { safeParse(v: unknown): { success: boolean } },
  good: string[],
  bad: unknown[],
): void {
  describe(name, () => {
    for (const g of good) {
      it(`accepts ${JSON.stringify(g)}`, () => {
        assert.equal(assertFn(g), g);
        assert.equal(schema.safeParse(g).success, true);
      });
    }
    for (const b of bad) {
      it(`refuses ${JSON.stringify(b)}`, () => {
        assert.throws(() => assertFn(b), NameError);
        assert.equal(schema.safeParse(b).success, false);
      });
    }
  });
}

table(
  "recipe names",
  (v) => assertRecipeName(v),
  recipeNameSchema,
  ["a", "keycloak", "lasuite-docs", "n8n", "a1-b2-c3", "x".repeat(32)],
  ["", "Foo_bar", "Keycloak", "1app", "-app", "app-", "a--b", "a_b", "a.b", "a b", "../etc", "x".repeat(33), "ä", 42, null],
);

table(
  "domains",
  (v) => assertDomain(v),
  domainSchema,
  ["example.org", "a.b", "warm-keycloak.ci.example.org", "1.2", `${"a".repeat(63)}.org`, "xn--bcher-kva.example"],
  [
    "localhost",
    "example.org.",
    ".example.org",
    "Example.org",
    "a..b",
    "-a.org",
    "a-.org",
    "a_b.org",
    `${"a".repeat(64)}.org`,
    `${"a.".repeat(126)}ab`,
    "a.b/c",
    "a.b c",
    "",
    undefined,
  ],
);

table(
  "server names",
  (v) => assertServerName(v),
  serverNameSchema,
  ["default", "local", "server1", "swarm.example.org", "a"],
  ["", "Default", "-x", "x-", "x.", "../x", "a/b", "a b", 7],
);

table("run id", (v) => assertRunId(v), runIdSchema, ["abc123", "000000", "ffffff"], ["ABC123", "abc12", "abc1234", "ghijkl", " abc12", ""]);

describe("run stacks", () => {
  it("builds and parses run-<recipe>-<runId>", () => {
    assert.equal(runStackName("keycloak", "abc123"), "run-keycloak-abc123");
    assert.deepEqual(parseRunStackName("run-lasuite-docs-0a1b2c"), { recipe: "lasuite-docs", runId: "0a1b2c" });
    // A recipe part that itself looks like a run id: the run id is still the last six characters.
    assert.deepEqual(parseRunStackName("run-foo-abc123-def456"), { recipe: "foo-abc123", runId: "def456" });
    assert.equal(parseRunStackName("warm"), null);
    assert.equal(parseRunStackName("run-keycloak-abc12"), null);
  });

  for (const bad of ["warm", "run-keycloak", "run-keycloak-ABC123", "run--abc123", "run-Key-abc123", "run-keycloak-abc1234", `run-${"a".repeat(33)}-abc123`]) {
    it(`does not take ${JSON.stringify(bad)} for a run stack`, () => {
      assert.equal(parseRunStackName(bad), null);
      assert.equal(runStackNameSchema.safeParse(bad).success, false);
    });
  }

  it("refuses bad parts", () => {
    refuses(() => runStackName("Keycloak", "abc123"), "recipe");
    refuses(() => runStackName("keycloak", "ABC123"), "runId");
  });

  it("round-trips for every valid recipe and run id", () => {
    fc.assert(
      fc.property(recipeArb, hexArb, (recipe, hex) => {
        const name = runStackName(recipe, hex);
        assert.deepEqual(parseRunStackName(name), { recipe, runId: hex });
        assert.equal(runStackNameSchema.safeParse(name).success, true);
      }),
    );
  });
});

describe("domains and stacks for apps", () => {
  it("derives Co-op Cloud stack names", () => {
    assert.equal(stackNameForDomain("warm-keycloak.ci.example.org"), "warm-keycloak_ci_example_org");
    refuses(() => stackNameForDomain("Bad.org"), "domain");
  });

  it("refuses a domain whose stack name leaves no room for secret names", () => {
    const domain = `${"a".repeat(40)}.example.org`;
    assert.equal(domain.length, 52);
    assert.throws(() => stackNameForDomain(domain), /over 50/);
    assert.equal(stackNameForDomain(`${"a".repeat(38)}.example.org`).length, 50);
  });

  it("builds short per-run domains", () => {
    assert.equal(runDomain("keycloak", "abc123", "ci.example.org"), "keyc-abc123.ci.example.org");
    assert.equal(runDomain("n8n", "abc123", "ci.example.org"), "n8n-abc123.ci.example.org");
    assert.equal(runDomain("ab-cd", "abc123", "example.org"), "ab-c-abc123.example.org");
    assert.equal(runDomain("abc-d", "000000", "x.y"), "abc-000000.x.y");
    refuses(() => runDomain("keycloak", "abc123", "localhost"), "baseDomain");
    refuses(() => runDomain("keycloak", "xyz", "example.org"), "runId");
  });

  it("run domains are valid domains with a first label of at most 11 chars", () => {
    fc.assert(
      fc.property(recipeArb, hexArb, baseArb, (recipe, hex, base) => {
        const d = runDomain(recipe, hex, base);
        assert.equal(assertDomain(d), d);
        const first = d.split(".")[0];
        assert.ok(first.length <= 11, first);
        assert.ok(first.endsWith(`-${hex}`));
        assert.ok(!first.includes("--"), first);
        assert.equal(d.slice(first.length + 1), base);
      }),
    );
  });

  it("builds canonical domains", () => {
    assert.equal(canonicalDomain("keycloak", "ci.example.org"), "warm-keycloak.ci.example.org");
    refuses(() => canonicalDomain("Key", "ci.example.org"), "recipe");
    fc.assert(
      fc.property(recipeArb, baseArb, (recipe, base) => {
        assert.equal(assertDomain(canonicalDomain(recipe, base)), `warm-${recipe}.${base}`);
      }),
    );
  });
});

describe("realms", () => {
  it("builds run realm names that pass the guard", () => {
    fc.assert(
      fc.property(recipeArb, hexArb, (recipe, hex) => {
        const realm = runRealmName(recipe, hex);
        assert.equal(realm, `${recipe}-${hex}`);
        assert.equal(assertRunRealmName(realm), realm);
      }),
    );
  });

  it("refuses master explicitly", () => {
    assert.throws(() => assertRunRealmName("master"), (err: unknown) => {
      assert.ok(err instanceof NameError);
      assert.equal(err.field, "realm");
      assert.match(err.message, /^realm: "master" is Keycloak's admin realm/);
      return true;
    });
  });

  for (const bad of ["Master", "master-abc123x", "keycloak", "keycloak-ABC123", "-abc123", "abc123", "../x-abc123", "", `${"a".repeat(33)}-abc123`, 5]) {
    it(`refuses realm ${JSON.stringify(bad)}`, () => refuses(() => assertRunRealmName(bad, "targetRealm"), "targetRealm"));
  }

  it("accepts a recipe literally called master only with a run id", () => {
    assert.equal(assertRunRealmName("master-abc123"), "master-abc123");
  });
});

describe("secret and volume names", () => {
  it("builds Co-op Cloud secret names", () => {
    assert.equal(secretName("keyc-abc123_ci_example_org", "admin_password", "v1"), "keyc-abc123_ci_example_org_admin_password_v1");
    refuses(() => secretName("s", "Admin", "v1"), "secret");
    refuses(() => secretName("s", "a", "1"), "secretVersion");
    refuses(() => secretName("s.x", "a", "v1"), "stack");
  });

  it("never returns a secret name over 64 chars", () => {
    const stackArb = fc.stringMatching(/^[a-z0-9]([a-z0-9_-]{0,48}[a-z0-9])?$/);
    const secretArb = fc.stringMatching(/^[a-z][a-z0-9_]{0,31}$/);
    const versionArb = fc.stringMatching(/^v[0-9]{1,5}$/);
    fc.assert(
      fc.property(stackArb, secretArb, versionArb, (stack, secret, version) => {
        const expected = `${stack}_${secret}_${version}`;
        if (expected.length <= 64) {
          assert.equal(secretName(stack, secret, version), expected);
        } else {
          assert.throws(() => secretName(stack, secret, version), /over Swarm's cap of 64/);
        }
      }),
    );
  });

  it("builds volume names", () => {
    assert.equal(volumeName("warm-keycloak_ci_example_org", "postgres_data"), "warm-keycloak_ci_example_org_postgres_data");
    refuses(() => volumeName("s", "../etc"), "volume");
    refuses(() => volumeName("s", "Data"), "volume");
    refuses(() => volumeName("s", "a".repeat(300)), "volume");
  });
});
