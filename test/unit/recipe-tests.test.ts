import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type { OutputMap } from "@pulumi/pulumi/automation";
import { RecipeTestRun, runRecipeTests } from "../../runner/recipe-tests";

const SECRET = "s3cr3t-client-secret-value";

function run(command: string[], overrides: Partial<RecipeTestRun> = {}): RecipeTestRun {
  const outputs: OutputMap = {
    lane: { value: "quick", secret: false },
    appDomain: { value: "warm-custom-html.warm.test", secret: false },
    issuer: { value: "http://kc.warm.test/realms/custom-html-abcdef", secret: false },
    clientSecret: { value: SECRET, secret: true },
  };
  return {
    test: { command: command as [string, ...string[]], timeoutSeconds: 30 },
    cwd: process.cwd(),
    stack: "run-custom-html-abcdef",
    recipe: "custom-html",
    proxyUrl: "http://127.0.0.1:47080",
    outputs,
    signal: new AbortController().signal,
    ...overrides,
  };
}

/** Real processes (bash): what the recipe's test command sees and what the results keep of it. */
describe("the recipe's test command", () => {
  it("gets the app, the lane and the realm, and none of the runner's own environment", async () => {
    process.env.WARMSTACK_KEYCLOAK_ADMIN_PASSWORD = "runner-only-admin-password";
    try {
      const tests = await runRecipeTests(run(["bash", "-c", 'echo "$WARMSTACK_APP_DOMAIN $WARMSTACK_LANE $OIDC_ISSUER admin=${WARMSTACK_KEYCLOAK_ADMIN_PASSWORD:-unset} mark=$WARMSTACK_RUN_STACK"']));
      assert.equal(tests.outcome, "passed");
      assert.equal(tests.outputTail.trim(), "warm-custom-html.warm.test quick http://kc.warm.test/realms/custom-html-abcdef admin=unset mark=run-custom-html-abcdef");
    } finally {
      delete process.env.WARMSTACK_KEYCLOAK_ADMIN_PASSWORD;
    }
  });

  it("replaces every secret output in what it keeps of the output", async () => {
    const tests = await runRecipeTests(run(["bash", "-c", 'echo "secret is $OIDC_CLIENT_SECRET"; echo "again:$OIDC_CLIENT_SECRET" >&2; exit 4']));
    assert.equal(tests.outcome, "failed");
    assert.equal(tests.exitCode, 4);
    assert.ok(!tests.outputTail.includes(SECRET), tests.outputTail);
    assert.match(tests.outputTail, /secret is \*\*\*/);
    assert.match(tests.outputTail, /again:\*\*\*/);
  });

  it("keeps only the last 40 lines", async () => {
    const tests = await runRecipeTests(run(["bash", "-c", "seq 1 100"]));
    assert.deepEqual(tests.outputTail.split("\n"), Array.from({ length: 40 }, (_, n) => String(n + 61)));
  });

  it("times out a command whose child keeps its output open, at the deadline and not when the child ends", async () => {
    const started = Date.now();
    const tests = await runRecipeTests(run(["bash", "-c", "sleep 120 & wait"], { test: { command: ["bash", "-c", "sleep 120 & wait"], timeoutSeconds: 1 } }));
    assert.equal(tests.outcome, "timed-out");
    assert.ok(Date.now() - started < 20_000, `took ${Date.now() - started} ms`);
  });

  it("ends the tests when the run is stopped", async () => {
    const stop = new AbortController();
    setTimeout(() => stop.abort(new Error("stopped by SIGTERM")), 500);
    const started = Date.now();
    const tests = await runRecipeTests(run(["bash", "-c", "sleep 120"], { signal: stop.signal }));
    assert.equal(tests.outcome, "failed");
    assert.ok(Date.now() - started < 20_000, `took ${Date.now() - started} ms`);
  });
});
