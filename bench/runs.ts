// Whole runs on the bed, each beside what it saves or what it costs over, alternating in one run:
// - keycloak enrolled as a canonical: a cold run pays Keycloak's own first boot (schema creation and
//   the master realm's import) and a quick run reattaches the canonical's data;
// - custom-html, which has no first boot: the quick lane's own overhead over the cold lane;
// - a cold custom-html run's orchestration (its wall time less its tests and less a bare deploy and
//   removal of the same app at the same commit) against a bare Automation API up + destroy of one
//   no-op dynamic resource;
// - sso-app cold with its realm on the shared Keycloak against sso-app cold with a Keycloak of its own
//   deployed beside it (the reference system's cold path), both from a fork whose only change is no
//   simulated first boot, so the figure is Keycloak's and not the fixture's sleep;
// - 2, 4 and 8 concurrent cold runs of custom-html against one;
// - the peak resident memory of each lane's runs, by process role.
//   npm run bench:runs -- [--rounds N] [--concurrency 2,4,8] [--smoke] [--json FILE]
// --smoke runs each once, with 2 concurrent runs, so CI sees the bench keep working. Whatever boots a
// Keycloak takes one of the test bed's boot slots (test/support/keycloak-boots.ts), as the tests do,
// so a smoke run in CI does not starve the suites running beside it; alone, a slot is free at once.
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import { execa } from "execa";
import { StackDeployer } from "../infra/adapters/stack-deployer";
import type { RunResults } from "../runner/results";
import { AbraDir } from "../test/support/abra-dir";
import { bed, proxyUrl } from "../test/support/bed";
import { CanonicalStackFixture } from "../test/support/canonical-stack";
import { withKeycloakBoot } from "../test/support/keycloak-boots";
import { REPO_ROOT } from "../test/support/pulumi-project";
import { runResults, stackNamed, warmstack } from "../test/support/runs";
import { SHARED_KEYCLOAK_VERSION, sharedKeycloak, SharedKeycloak } from "../test/support/shared-keycloak";
import { EngineFloor, noopDynamicStack } from "./engine-floor";
import { MemoryPeaks, mergePeaks, samplePeaks } from "./process-memory";
import { booleanFlag, Comparison, numberFlag, report, stringFlag, timed } from "./support";

const KEYCLOAK = { recipe: "keycloak", knownGood: "1.0.0+26.5.6", pr: "1.0.1+26.5.6" };
const HTML = { recipe: "custom-html", knownGood: "1.0.0+1.0", pr: "1.1.0+1.1" };
const SSO = { recipe: "sso-app", base: "1.1.0+1.1" };

type Lane = "cold" | "quick";

interface Measured {
  wallMs: number;
  results: RunResults;
}

