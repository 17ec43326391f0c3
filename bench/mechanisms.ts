// Each mechanism against its floor, side by side in one run on the bed, alternating:
// - the snapshot helper's take and restore of a volume (a one-shot swarm service on the volume's node,
//   written aside, synced, read back, hashed, switched) against raw tar + sync + sha256sum of the same
//   data on the same disk, and raw delete + untar + sync;
// - the runner's start (`warmstack --version`) against a bare `node -e 0`.
//   npm run bench:mechanisms -- [--rounds N] [--sizes 100,1000] [--smoke] [--json FILE]
// --smoke runs each once at its smallest size (10 MB), so CI sees the benches keep working.
import { randomBytes } from "node:crypto";
import * as path from "node:path";
import { execa } from "execa";
import { deleteSnapshot, restoreSnapshot, takeSnapshot } from "../infra/adapters/snapshots";
import { docker, removeVolume } from "../infra/adapters/swarm";
import { bed } from "../test/support/bed";
import { HELPER_IMAGE, removeVolumeEventually } from "../test/support/canonical-stack";
import { REPO_ROOT } from "../test/support/pulumi-project";
import { booleanFlag, Comparison, numberFlag, report, stringFlag, timed } from "./support";

const TIMEOUT_MS = 1_800_000;

function sizesFlag(smoke: boolean): number[] {
  if (smoke) return [10];
  const text = stringFlag("--sizes") ?? "100,1000";
  const sizes = text.split(",").map(Number);
  if (sizes.some((size) => !Number.isInteger(size) || size < 1 || size > 10_000)) throw new Error("--sizes: whole numbers of MB from 1 to 10000, comma-separated");
  return sizes;
}

/** Runs a fixed script with the volume at /v and the store at /store, in a throwaway container. */
function inContainer(volume: string, store: string, script: string): Promise<string> {
  return docker(["run", "--rm", "-v", `${volume}:/v`, "-v", `${store}:/store`, HELPER_IMAGE, "bash", "-c", `set -euo pipefail\n${script}`], { timeoutMs: TIMEOUT_MS });
}

/** Eight large files of random data and a thousand small ones, `megabytes` in all. */
async function fill(volume: string, store: string, megabytes: number): Promise<void> {
  const each = Math.max(1, Math.floor(megabytes / 8));
  await inContainer(volume, store, `for i in 1 2 3 4 5 6 7 8; do head -c ${each}M /dev/urandom >/v/big-$i; done; mkdir /v/small; for i in $(seq 1000); do head -c 512 /dev/urandom >/v/small/$i; done`);
}

const RAW_TAKE = "tar --format=gnu --numeric-owner -C /v -cf /store/raw.tar . && sync && sha256sum /store/raw.tar >/dev/null";
const RAW_RESTORE = "find /v -mindepth 1 -delete && tar -C /v -xf /store/raw.tar && sync";

async function snapshots(megabytes: number, rounds: number): Promise<Comparison[]> {
  const id = randomBytes(3).toString("hex");
  const volume = `wsbench_data_${id}`;
  const store = `wsbench_store_${id}`;
  const app = `wsbench-${id}`;
  const take: Comparison = { what: `snapshot take, ${megabytes} MB`, samples: [], floorSamples: [], floor: "tar + sync + sha256sum", goal: 1.3 };
  const restore: Comparison = { what: `snapshot restore, ${megabytes} MB`, samples: [], floorSamples: [], floor: "delete + untar + sync", goal: 1.3 };
  try {
    await docker(["volume", "create", volume]);
    await docker(["volume", "create", store]);
    await fill(volume, store, megabytes);
    const options = { store, timeoutMs: TIMEOUT_MS };
    for (let round = 0; round < rounds; round += 1) {
      take.floorSamples.push(await timed(() => inContainer(volume, store, RAW_TAKE)));
      take.samples.push(await timed(() => takeSnapshot({ app, volumes: [volume], version: "1.0.0+1.0" }, options)));
      restore.floorSamples.push(await timed(() => inContainer(volume, store, RAW_RESTORE)));
      restore.samples.push(await timed(() => restoreSnapshot({ app, volumes: [volume] }, options)));
      console.error(`[bench] snapshots ${megabytes} MB: round ${round + 1}/${rounds} done`);
    }
  } finally {
    await deleteSnapshot(app, { store }).catch(() => undefined);
    await removeVolume(volume).catch(() => undefined);
    await removeVolumeEventually(store);
  }
  return [take, restore];
}

async function runnerStart(rounds: number): Promise<Comparison> {
  const start: Comparison = { what: "runner start (`warmstack --version`)", samples: [], floorSamples: [], floor: "`node -e 0`" };
  const cli = path.join(REPO_ROOT, "dist", "runner", "cli.js");
  for (let round = 0; round < Math.max(rounds, 5); round += 1) {
    start.floorSamples.push(await timed(() => execa(process.execPath, ["-e", "0"])));
    start.samples.push(await timed(() => execa(process.execPath, [cli, "--version"])));
  }
  return start;
}

async function main(): Promise<void> {
  const smoke = booleanFlag("--smoke");
  const rounds = smoke ? 1 : numberFlag("--rounds", 3, 20);
  bed();
  const comparisons: Comparison[] = [];
  for (const megabytes of sizesFlag(smoke)) comparisons.push(...(await snapshots(megabytes, rounds)));
  comparisons.push(await runnerStart(rounds));
  await report(`warmstack mechanisms against their floors (${rounds} round(s), alternating)`, comparisons);
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : String(error));
  process.exitCode = 1;
});
