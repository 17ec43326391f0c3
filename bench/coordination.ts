// The coordination backends side by side in one run on the bed: lease take+release and run
// registration (register+unregister) p50/p99 on files and on the bed's PostgreSQL, alternating; then
// a cold run's end-to-end time on each (files + file backend, against PostgreSQL for both coordination
// and Pulumi state), alternating, as a ratio.
//   npm run bench:coordination -- [--ops N] [--runs N]
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import { Coordination, FileCoordination, PostgresCoordination } from "../infra/adapters/coordination";
import { bed } from "../test/support/bed";
import { postgresPassword, postgresUrlWithoutPassword, scratchDatabase } from "../test/support/postgres";
import { PulumiProject } from "../test/support/pulumi-project";
import { runToEnd } from "../test/support/runs";
import { SAMPLE_CANONICAL } from "../test/support/sample-canonical";
import { median, numberFlag, percentile, timed } from "./support";


const ms = (value: number) => value.toFixed(2);

async function main(): Promise<void> {
  const ops = numberFlag("--ops", 500, 100_000);
  const runs = numberFlag("--runs", 3, 10);
  bed();
  const database = await scratchDatabase();
  const dir = await mkdtemp(path.join(os.tmpdir(), "warmstack-bench-coordination-"));
  const backends: Record<string, Coordination> = { file: new FileCoordination(dir), postgres: new PostgresCoordination(database.url) };
  try {
    const samples: Record<string, { lease: number[]; registration: number[] }> = { file: { lease: [], registration: [] }, postgres: { lease: [], registration: [] } };
    // The first of each is the schema (postgres) or directory (file) being made: not a take.
    for (const coordination of Object.values(backends)) await coordination.listLeases();
    for (let round = 0; round < ops; round += 1) {
      const stack = `run-custom-html-${round.toString(16).padStart(6, "0")}`;
      for (const [name, coordination] of Object.entries(backends)) {
        samples[name]!.lease.push(
          await timed(async () => {
            const taken = await coordination.tryTakeLease("custom-html", stack, SAMPLE_CANONICAL);
            if (!taken.taken) throw new Error(`${name}: the lease was not free`);
            await coordination.releaseLease("custom-html", stack);
          }),
        );
        samples[name]!.registration.push(
          await timed(async () => {
            await coordination.register(stack);
            await coordination.unregister(stack);
          }),
        );
      }
    }
    console.log(`coordination, ${ops} operations each, alternating (ms):`);
    for (const [name, sample] of Object.entries(samples)) {
      console.log(`  ${name.padEnd(8)} lease take+release p50 ${ms(percentile(sample.lease, 50))} p99 ${ms(percentile(sample.lease, 99))} | register+unregister p50 ${ms(percentile(sample.registration, 50))} p99 ${ms(percentile(sample.registration, 99))}`);
    }

    // A cold run end to end on each, alternating: the run's coordination and Pulumi state are the difference.
    const baseDomain = `bench${randomBytes(2).toString("hex")}.${bed().domain}`;
    const onFiles = await PulumiProject.create();
    const onPostgres = await PulumiProject.create({
      backendUrl: postgresUrlWithoutPassword(database.name),
      env: { WARMSTACK_COORDINATION_URL: database.url, PGPASSWORD: postgresPassword() },
    });
    const durations: Record<string, number[]> = { file: [], postgres: [] };
    try {
      for (let round = 0; round < runs; round += 1) {
        for (const [name, project] of [["file", onFiles], ["postgres", onPostgres]] as const) {
          const started = Date.now();
          const run = await runToEnd(project, ["run", "--recipe", "custom-html"], { WARMSTACK_BASE_DOMAIN: baseDomain });
          if (run.exitCode !== 0) throw new Error(`the ${name} run failed:\n${run.output.slice(-2000)}`);
          durations[name]!.push(Date.now() - started);
        }
      }
    } finally {
      await onFiles.dispose();
      await onPostgres.dispose();
    }
    console.log(`cold run end to end, ${runs} each, alternating: file median ${(median(durations.file!) / 1000).toFixed(1)} s, postgres median ${(median(durations.postgres!) / 1000).toFixed(1)} s`);
    console.log(`  postgres / file = ${(median(durations.postgres!) / median(durations.file!)).toFixed(3)} (target ≤ 1.1)`);
  } finally {
    for (const coordination of Object.values(backends)) await coordination.close();
    await database.drop();
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : String(error));
  process.exitCode = 1;
});