function concurrencyFlag(smoke: boolean): number[] {
  if (smoke) return [2];
  const counts = (stringFlag("--concurrency") ?? "2,4,8").split(",").map(Number);
  if (counts.some((count) => !Number.isInteger(count) || count < 2 || count > 16)) throw new Error("--concurrency: whole numbers of runs from 2 to 16, comma-separated");
  return counts;
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)}s`;

class Bench {
  readonly memory: Record<Lane, MemoryPeaks> = { cold: {}, quick: {} };

  constructor(
    readonly fixture: CanonicalStackFixture,
    readonly keycloak: SharedKeycloak,
    readonly env: Record<string, string>,
    readonly refs: { keycloak: string; html: string },
  ) {}

  /** One `warmstack run` to its end, with its results; the peak memory of its processes joins its lane's. */
  async run(lane: Lane, args: readonly string[], env: Record<string, string> = {}): Promise<Measured> {
    const started = process.hrtime.bigint();
    const child = warmstack(this.fixture.project, ["run", ...args, ...(lane === "quick" ? ["--quick"] : [])], { ...this.env, ...env });
    const memory = child.pid === undefined ? {} : await samplePeaks(child.pid, child);
    const ran = await child;
    const wallMs = Number(process.hrtime.bigint() - started) / 1e6;
    const output = String(ran.all);
    const stack = stackNamed(output);
    const results = stack ? (await runResults(this.fixture.project, stack))[0] : undefined;
    if (ran.exitCode !== 0 || !results) throw new Error(`a ${lane} run (${args.join(" ")}) failed (exit ${ran.exitCode}):\n${output.slice(-3000)}`);
    if (results.lane !== lane) throw new Error(`asked for the ${lane} lane, got ${results.lane}: ${JSON.stringify(results.fallbacks)}`);
    if (results.promotion.outcome === "promoted") throw new Error(`the ${lane} run promoted the canonical: the rounds would no longer be alike`);
    this.memory[lane] = mergePeaks(this.memory[lane], memory);
    console.error(`[bench] ${results.recipe} ${lane}: ${seconds(wallMs)} (${results.steps.map((step) => `${step.name} ${seconds(step.durationMs)}`).join(", ")})`);
    return { wallMs, results };
  }

  keycloakRun(lane: Lane): Promise<Measured> {
    return withKeycloakBoot(`a ${lane} keycloak run`, () => this.run(lane, ["--recipe", KEYCLOAK.recipe, "--ref", this.refs.keycloak]));
  }

  htmlRun(lane: Lane): Promise<Measured> {
    return this.run(lane, ["--recipe", HTML.recipe, "--ref", this.refs.html]);
  }

  /** The app's own part of a cold run: a bare deploy of the same commit to convergence, then its removal. */
  async bareDeploy(): Promise<number> {
    const deployer = this.fixture.deployer();
    const app = { recipe: HTML.recipe, domain: `bare-${randomBytes(3).toString("hex")}.${this.fixture.baseDomain}` };
    return timed(async () => {
      await deployer.newApp(app, { version: HTML.knownGood });
      try {
        await deployer.deploy(app, { ref: this.refs.html, health: { path: "/health" }, timeoutMs: 120_000 });
      } finally {
        await deployer.undeploy(app);
        await deployer.remove(app, { volumes: true });
      }
    });
  }
}

/** A fork of sso-app whose one commit on its base release sets the simulated first boot to none. */
async function ssoForkWithoutFirstBoot(dir: string): Promise<{ repo: string; ref: string }> {
  const repo = path.join(dir, "sso-app-fork");
  await execa("git", ["clone", "-q", path.join(bed().recipes, SSO.recipe), repo]);
  await execa("git", ["-C", repo, "checkout", "-q", "-b", "no-first-boot", SSO.base]);
  const compose = path.join(repo, "compose.yml");
  const text = await readFile(compose, "utf8");
  if (!/FIRST_BOOT_SECONDS=[0-9]+/.test(text)) throw new Error(`sso-app ${SSO.base}'s compose.yml sets no FIRST_BOOT_SECONDS`);
  await writeFile(compose, text.replace(/FIRST_BOOT_SECONDS=[0-9]+/, "FIRST_BOOT_SECONDS=0"));
  await execa("git", ["-C", repo, "-c", "user.name=bench", "-c", "user.email=bench@warmstack.test", "commit", "-q", "-am", "No simulated first boot"]);
  return { repo, ref: (await execa("git", ["-C", repo, "rev-parse", "HEAD"])).stdout.trim() };
}

/** sso-app cold against a Keycloak deployed for it alone: the Keycloak's deploy, the run, the Keycloak's removal. */
async function coDeployed(bench: Bench, fork: { repo: string; ref: string }, abra: AbraDir, dir: string): Promise<number> {
  const deployer = new StackDeployer({ abraDir: abra.root, server: "default", proxyUrl: proxyUrl(), dnsrrEndpoints: true });
  const app = { recipe: "keycloak", domain: `kc-${randomBytes(3).toString("hex")}.${bench.fixture.baseDomain}` };
  const adminPassword = randomBytes(18).toString("base64url");
  const passwordFile = path.join(dir, `${app.domain}-admin-password`);
  await writeFile(passwordFile, adminPassword, { mode: 0o600 });
  return timed(async () => {
    await deployer.newApp(app, { version: SHARED_KEYCLOAK_VERSION, secrets: { admin_password: adminPassword } });
    try {
      await withKeycloakBoot("a co-deployed Keycloak", () => deployer.deploy(app, { ref: SHARED_KEYCLOAK_VERSION, health: { path: "/realms/master" }, timeoutMs: 600_000 }));
      await bench.run("cold", ["--recipe", SSO.recipe, "--repo", fork.repo, "--ref", fork.ref, "--keycloak-domain", app.domain], { WARMSTACK_KEYCLOAK_ADMIN_PASSWORD_FILE: passwordFile });
    } finally {
      await deployer.undeploy(app);
      await deployer.remove(app, { volumes: true });
    }
  });
}

