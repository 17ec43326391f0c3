import { before, beforeEach, describe, it } from "node:test";
import assert from "node:assert/strict";
import * as pulumi from "@pulumi/pulumi";

/**
 * The run program's graph against Pulumi's mocks: the runner's config alone decides which resources a
 * run stack registers (the program looks at nothing else), so each SSO path and lane is checked here.
 */
const STACK = "run-sso-app-a1b2c3";
const registered: { type: string; name: string; inputs: Record<string, unknown> }[] = [];
const warnings: string[] = [];

before(() => {
  pulumi.runtime.setMocks(
    {
      newResource: (args) => {
        registered.push({ type: args.type, name: args.name, inputs: args.inputs as Record<string, unknown> });
        return { id: `${args.name}-id`, state: { ...args.inputs, appSecrets: { admin_password: "generated" } } };
      },
      call: (args) => args.inputs,
    },
    "warmstack",
    STACK,
    true,
  );
  const log = pulumi.log.warn;
  pulumi.log.warn = async (message: string, ...rest) => {
    warnings.push(message);
    return log(message, ...rest);
  };
});

beforeEach(() => {
  registered.length = 0;
  warnings.length = 0;
});

const settings = { deployer: "stack", abraDir: "/srv/abra", server: "default", proxyUrl: "http://127.0.0.1:47080", dnsrrEndpoints: true };
const canonical = {
  domain: "warm-sso-app.warm.test",
  knownGood: "1.0.0+1.0",
  snapshotStore: "warmstack_snapshots",
  helperImage: "warmstack/base:bookworm",
  deployerSettings: settings,
  health: { path: "/health" },
  deployTimeoutMs: 300_000,
};

function config(values: Record<string, string>): void {
  const base: Record<string, string> = {
    recipe: "sso-app",
    runId: "a1b2c3",
    baseDomain: "warm.test",
    abraDir: "/srv/runs/abra",
    proxyUrl: "http://127.0.0.1:47080",
    stateDir: "/srv/state",
    app: JSON.stringify({ health: { path: "/health" }, ready: { path: "/config" }, deployTimeoutSeconds: 300 }),
  };
  pulumi.runtime.setAllConfig(Object.fromEntries(Object.entries({ ...base, ...values }).map(([key, value]) => [`warmstack:${key}`, value])));
}

async function graph(values: Record<string, string>) {
  config(values);
  const { runProgram } = await import("../../stacks/run");
  const outputs = await runProgram();
  // Resources register asynchronously once their inputs resolve.
  await new Promise((resolve) => setTimeout(resolve, 50));
  return { outputs, resources: registered.map((resource) => [resource.type.split(":").at(-1), resource.name]) };
}

describe("the run program's graph (Pulumi mocks)", () => {
  it("a realm on the shared Keycloak and the app in the cold lane, on the run's own domain", async () => {
    const { outputs, resources } = await graph({ sso: "warm-keycloak", keycloakDomain: "keycloak.warm.test" });
    assert.deepEqual(resources, [["RunRealm", "realm"], ["RunApp", "app"]]);
    const realm = registered.find((resource) => resource.name === "realm")!.inputs;
    assert.equal(realm.keycloakDomain, "keycloak.warm.test");
    assert.equal(realm.runId, "a1b2c3");
    const app = registered.find((resource) => resource.name === "app")!.inputs;
    assert.equal(app.domain, "sso-a1b2c3.warm.test");
    assert.equal(app.quick, undefined);
    assert.equal(outputs.sso, "warm-keycloak");
    assert.deepEqual(warnings, []);
  });

  it("the cold fallback: a Keycloak of the run's own before its realm, and the reason warned about", async () => {
    const { outputs, resources } = await graph({ sso: "cold-keycloak", ssoFallback: "the shared Keycloak answers with HTTP 502" });
    assert.deepEqual(resources, [["RunApp", "cold-keycloak"], ["RunRealm", "realm"], ["RunApp", "app"]]);
    assert.equal(registered.find((resource) => resource.name === "realm")!.inputs.keycloakDomain, "keyc-a1b2c3.warm.test");
    assert.equal(outputs.ssoFallback, "the shared Keycloak answers with HTTP 502");
    assert.match(warnings.join("\n"), /cold fallback: the shared Keycloak answers with HTTP 502/);
  });

  it("a recipe without SSO gets no realm and no Keycloak", async () => {
    const { resources } = await graph({ recipe: "sso-app", sso: "none" });
    assert.deepEqual(resources, [["RunApp", "app"]]);
  });

  it("the quick lane borrows the canonical; without one it says so and runs cold", async () => {
    await graph({ sso: "none", mode: "quick", canonical: JSON.stringify(canonical) });
    assert.deepEqual((registered.find((resource) => resource.name === "app")!.inputs.quick as { canonical: unknown }).canonical, canonical);
    registered.length = 0;
    const { outputs } = await graph({ sso: "none", mode: "quick" });
    assert.equal(registered.find((resource) => resource.name === "app")!.inputs.quick, undefined);
    assert.match(String(outputs.laneFallback), /no canonical of sso-app in the warm stack/);
    assert.match(warnings.join("\n"), /quick lane unavailable/);
  });

  it("refuses a config that does not match the stack's name before registering anything", async () => {
    config({ runId: "ffffff" });
    const { runProgram } = await import("../../stacks/run");
    await assert.rejects(runProgram(), /its name must be run-sso-app-ffffff/);
    assert.deepEqual(registered, []);
  });
});
