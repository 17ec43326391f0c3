import { before, describe, it } from "node:test";
import assert from "node:assert/strict";
import * as pulumi from "@pulumi/pulumi";

/**
 * The stack programs against Pulumi's mocks: which program a stack name selects, and that bad
 * config fails before any resource is registered.
 */
const registered: string[] = [];

before(() => {
  pulumi.runtime.setMocks(
    {
      newResource: (args) => {
        registered.push(args.type);
        return { id: `${args.name}-id`, state: args.inputs };
      },
      call: (args) => args.inputs,
    },
    "warmstack",
    "warm",
    true,
  );
});

function setConfig(values: Record<string, string>): void {
  pulumi.runtime.setAllConfig(values);
}

describe("stack programs (Pulumi mocks)", () => {
  it("selects the program by stack name and refuses any other name", async () => {
    const { programFor } = await import("../../stacks/programs");
    const { UnknownStackError } = await import("../../stacks/stack-names");
    for (const name of ["dev", "warm2", "run-custom-html", "run-Custom-a1b2c3", "run--a1b2c3"]) {
      assert.throws(() => programFor(name), UnknownStackError, name);
    }
  });

  it("gives the operator's errors to the engine without a stack trace, in the runner's inline programs too", async () => {
    const { programFor } = await import("../../stacks/programs");
    setConfig({ "warmstack:baseDomain": "not a domain" });
    await assert.rejects(programFor("warm")(), (error: Error) => error instanceof pulumi.RunError && /warmstack:baseDomain/.test(error.message) && error.stack === error.message);
    await assert.rejects(programFor("run-custom-html-a1b2c3")(), (error: Error) => error instanceof pulumi.RunError && /run stack .* config is invalid/.test(error.message));
  });

  it("the warm program validates its config before registering anything", async () => {
    const { warmProgram } = await import("../../stacks/warm");
    const valid = {
      "warmstack:baseDomain": "warm.test",
      "warmstack:abraDir": "/srv/abra",
      "warmstack:proxyUrl": "http://127.0.0.1:47080",
      "warmstack:alertDir": "/srv/alerts",
    };
    setConfig(valid);
    assert.deepEqual(await warmProgram(), { plan: [], holds: [], deployed: {}, canonicals: {} });

    registered.length = 0;
    setConfig({ ...valid, "warmstack:baseDomain": "not a domain" });
    await assert.rejects(warmProgram(), /warmstack:baseDomain/);
    assert.deepEqual(registered, [], "nothing registered on bad config");
  });
});
