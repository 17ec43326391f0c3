// Quick lane vs cold lane, end to end, on the SSO-dependent fixture (sso-app), side by side in one
// run: the same PR commit tested cold and quick, alternately, on the same bed and shared Keycloak.
// Reports each run's wall time and step times, and the ratio of the medians.
//   npm run bench -- [--rounds N]
import { writeFile } from "node:fs/promises";
import * as path from "node:path";
import { execa } from "execa";
import type { RunResults } from "../runner/results";
import { bed } from "../test/support/bed";
import { CanonicalStackFixture } from "../test/support/canonical-stack";
import { runToEnd } from "../test/support/runs";
import { sharedKeycloak } from "../test/support/shared-keycloak";
import { median, numberFlag } from "./support";

const RECIPE = "sso-app";
const KNOWN_GOOD = "1.0.0+1.0";
// The PR head is the commit of 1.1.0, whose tag the bench's checkout does not keep: an unreleased
// commit, as a PR's is. A green cold run on it does not promote, so every round starts alike.
const PR_VERSION = "1.1.0+1.1";

interface Sample {
  lane: "cold" | "quick";
  wallMs: number;
  results: RunResults;
}

const seconds = (ms: number) => (ms / 1000).toFixed(1);

async function measure(fixture: CanonicalStackFixture, lane: "cold" | "quick", ref: string, env: Record<string, string>, keycloakDomain: string): Promise<Sample> {
  const started = Date.now();
  const run = await runToEnd(fixture.project, ["run", "--recipe", RECIPE, "--ref", ref, "--keycloak-domain", keycloakDomain, ...(lane === "quick" ? ["--quick"] : [])], env);
  const wallMs = Date.now() - started;
  const { results } = run;
  if (run.exitCode !== 0 || !results) throw new Error(`${lane} run failed (exit ${run.exitCode}):\n${run.output.slice(-3000)}`);
  if (results.lane !== lane) throw new Error(`asked for the ${lane} lane, got ${results.lane}: ${JSON.stringify(results.fallbacks)}`);
  if (results.promotion.outcome === "promoted") throw new Error(`the ${lane} run promoted the canonical: the rounds would no longer be alike`);
  process.stderr.write(`[bench] ${lane}: ${seconds(wallMs)}s (${results.steps.map((step) => `${step.name} ${seconds(step.durationMs)}s`).join(", ")})\n`);
  return { lane, wallMs, results };
}

async function main(): Promise<void> {
  const rounds = numberFlag("--rounds", 2, 10);

  const keycloak = await sharedKeycloak();
  const fixture = await CanonicalStackFixture.create([{ recipe: RECIPE, tags: [KNOWN_GOOD], knownGood: KNOWN_GOOD, deployTimeoutSeconds: 300 }]);
  try {
    const passwordFile = path.join(fixture.project.stateDir, "kc-admin-password");
    await writeFile(passwordFile, keycloak.adminPassword, { mode: 0o600 });
    const env = { WARMSTACK_KEYCLOAK_ADMIN_PASSWORD_FILE: passwordFile };
    process.stderr.write(`[bench] seeding the ${RECIPE} canonical at ${KNOWN_GOOD} (pays the first boot once)\n`);
    const seeded = await fixture.up();
    if (seeded.exitCode !== 0) throw new Error(`seeding failed:\n${seeded.output.slice(-3000)}`);
    const ref = (await execa("git", ["-C", path.join(bed().recipes, RECIPE), "rev-parse", `${PR_VERSION}^{commit}`])).stdout.trim();

    const samples: Sample[] = [];
    for (let round = 0; round < rounds; round += 1) {
      // Alternating, so drift on a shared machine hits both lanes alike.
      samples.push(await measure(fixture, "cold", ref, env, keycloak.domain));
      samples.push(await measure(fixture, "quick", ref, env, keycloak.domain));
    }
    const cold = median(samples.filter((sample) => sample.lane === "cold").map((sample) => sample.wallMs));
    const quick = median(samples.filter((sample) => sample.lane === "quick").map((sample) => sample.wallMs));
    const report = {
      bench: "quick-vs-cold",
      recipe: RECIPE,
      knownGood: KNOWN_GOOD,
      pr: PR_VERSION,
      rounds,
      coldMedianMs: cold,
      quickMedianMs: quick,
      ratio: Number((cold / quick).toFixed(2)),
      samples: samples.map((sample) => ({
        lane: sample.lane,
        wallMs: sample.wallMs,
        deployCount: sample.results.deployCount,
        steps: Object.fromEntries(sample.results.steps.map((step) => [step.name, step.durationMs])),
      })),
    };
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    process.stderr.write(`[bench] cold median ${seconds(cold)}s, quick median ${seconds(quick)}s: quick is ${report.ratio}× faster\n`);
  } finally {
    await fixture.dispose();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`bench: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
