import * as os from "node:os";
import { docker } from "../../infra/adapters/swarm";
import { bed } from "./bed";
import { isFixtureStack } from "./warm-stack";

/**
 * Run by test/run-tests.js before the integration suites: a swarm that was running when the machine
 * stopped starts every service again with dockerd, so a Keycloak a killed test left behind boots
 * beside the first suites' own Keycloaks. A CI machine did so and timed out the first three boots of
 * the run at HTTP 502. So the fixture stacks nobody owns are removed (no test runs yet), and the
 * suites start once the machine has settled.
 */
const SETTLE_DEADLINE_MS = 5 * 60_000;
const SETTLE_POLL_MS = 5000;

async function removeLeftoverFixtureStacks(): Promise<string[]> {
  const stacks = (await docker(["stack", "ls", "--format", "{{.Name}}"])).split("\n").filter(Boolean);
  const leftovers = stacks.filter((stack) => isFixtureStack(stack, bed().domain));
  for (const stack of leftovers) await docker(["stack", "rm", stack]);
  return leftovers;
}

async function busiestContainers(): Promise<string> {
  const stats = await docker(["stats", "--no-stream", "--format", "{{.CPUPerc}} {{.Name}}"], { timeoutMs: 60_000 }).catch((error: unknown) => String(error));
  return stats.split("\n").filter(Boolean).sort((a, b) => parseFloat(b) - parseFloat(a)).slice(0, 5).join(", ") || "no containers";
}

/**
 * Until the one-minute load is under one per core: a boot slot then means a boot gets its share. A
 * machine that stays busy past the deadline runs the suites anyway, saying what keeps it busy: every
 * wait in the suites has its own deadline, and a busy neighbour is no failure of this project.
 */
async function settle(): Promise<void> {
  const threshold = os.cpus().length;
  const deadline = Date.now() + SETTLE_DEADLINE_MS;
  let lastSaid = 0;
  for (;;) {
    const load = os.loadavg()[0]!;
    if (load < threshold) {
      console.log(`[quiet-swarm] load ${load.toFixed(2)} is under ${threshold}: starting the suites`);
      return;
    }
    // `docker stats` takes seconds: read only when it is said.
    const state = async () => `load ${load.toFixed(2)} (settled under ${threshold}); busiest containers: ${await busiestContainers()}`;
    if (Date.now() >= deadline) {
      console.log(`[quiet-swarm] starting the suites unsettled after ${SETTLE_DEADLINE_MS / 1000}s; last state: ${await state()}`);
      return;
    }
    if (Date.now() - lastSaid >= 60_000) {
      console.log(`[quiet-swarm] waiting: ${await state()}`);
      lastSaid = Date.now();
    }
    await new Promise((resolve) => setTimeout(resolve, SETTLE_POLL_MS));
  }
}

async function main(): Promise<void> {
  const removed = await removeLeftoverFixtureStacks();
  console.log(`[quiet-swarm] ${removed.length === 0 ? "no fixture stacks left by earlier runs" : `removed fixture stacks left by earlier runs: ${removed.join(" ")}`}`);
  console.log(`[quiet-swarm] stacks in the swarm: ${(await docker(["stack", "ls", "--format", "{{.Name}} ({{.Services}})"])).split("\n").filter(Boolean).join(", ") || "none"}`);
  await settle();
}

main().catch((error: unknown) => {
  console.error(`[quiet-swarm] ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