/** The keycloak recipe as a recipe of the catalogue, tested by its own check and enrolled as a canonical. */
async function catalogueWithKeycloak(fixture: CanonicalStackFixture): Promise<string> {
  return fixture.abra.catalogue((recipes) => {
    recipes[KEYCLOAK.recipe] = {
      source: fixture.abra.remote(KEYCLOAK.recipe),
      test: { command: ["bash", path.join(REPO_ROOT, "test", "fixtures", "checks", "keycloak.sh")], timeoutSeconds: 120 },
      health: { path: "/realms/master" },
      deployTimeoutSeconds: 600,
      sso: false,
      canonical: true,
    };
  });
}

interface Setting {
  bench: Bench;
  fork: { repo: string; ref: string };
  engine: EngineFloor;
  coDeployAbra: AbraDir;
  dir: string;
  concurrency: number[];
}

function comparisons(concurrency: readonly number[]) {
  const compare = (what: string, floor: string, goal?: number): Comparison => ({ what, samples: [], floorSamples: [], floor, ...(goal === undefined ? {} : { goal }) });
  return {
    keycloakLanes: compare("keycloak: quick run", "cold run (Keycloak's first boot)", 0.2),
    htmlLanes: compare("custom-html: quick run", "cold run (no first boot)", 1.1),
    orchestration: compare("a cold run's orchestration (custom-html)", "bare up + destroy of one no-op dynamic resource", 1.3),
    warmRealm: compare("sso-app cold, realm on the shared Keycloak", "sso-app cold, Keycloak of its own", 0.33),
    scaling: concurrency.map((count) => compare(`${count} concurrent cold runs (custom-html), wall`, "one cold run")),
  };
}

/** One round of every figure, each side right beside its floor, so drift on a shared machine hits both alike. */
async function round(setting: Setting, figures: ReturnType<typeof comparisons>): Promise<Record<string, unknown>[]> {
  const { bench, fork } = setting;
  const keycloakCold = await bench.keycloakRun("cold");
  const keycloakQuick = await bench.keycloakRun("quick");
  figures.keycloakLanes.floorSamples.push(keycloakCold.wallMs);
  figures.keycloakLanes.samples.push(keycloakQuick.wallMs);

  const htmlCold = await bench.htmlRun("cold");
  const htmlQuick = await bench.htmlRun("quick");
  figures.htmlLanes.floorSamples.push(htmlCold.wallMs);
  figures.htmlLanes.samples.push(htmlQuick.wallMs);

  const bare = await bench.bareDeploy();
  figures.orchestration.samples.push(htmlCold.wallMs - htmlCold.results.tests.durationMs - bare);
  figures.orchestration.floorSamples.push(
    await timed(async () => {
      await setting.engine.stack.up();
      await setting.engine.stack.destroy();
    }),
  );

  figures.warmRealm.samples.push((await bench.run("cold", ["--recipe", SSO.recipe, "--repo", fork.repo, "--ref", fork.ref, "--keycloak-domain", bench.keycloak.domain])).wallMs);
  figures.warmRealm.floorSamples.push(await coDeployed(bench, fork, setting.coDeployAbra, setting.dir));

  for (const [at, count] of setting.concurrency.entries()) {
    figures.scaling[at]!.samples.push(await timed(() => Promise.all(Array.from({ length: count }, () => bench.htmlRun("cold")))));
    figures.scaling[at]!.floorSamples.push(htmlCold.wallMs);
  }
  return [
    ...[keycloakCold, keycloakQuick, htmlCold, htmlQuick].map((measured) => ({
      recipe: measured.results.recipe,
      lane: measured.results.lane,
      wallMs: Math.round(measured.wallMs),
      deployCount: measured.results.deployCount,
      steps: Object.fromEntries(measured.results.steps.map((step) => [step.name, step.durationMs])),
    })),
    { recipe: HTML.recipe, bareDeployAndRemoveMs: Math.round(bare) },
  ];
}

