import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Command } from "commander";
import { z } from "zod";
import { CommandError, ConcurrentUpdateError } from "@pulumi/pulumi/automation";
import { createContext, UsageError } from "../../runner/context";
import { engineFailure } from "../../runner/engine-errors";
import { addOptions, flagOf, option, parseOptions } from "../../runner/options";

/**
 * The runner's context and options: every default in one place, every value checked, and an error
 * that names where the bad value came from — the flag, the variable, or the default.
 */
describe("the runner's context", () => {
  it("takes each setting from its variable, else its default, and remembers which", () => {
    const context = createContext({ WARMSTACK_STATE_DIR: "/srv/ws", WARMSTACK_PROXY_URL: "http://127.0.0.1:9000" }, () => undefined);
    assert.equal(context.settings.stateDir, "/srv/ws");
    assert.equal(context.settingSources.stateDir, "WARMSTACK_STATE_DIR");
    assert.equal(context.settings.backendUrl, "file:///srv/ws/pulumi");
    assert.equal(context.settingSources.backendUrl, "default");
    assert.deepEqual(context.defaults.abraDir, { value: "/srv/ws/abra", from: "default" });
    assert.deepEqual(context.defaults.proxyUrl, { value: "http://127.0.0.1:9000", from: "WARMSTACK_PROXY_URL" });
    assert.equal(context.defaults.keycloakDomain, undefined);
  });

  it("refuses bad variables, naming each", () => {
    assert.throws(
      () =>
        createContext(
          { WARMSTACK_STATE_DIR: "relative", WARMSTACK_PROXY_URL: "http://10.0.0.1", WARMSTACK_BASE_DOMAIN: "localhost", WARMSTACK_NODE_DOCKER_HOSTS: "node-2=/run/docker.sock" },
          () => undefined,
        ),
      (error: Error) =>
        error instanceof UsageError &&
        /WARMSTACK_NODE_DOCKER_HOSTS: the endpoint of node node-2 must be unix:\/\/\/path/.test(error.message) &&
        /WARMSTACK_STATE_DIR: must be an absolute path/.test(error.message) &&
        /WARMSTACK_PROXY_URL: must be an http URL on loopback/.test(error.message) &&
        /WARMSTACK_BASE_DOMAIN: /.test(error.message),
    );
  });
});

describe("options declared once", () => {
  const specs = {
    abraDir: option({ schema: z.string().startsWith("/", "must be absolute"), argument: "<dir>", description: "d", fallback: (context) => context.defaults.abraDir }),
    leaseTimeout: option({ schema: z.coerce.number().int().min(0), argument: "<seconds>", description: "d", fallback: () => "600" }),
    json: option({ schema: z.boolean().default(false), description: "d" }),
  };
  const context = (env: NodeJS.ProcessEnv) => createContext({ WARMSTACK_STATE_DIR: "/srv/ws", ...env }, () => undefined);

  it("gives commander the flags derived from the names", () => {
    const command = addOptions(new Command("x"), specs);
    assert.deepEqual(command.options.map((declared) => declared.flags), ["--abra-dir <dir>", "--lease-timeout <seconds>", "--json"]);
    assert.equal(flagOf("keepResultsDays"), "--keep-results-days");
  });

  it("parses flags, falls back to the context's defaults, and types the values", () => {
    assert.deepEqual(parseOptions(specs, {}, context({})), { abraDir: "/srv/ws/abra", leaseTimeout: 600, json: false });
    assert.deepEqual(parseOptions(specs, { abraDir: "/a", leaseTimeout: "5", json: true }, context({})), { abraDir: "/a", leaseTimeout: 5, json: true });
  });

  it("names the flag when the flag was wrong, and the variable when the variable was", () => {
    assert.throws(() => parseOptions(specs, { abraDir: "rel", leaseTimeout: "-1" }, context({})), /^.*--abra-dir: must be absolute; --lease-timeout: /);
    assert.throws(() => createContext({ WARMSTACK_ABRA_DIR: "rel" }, () => undefined), /WARMSTACK_ABRA_DIR: must be an absolute path/);
  });
});

describe("engine errors, classified once", () => {
  // The engine's own result type, which its declarations keep internal.
  const { CommandResult } = require("@pulumi/pulumi/automation/cmd") as { CommandResult: new (stdout: string, stderr: string, code: number) => unknown };
  const result = (stderr: string) => new CommandResult("", stderr, 255) as never;

  it("a locked stack is 'locked', with the lock's own lines as the reason", () => {
    const locked = new ConcurrentUpdateError(
      result("error: the stack is currently locked by 1 lock(s). Either wait for the other process(es) to end or delete the lock file with `pulumi cancel`.\n  file:///s/.pulumi/locks/organization/warmstack/warm/x.json: created by root@host (pid 4242) at 2026-12-01T10:00:00Z\n"),
    );
    const failure = engineFailure(locked);
    assert.equal(failure.kind, "locked");
    assert.match(failure.reason, /currently locked .*pid 4242/);
  });

  it("any other failure is 'failed', with the engine's own diagnostic rather than its generic one", () => {
    const failed = new CommandError(result("error: update failed\n    error: canonical custom-html: 1.5.1+1.0 did not become the known-good\n"));
    assert.deepEqual(engineFailure(failed), { kind: "failed", reason: "canonical custom-html: 1.5.1+1.0 did not become the known-good" });
    assert.deepEqual(engineFailure(new Error("\nplain words\nmore")), { kind: "failed", reason: "plain words" });
    assert.deepEqual(engineFailure(new CommandError(result("no Pulumi.yaml project file found\n"))), { kind: "failed", reason: "no Pulumi.yaml project file found" });
  });
});
