#!/usr/bin/env node
// Runs the compiled tests with Node's own test runner, so its pass/fail summary is the last thing
// printed. Integration suites use independent apps and stacks, so they run side by side; suites that
// restart what every other suite stands on (dockerd) run alone, afterwards (`*.exclusive.test.js`).
//   node test/run-tests.js               unit, then integration
//   node test/run-tests.js unit|integration
"use strict";
const { spawnSync } = require("node:child_process");
const { readdirSync } = require("node:fs");
const path = require("node:path");

const compiled = path.join(__dirname, "..", "dist", "test");
const kinds = process.argv[2] ? [process.argv[2]] : ["unit", "integration"];
for (const kind of kinds) {
  if (kind !== "unit" && kind !== "integration") {
    console.error(`run-tests: unknown suite "${kind}" (unit or integration)`);
    process.exit(2);
  }
}

// The longest suites start first, so they never wait for a free slot at the end of the run.
const SLOW_FIRST = [
  "warm-keycloak.test.js",
  "warm-heal.test.js",
  "keycloak-canary.test.js",
  "bench-smoke.test.js",
  "forge-bridge.test.js",
  "canonical.test.js",
  "run-command.test.js",
  "run-kills-sigkill.test.js",
  "run-kills-sigterm.test.js",
  "quick-lane.test.js",
  "warm-traefik.test.js",
];
const rank = (name) => (SLOW_FIRST.includes(name) ? SLOW_FIRST.indexOf(name) : SLOW_FIRST.length);
const files = kinds.flatMap((kind) =>
  readdirSync(path.join(compiled, kind))
    .filter((name) => name.endsWith(".test.js"))
    .sort((a, b) => rank(a) - rank(b) || a.localeCompare(b))
    .map((name) => path.join(compiled, kind, name)),
);
const exclusive = (file) => file.endsWith(".exclusive.test.js");
const concurrency = process.env.WARMSTACK_TEST_CONCURRENCY ?? "4";
const batches = [
  { files: files.filter((file) => !exclusive(file)), concurrency },
  { files: files.filter(exclusive), concurrency: "1" },
].filter((batch) => batch.files.length > 0);
// Leftover fixture stacks go and the machine settles before the first Keycloak boots (support/quiet-swarm.ts).
if (kinds.includes("integration")) {
  const quiet = spawnSync(process.execPath, [path.join(compiled, "support", "quiet-swarm.js")], { stdio: "inherit" });
  if (quiet.status !== 0) process.exit(quiet.status ?? 1);
}
let status = 0;
for (const batch of batches) {
  const result = spawnSync(process.execPath, ["--test", `--test-concurrency=${batch.concurrency}`, "--test-reporter=spec", ...batch.files], { stdio: "inherit" });
  status ||= result.status ?? 1;
}
process.exit(status);