function memoryTable(memory: Record<Lane, MemoryPeaks>): string[] {
  const roles = [...new Set([...Object.keys(memory.cold), ...Object.keys(memory.quick)])] as (keyof MemoryPeaks)[];
  const cell = (lane: Lane, role: keyof MemoryPeaks) => {
    const peak = memory[lane][role];
    return peak ? `${peak.peakMb} MB (largest ${peak.largestProcessMb} MB)` : "—";
  };
  return ["### Peak resident memory of a run's processes", "", "| processes | cold runs | quick runs |", "| --- | ---: | ---: |", ...roles.map((role) => `| ${role} | ${cell("cold", role)} | ${cell("quick", role)} |`)];
}

async function main(): Promise<void> {
  const smoke = booleanFlag("--smoke");
  const rounds = smoke ? 1 : numberFlag("--rounds", 2, 10);
  const concurrency = concurrencyFlag(smoke);
  const keycloak = await sharedKeycloak();
  const dir = await mkdtemp(path.join(os.tmpdir(), "warmstack-bench-runs-"));
  const coDeployAbra = await AbraDir.create(["keycloak"]);
  const fixture = await CanonicalStackFixture.create([
    { recipe: KEYCLOAK.recipe, tags: [KEYCLOAK.knownGood], knownGood: KEYCLOAK.knownGood, deployTimeoutSeconds: 600, health: { path: "/realms/master" } },
    { recipe: HTML.recipe, tags: [HTML.knownGood], knownGood: HTML.knownGood, deployTimeoutSeconds: 120 },
  ]);
  let engine: EngineFloor | undefined;
  try {
    fixture.project.catalogue = await catalogueWithKeycloak(fixture);
    const passwordFile = path.join(dir, "shared-keycloak-admin-password");
    await writeFile(passwordFile, keycloak.adminPassword, { mode: 0o600 });
    console.error(`[bench] seeding the ${KEYCLOAK.recipe} and ${HTML.recipe} canonicals (pays their first boots once)`);
    const seeded = await withKeycloakBoot("the keycloak canonical's seed", () => fixture.up());
    if (seeded.exitCode !== 0) throw new Error(`seeding failed:\n${seeded.output.slice(-3000)}`);
    // The PR heads are commits of releases the trimmed remotes do not keep: unreleased, as a PR's is,
    // so a green cold run does not promote and every round starts alike.
    const commitOf = async (recipe: string, version: string) => (await execa("git", ["-C", path.join(bed().recipes, recipe), "rev-parse", `${version}^{commit}`])).stdout.trim();
    const bench = new Bench(fixture, keycloak, { WARMSTACK_KEYCLOAK_ADMIN_PASSWORD_FILE: passwordFile }, { keycloak: await commitOf(KEYCLOAK.recipe, KEYCLOAK.pr), html: await commitOf(HTML.recipe, HTML.pr) });
    engine = await noopDynamicStack(fixture.project.env());
    const setting: Setting = { bench, fork: await ssoForkWithoutFirstBoot(dir), engine, coDeployAbra, dir, concurrency };
    const figures = comparisons(concurrency);
    const runs: Record<string, unknown>[] = [];
    for (let at = 0; at < rounds; at += 1) {
      runs.push(...(await round(setting, figures)));
      console.error(`[bench] runs: round ${at + 1}/${rounds} done`);
    }
    const { keycloakLanes, htmlLanes, orchestration, warmRealm, scaling } = figures;
    await report(`whole runs against what they save or cost over (${rounds} round(s), alternating)`, [keycloakLanes, htmlLanes, orchestration, warmRealm, ...scaling], {
      markdown: memoryTable(bench.memory),
      data: { memory: bench.memory, runs },
    });
  } finally {
    await engine?.dispose();
    await fixture.dispose();
    await coDeployAbra.dispose();
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : String(error));
  process.exitCode = 1;
});
