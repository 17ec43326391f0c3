import { describe, it } from "node:test";
import assert from "node:assert/strict";
import * as path from "node:path";
import { execa } from "execa";

const CLI = path.resolve(__dirname, "..", "..", "runner", "cli.js");
const run = (args: string[]) => execa("node", [CLI, ...args], { reject: false, env: { WARMSTACK_STATE_DIR: "/nonexistent/warmstack-cli-test" } });

describe("the warmstack CLI's surface", () => {
  it("prints its version and its commands", async () => {
    const { version } = require("../../../package.json") as { version: string };
    const printed = await run(["--version"]);
    assert.equal(printed.exitCode, 0);
    assert.equal(printed.stdout.trim(), version);
    const help = await run(["--help"]);
    assert.equal(help.exitCode, 0);
    for (const command of ["up", "preview", "promote", "status", "reap"]) assert.match(help.stdout, new RegExp(`^  ${command}\\b`, "m"));
  });

  it("refuses an unknown command or option with a non-zero exit and says which", async () => {
    const unknown = await run(["deploy-everything"]);
    assert.notEqual(unknown.exitCode, 0);
    assert.match(unknown.stderr, /unknown command 'deploy-everything'/);
    const option = await run(["up", "--colour"]);
    assert.notEqual(option.exitCode, 0);
    assert.match(option.stderr, /unknown option '--colour'/);
  });
});
