#!/usr/bin/env node
import { Command, CommanderError } from "commander";
import { registerNightly } from "./commands/nightly";
import { registerPreview } from "./commands/preview";
import { registerPromote } from "./commands/promote";
import { registerReap } from "./commands/reap";
import { registerRun } from "./commands/run";
import { registerStatus } from "./commands/status";
import { registerTrigger } from "./commands/trigger";
import { registerUp } from "./commands/up";

// The package version, read at run time so the compiled CLI needs no build-time stamping.
const { version } = require("../../package.json") as { version: string };

function buildProgram(): Command {
  const program = new Command("warmstack")
    .description("The warm layer of a CI for Co-op Cloud recipes")
    .version(version)
    .showHelpAfterError()
    // Without it the program's own --version would swallow `promote --version <version>`.
    .enablePositionalOptions()
    .exitOverride();
  registerUp(program);
  registerPreview(program);
  registerPromote(program);
  registerStatus(program);
  registerReap(program);
  registerRun(program);
  registerTrigger(program);
  registerNightly(program);
  return program;
}

async function main(argv: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv);
    return 0;
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode;
    process.stderr.write(`warmstack: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
}

main(process.argv).then((code) => {
  // A command that printed its own failure has set the exit code already: keep it.
  process.exitCode = code || process.exitCode;
});
