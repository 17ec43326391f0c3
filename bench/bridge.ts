// The forge bridge's cost, side by side in one run on the bed's real Gitea: a maintainer's !testme
// delivered by Gitea → the run started (p50, p95), and comment → final status against a bare
// `warmstack run` of the same head (the floor), alternately, on custom-html (no first boot).
//   npm run bench:bridge -- [--rounds N]
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import * as path from "node:path";
import type { RunResults } from "../runner/results";
import { bed } from "../test/support/bed";
import { BridgeProcess } from "../test/support/bridge";
import { catalogueWithSources } from "../test/support/catalogues";
import { giteaApi } from "../test/support/gitea";
import { PulumiProject } from "../test/support/pulumi-project";
import { runToEnd } from "../test/support/runs";
import { numberFlag, percentile } from "./support";

const RECIPE = "custom-html";
const BASE = "1.0.0+1.0";

const seconds = (ms: number) => (ms / 1000).toFixed(2);

async function main(): Promise<void> {
  const rounds = numberFlag("--rounds", 3, 20);
  const admin = giteaApi("admin");
  const maintainer = giteaApi("maintainer");
  const project = await PulumiProject.create();
  const repo = await admin.createRecipeRepo(RECIPE);
  const baseDomain = `bench${randomBytes(2).toString("hex")}.${bed().domain}`;
  let bridge: BridgeProcess | undefined;
  try {
    const catalogue = await catalogueWithSources(project.stateDir, { [RECIPE]: repo.cloneUrl });
    project.catalogue = catalogue;
    bridge = await BridgeProcess.create(project, { catalogue, maxConcurrent: 1, env: { WARMSTACK_BASE_DOMAIN: baseDomain } });
    await bridge.start();
    await admin.createWebhook(repo, { url: `${bridge.url}/webhook`, secret: bridge.secret });

    const samples: { toStartMs: number; toReportMs: number; runMs: number; bareMs: number }[] = [];
    for (let round = 0; round < rounds; round += 1) {
      const branch = `bench-${round}-${randomBytes(2).toString("hex")}`;
      const sha = await maintainer.pushBranch(repo, branch, BASE);
      const pr = await maintainer.openPullRequest(repo, branch);
      const commented = Date.now();
      await maintainer.comment(repo, pr, "!testme");
      const started = await bridge.waitForLine((line) => line.event === "run-started" && line.pr === pr, 300_000);
      const reported = await bridge.waitForLine((line) => line.event === "run-reported" && line.job === started.job, 900_000);
      const results = JSON.parse(await readFile(path.join(project.stateDir, "bridge", "jobs", String(reported.job), "results.json"), "utf8")) as RunResults;
      if (results.outcome !== "passed") throw new Error(`the bridge's run of #${pr} ${results.outcome}: ${results.error}`);
      // The floor: the same head, run bare.
      const bareStarted = Date.now();
      const bare = await runToEnd(project, ["run", "--recipe", RECIPE, "--ref", sha, "--pr", String(pr)], { WARMSTACK_BASE_DOMAIN: baseDomain });
      const bareMs = Date.now() - bareStarted;
      if (bare.exitCode !== 0) throw new Error(`the bare run failed:\n${bare.output.slice(-2000)}`);
      const sample = { toStartMs: Date.parse(String(started.time)) - commented, toReportMs: Date.parse(String(reported.time)) - commented, runMs: results.durationMs, bareMs };
      samples.push(sample);
      process.stderr.write(`[bench] #${pr}: comment → run started ${seconds(sample.toStartMs)}s, → reported ${seconds(sample.toReportMs)}s (the run ${seconds(sample.runMs)}s); bare run ${seconds(bareMs)}s\n`);
    }
    const toStart = samples.map((sample) => sample.toStartMs);
    const overhead = samples.map((sample) => sample.toReportMs - sample.runMs);
    const report = {
      bench: "bridge",
      recipe: RECIPE,
      rounds,
      commentToRunStartedMs: { p50: percentile(toStart, 50), p95: percentile(toStart, 95) },
      bridgeOverheadMs: { p50: percentile(overhead, 50), p95: percentile(overhead, 95) },
      throughBridgeVsBare: Number((percentile(samples.map((sample) => sample.toReportMs), 50) / percentile(samples.map((sample) => sample.bareMs), 50)).toFixed(2)),
      samples,
    };
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    process.stderr.write(
      `[bench] comment → run started p50 ${seconds(report.commentToRunStartedMs.p50)}s p95 ${seconds(report.commentToRunStartedMs.p95)}s; ` +
        `the bridge's own overhead p50 ${seconds(report.bridgeOverheadMs.p50)}s; through the bridge / bare: ${report.throughBridgeVsBare}×\n`,
    );
  } finally {
    await bridge?.stop();
    await admin.deleteRepo(repo);
    await project.dispose();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`bench: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
