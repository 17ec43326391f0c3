#!/usr/bin/env node
import { Command, CommanderError } from "commander";
import { registerNightly } from "./commands/nightly";
import { registerPreview } from "./commands/preview";
import { registerPromote } from "./commands/promote";
import { registerReap } from "./commands/reap";
import { registerRun } from "./commands/run";
import { registerServe } from "./commands/serve";
import { registerStatus } from "./commands/status";
import { registerTrigger } from "./commands/trigger";
import { registerUp } from "./commands/up";
import { createContext, RunnerContext } from "./context";

// The package version, read at run time so the compiled CLI needs no build-time stamping.
const { version } = require("../../package.json") as { version: string };

function buildProgram(contextOf: () => RunnerContext): Command {
  const program = new Command("warmstack")
    .description("The warm layer of a CI for Co-op Cloud recipes")
    .version(version)
    .showHelpAfterError()
    // Without it the program's own --version would swallow `promote --version <version>`.
    .enablePositionalOptions()
    .exitOverride();
  for (const register of [registerUp, registerPreview, registerPromote, registerStatus, registerReap, registerRun, registerTrigger, registerNightly, registerServe]) {
    register(program, contextOf);
  }
  return program;
}

async function main(argv: string[]): Promise<number> {
  // Built on first use, once: --help and --version need none, and a bad variable is reported by the command.
  let context: RunnerContext | undefined;
  const contextOf = () => (context ??= createContext());
  try {
    await buildProgram(contextOf).parseAsync(argv);
    return 0;
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode;
    process.stderr.write(`warmstack: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
}

// A run whose reader went away (its CI job was killed) must still clean up: a write to a closed pipe
// would otherwise throw, and the engine's own handler, writing that error to stderr, throws again.
for (const stream of [process.stdout, process.stderr]) stream.on("error", () => undefined);

main(process.argv).then((code) => {
  // A command that printed its own failure has set the exit code already: keep it.
  process.exitCode = code || process.exitCode;
});
