import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import type KcAdminClient from "@keycloak/keycloak-admin-client";
import { execa } from "execa";
import { parse as parseYaml, stringify as stringifyYaml } from "yaml";
import { runProcesses } from "../../runner/processes";
import { parseResults, RunResults } from "../../runner/results";
import { runWorkDir } from "../../runner/run-plan";
import { AbraDir } from "../support/abra-dir";
import { bed } from "../support/bed";
import { CanonicalStackFixture } from "../support/canonical-stack";
import { keycloakAdmin } from "../support/keycloak-admin";
import { PulumiProject, REPO_ROOT } from "../support/pulumi-project";
import { leftovers, NOTHING_LEFT, stackNamed, warmstack } from "../support/runs";
import { SharedKeycloak, sharedKeycloak } from "../support/shared-keycloak";

/**
 * `warmstack run` and `warmstack trigger` end to end on the bed: the real CLI, engine, swarm, proxy
 * and shared Keycloak. Each run gets a Pulumi project (backend, state dir) and a base domain of its
 * own, so concurrent tests here and in other suites never see each other's stacks or swarm objects.
 */

const hex6 = () => randomBytes(3).toString("hex");
const RUN_REALM = /^sso-app-[0-9a-f]{6}$/;
const KEYCLOAK_BUILTIN_CLIENTS = new Set(["account", "account-console", "admin-cli", "broker", "realm-management", "security-admin-console"]);

const cleanups: (() => Promise<unknown>)[] = [];

after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch((error) => console.error(`cleanup: ${(error as Error).message}`));
});

async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), `warmstack-${prefix}-`));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function newProject(): Promise<PulumiProject> {
  const project = await PulumiProject.create();
  cleanups.push(() => project.dispose());
  return project;
}

/** A base domain no other run uses: leftovers() then sees only this test's swarm objects. */
function uniqueBaseDomain(): string {
  return `r${hex6()}.${bed().domain}`;
}

/** A copy of the repository's catalogue with one recipe's entry changed (the raw YAML object, so invalid values can be written too). */
async function catalogueWith(recipe: string, change: (entry: Record<string, unknown>) => void): Promise<string> {
  const catalogue = parseYaml(await readFile(path.join(REPO_ROOT, "catalogue.yaml"), "utf8")) as { recipes: Record<string, Record<string, unknown>> };
  change(catalogue.recipes[recipe]!);
  const file = path.join(await tempDir("catalogue"), "catalogue.yaml");
  await writeFile(file, stringifyYaml(catalogue));
  return file;
}

interface Ran {
  exitCode: number;
  stdout: string;
  stderr: string;
  /** The run stack the progress lines name (undefined when the run was refused before it had one). */
  stack?: string;
  elapsedMs: number;
}

async function run(project: PulumiProject, args: readonly string[], env: Record<string, string> = {}): Promise<Ran> {
  const started = Date.now();
  const result = await warmstack(project, args, env);
  const stdout = String(result.stdout ?? "");
  const stderr = String(result.stderr ?? "");
  return { exitCode: result.exitCode ?? -1, stdout, stderr, stack: stackNamed(stderr), elapsedMs: Date.now() - started };
}

function describeRun(ran: Ran): string {
  return `exit ${ran.exitCode} after ${(ran.elapsedMs / 1000).toFixed(1)}s\n--- stdout\n${ran.stdout}\n--- stderr\n${ran.stderr.split("\n").slice(-60).join("\n")}`;
}

interface Written {
  results: RunResults;
  json: string;
  summary: string;
}

/** results.json (validated against the schema) and summary.md of a finished run. */
async function written(project: PulumiProject, ran: Ran): Promise<Written> {
  assert.ok(ran.stack, `the runner named its run stack\n${describeRun(ran)}`);
  const dir = path.join(project.stateDir, "results", ran.stack);
  const json = await readFile(path.join(dir, "results.json"), "utf8");
  const summary = await readFile(path.join(dir, "summary.md"), "utf8");
  const results = parseResults(JSON.parse(json));
  assert.equal(results.stack, ran.stack);
  return { results, json, summary };
}

/** Nothing of the run is left: no stack, no swarm objects under the base domain, no lease, registration, work dir or process. */
async function assertNothingLeft(project: PulumiProject, recipe: string, baseDomain: string, stack: string): Promise<void> {
  assert.deepEqual(await leftovers(project, recipe, { baseDomain }), NOTHING_LEFT, `nothing of ${stack} is left`);
  assert.equal(existsSync(runWorkDir(project.stateDir, stack)), false, `the work dir of ${stack} is gone`);
  assert.deepEqual(await runProcesses(stack), [], `no process of ${stack} is left`);
}

/** Every run stack in the project's backend, per the real CLI. */
async function runStacks(project: PulumiProject): Promise<string[]> {
  const listed = await project.pulumi(["stack", "ls", "--json"]);
  assert.equal(listed.exitCode, 0, listed.output);
  return (JSON.parse(listed.output) as { name: string }[]).map((entry) => entry.name).filter((name) => name.startsWith("run-"));
}

/** Object keys anywhere in a JSON value. */
function keysOf(value: unknown): string[] {
  if (Array.isArray(value)) return value.flatMap(keysOf);
  if (value !== null && typeof value === "object") return Object.entries(value).flatMap(([key, inner]) => [key, ...keysOf(inner)]);
  return [];
}

/** Every file under dir whose content contains the needle. */
async function filesContaining(dir: string, needle: string, skip: (file: string) => boolean = () => false): Promise<string[]> {
  const found: string[] = [];
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  for (const entry of entries) {
    if (!entry.isFile()) continue;
    const file = path.join(entry.parentPath, entry.name);
    if (skip(file)) continue;
    const content = await readFile(file).catch(() => Buffer.alloc(0));
    if (content.includes(needle)) found.push(file);
  }
  return found;
}

/**
 * Watches the shared Keycloak while a run runs: which run realms of sso-app appear, and the client
 * secrets of their confidential clients (so the test can look for them where they must not be).
 */
class RealmWatcher {
  readonly seen = new Set<string>();
  /** clientId → secret, of clients the run created. */
  readonly secrets = new Map<string, string>();
  private readonly before: Set<string>;
  private stopped = false;
  private loop?: Promise<void>;
  private client?: { admin: KcAdminClient; since: number };
  errors = 0;

  private constructor(
    private readonly keycloak: SharedKeycloak,
    existing: string[],
  ) {
    this.before = new Set(existing);
  }

  static async start(keycloak: SharedKeycloak): Promise<RealmWatcher> {
    const admin = await keycloakAdmin(keycloak.domain, keycloak.adminPassword);
    const existing = (await admin.realms.find()).map((realm) => realm.realm ?? "");
    const watcher = new RealmWatcher(keycloak, existing);
    watcher.client = { admin, since: Date.now() };
    watcher.loop = watcher.poll();
    return watcher;
  }

  /** Admin tokens live 60 s: a new session well before that. */
  private async admin(): Promise<KcAdminClient> {
    if (!this.client || Date.now() - this.client.since > 40_000) {
      this.client = { admin: await keycloakAdmin(this.keycloak.domain, this.keycloak.adminPassword), since: Date.now() };
    }
    return this.client.admin;
  }

  private async poll(): Promise<void> {
    while (!this.stopped) {
      try {
        const admin = await this.admin();
        for (const realm of (await admin.realms.find()).map((entry) => entry.realm ?? "")) {
          if (!RUN_REALM.test(realm) || this.before.has(realm)) continue;
          this.seen.add(realm);
          for (const client of await admin.clients.find({ realm })) {
            if (!client.id || !client.clientId || KEYCLOAK_BUILTIN_CLIENTS.has(client.clientId) || client.publicClient) continue;
            if (this.secrets.has(client.clientId)) continue;
            const secret = await admin.clients.getClientSecret({ realm, id: client.id });
            if (secret.value) this.secrets.set(client.clientId, secret.value);
          }
        }
      } catch {
        // A realm deleted between the listing and its clients, a Keycloak busy with a run's writes.
        this.errors += 1;
      }
      await new Promise((resolve) => setTimeout(resolve, 1500));
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }

  async realmExists(realm: string): Promise<boolean> {
    const admin = await this.admin();
    const found = await admin.realms.findOne({ realm });
    const listed = (await admin.realms.find()).some((entry) => entry.realm === realm);
    assert.equal(found !== null && found !== undefined, listed, `findOne and the realm list agree about ${realm}`);
    return listed;
  }
}

describe("warmstack run on the bed", { concurrency: true }, () => {
  it("a cold run of sso-app borrows the shared Keycloak: green, one deploy, a realm of its own for the run only, nothing left, no secret shown", { timeout: 1_200_000 }, async () => {
    const keycloak = await sharedKeycloak();
    const project = await newProject();
    const baseDomain = uniqueBaseDomain();
    // The bed's sso-app repository has a broken newest release (1.1.1+1.1, unhealthy): a checkout
    // without it makes 1.1.0+1.1 the latest, so a run on latest can be green.
    const abra = await AbraDir.create(["sso-app"]);
    cleanups.push(() => abra.dispose());
    await abra.keepOnlyTags("sso-app", ["1.0.0+1.0", "1.1.0+1.1"]);
    const secretsDir = await tempDir("kc-admin");
    const passwordFile = path.join(secretsDir, "admin-password");
    await writeFile(passwordFile, keycloak.adminPassword, { mode: 0o600 });

    const watcher = await RealmWatcher.start(keycloak);
    let ran: Ran;
    try {
      ran = await run(project, ["run", "--recipe", "sso-app", "--keycloak-domain", keycloak.domain], {
        WARMSTACK_ABRA_DIR: abra.root,
        WARMSTACK_BASE_DOMAIN: baseDomain,
        WARMSTACK_KEYCLOAK_ADMIN_USER: keycloak.adminUser,
        WARMSTACK_KEYCLOAK_ADMIN_PASSWORD_FILE: passwordFile,
      });
    } finally {
      await watcher.stop();
    }
    assert.equal(ran.exitCode, 0, describeRun(ran));
    const stack = ran.stack!;
    const realm = `sso-app-${stack.slice(-6)}`;
    const { results, json, summary } = await written(project, ran);

    assert.equal(results.recipe, "sso-app");
    assert.equal(results.mode, "cold");
    assert.equal(results.lane, "cold");
    assert.equal(results.confidence, "authoritative");
    assert.equal(results.gatesMerge, true);
    assert.equal(results.sso, "warm-keycloak");
    assert.deepEqual(results.fallbacks, [], "no fallback: the shared Keycloak was up");
    assert.equal(results.deployCount, 1);
    assert.equal(results.deployed, "1.1.0+1.1", "latest of the run's checkout");
    assert.equal(results.ref, "");
    assert.equal(results.outcome, "passed");
    assert.equal(results.failedStep, null);
    assert.equal(results.error, null);
    assert.equal(results.tests.outcome, "passed");
    assert.equal(results.tests.exitCode, 0);
    // The check script's own lines: the app's OIDC config names the realm, and a real password grant worked.
    assert.match(results.tests.outputTail, new RegExp(`ok config: the app uses issuer http://${keycloak.domain.replace(/\./g, "\\.")}/realms/${realm} `));
    assert.match(results.tests.outputTail, /ok password-grant: user \S+ gets an access token/);
    assert.deepEqual(
      results.steps.map((step) => [step.name, step.outcome]),
      [
        ["prepare", "passed"],
        ["up", "passed"],
        ["tests", "passed"],
        ["destroy", "passed"],
        ["promote", "passed"],
      ],
    );
    assert.match(results.steps.find((step) => step.name === "up")?.detail ?? "", /^cold lane, 1\.1\.0\+1\.1 on sso-[0-9a-f]{6}\.r[0-9a-f]{6}\.warm\.test, 1 deploy\(s\)$/);
    assert.equal(results.promotion.outcome, "not-eligible", "sso-app is not enrolled (there is no warm stack)");
    assert.match(summary, /### warmstack: sso-app PASSED/);
    assert.match(summary, /\*\*SSO:\*\* warm-keycloak/);

    // The realm existed while the run ran, and is gone now.
    assert.ok(watcher.seen.has(realm), `the run's realm ${realm} was seen on the shared Keycloak during the run (seen: ${[...watcher.seen].join(", ") || "none"}, poll errors: ${watcher.errors})`);
    assert.equal(await watcher.realmExists(realm), false, `${realm} is gone after the run`);
    await assertNothingLeft(project, "sso-app", baseDomain, stack);

    // No secret anywhere a reader sees, nor in the state dir (Pulumi state, history, results, work files).
    const clientId = /ok config: the app uses issuer \S+ and client (\S+)/.exec(results.tests.outputTail)?.[1];
    assert.ok(clientId && watcher.secrets.has(clientId), `the watcher caught the secret of the run's client ${clientId} (caught: ${[...watcher.secrets.keys()].join(", ") || "none"})`);
    const passphrase = (await readFile(path.join(project.stateDir, "passphrase"), "utf8")).trim();
    const secrets: [string, string][] = [
      ["the Keycloak admin password", keycloak.adminPassword],
      ["the state passphrase", passphrase],
      ...[...watcher.secrets].map(([client, secret]): [string, string] => [`the client secret of ${client}`, secret]),
    ];
    for (const [what, secret] of secrets) {
      assert.ok(secret.length >= 8, `${what} is a real secret`);
      for (const [where, text] of Object.entries({ stdout: ran.stdout, stderr: ran.stderr, "results.json": json, "summary.md": summary })) {
        assert.equal(text.includes(secret), false, `${what} appears in ${where}`);
      }
      const passphraseFile = path.join(project.stateDir, "passphrase");
      assert.deepEqual(await filesContaining(project.stateDir, secret, (file) => file === passphraseFile), [], `${what} is stored in the state dir`);
    }
    assert.deepEqual(
      keysOf(JSON.parse(json)).filter((key) => /secret|password|token|passphrase/i.test(key)),
      [],
      "results.json has no secret-bearing field",
    );
  });

  describe("promote-on-green-cold (custom-html canonical at 1.0.0+1.0, latest release 1.1.0+1.1)", { concurrency: false }, () => {
    let fixture: CanonicalStackFixture;
    let olderRef: string;
    let seeded: { knownGood: string; snapshotId: string; seededAt: string };

    before(async () => {
      fixture = await CanonicalStackFixture.create([{ recipe: "custom-html", tags: ["1.0.0+1.0", "1.0.1+1.0", "1.1.0+1.1"], knownGood: "1.0.0+1.0" }]);
      cleanups.push(() => fixture.dispose());
      const up = await fixture.up();
      assert.equal(up.exitCode, 0, up.output);
      const canonical = await fixture.canonical("custom-html");
      assert.equal(canonical?.knownGood, "1.0.0+1.0");
      assert.ok(canonical.snapshotId);
      seeded = { knownGood: canonical.knownGood, snapshotId: canonical.snapshotId, seededAt: canonical.seededAt };
      olderRef = (await execa("git", ["-C", fixture.abra.recipeDir("custom-html"), "rev-parse", "1.0.1+1.0^{commit}"])).stdout;
      assert.match(olderRef, /^[0-9a-f]{40}$/);
    });

    async function assertKnownGoodUnchanged(): Promise<void> {
      const canonical = await fixture.canonical("custom-html");
      assert.equal(canonical?.knownGood, seeded.knownGood, "the canonical's known-good in state");
      assert.equal(canonical.snapshotId, seeded.snapshotId, "the canonical's known-good snapshot in state");
      assert.equal(canonical.seededAt, seeded.seededAt, "the canonical was not seeded again");
      assert.equal(await fixture.configuredKnownGood("custom-html"), seeded.knownGood, "the canonical's known-good in the warm config");
    }

    it("does not promote after a red cold run on latest, a green cold run on an older ref, or a green quick run on latest", { timeout: 900_000 }, async () => {
      const red = await catalogueWith("custom-html", (entry) => {
        entry.test = { command: ["bash", "-c", "echo the red check runs; exit 3"], timeoutSeconds: 60 };
      });
      const [redRun, olderRun, quickRun] = await Promise.all([
        run(fixture.project, ["run", "--recipe", "custom-html"], { WARMSTACK_CATALOGUE: red }),
        run(fixture.project, ["run", "--recipe", "custom-html", "--ref", olderRef, "--pr", "17"]),
        run(fixture.project, ["run", "--recipe", "custom-html", "--quick"]),
      ]);

      assert.equal(redRun.exitCode, 1, describeRun(redRun));
      const redResults = (await written(fixture.project, redRun)).results;
      assert.equal(redResults.lane, "cold");
      assert.equal(redResults.deployed, "1.1.0+1.1", "the red run deployed the latest release");
      assert.equal(redResults.outcome, "failed");
      assert.equal(redResults.failedStep, "tests");
      assert.equal(redResults.tests.outcome, "failed");
      assert.equal(redResults.tests.exitCode, 3);
      assert.match(redResults.tests.outputTail, /the red check runs/);
      assert.notEqual(redResults.promotion.outcome, "promoted");
      assert.equal(redResults.promotion.version, null);
      assert.ok(redResults.steps.some((step) => step.name === "destroy" && step.outcome === "passed"), "a red run still destroys");

      assert.equal(olderRun.exitCode, 0, describeRun(olderRun));
      const olderResults = (await written(fixture.project, olderRun)).results;
      assert.equal(olderResults.lane, "cold");
      assert.equal(olderResults.ref, olderRef);
      assert.equal(olderResults.pr, 17);
      assert.equal(olderResults.deployed, olderRef);
      assert.equal(olderResults.outcome, "passed");
      assert.equal(olderResults.promotion.outcome, "not-eligible");
      assert.match(olderResults.promotion.reason, /is not the latest release \(1\.1\.0\+1\.1\)/);

      assert.equal(quickRun.exitCode, 0, describeRun(quickRun));
      const quickResults = (await written(fixture.project, quickRun)).results;
      assert.equal(quickResults.mode, "quick");
      assert.equal(quickResults.lane, "quick", "the seeded canonical was borrowed");
      assert.equal(quickResults.deployed, "1.1.0+1.1");
      assert.equal(quickResults.confidence, "lower");
      assert.equal(quickResults.gatesMerge, false);
      assert.equal(quickResults.outcome, "passed");
      assert.equal(quickResults.promotion.outcome, "not-eligible");
      assert.match(quickResults.promotion.reason, /quick run never promotes/);

      await assertKnownGoodUnchanged();
      for (const ran of [redRun, olderRun, quickRun]) await assertNothingLeft(fixture.project, "custom-html", fixture.baseDomain, ran.stack!);
    });

    it("promotes after a green cold run on latest: the canonical's known-good becomes 1.1.0+1.1", { timeout: 900_000 }, async () => {
      const ran = await run(fixture.project, ["run", "--recipe", "custom-html"]);
      assert.equal(ran.exitCode, 0, describeRun(ran));
      const { results, summary } = await written(fixture.project, ran);
      assert.equal(results.lane, "cold");
      assert.equal(results.deployed, "1.1.0+1.1");
      assert.equal(results.outcome, "passed");
      assert.deepEqual(results.promotion, { outcome: "promoted", version: "1.1.0+1.1", reason: "known-good 1.0.0+1.0 → 1.1.0+1.1 after a green cold run" });
      assert.match(summary, /\*\*Promotion:\*\* promoted `1\.1\.0\+1\.1` to known-good/);

      const canonical = await fixture.canonical("custom-html");
      assert.equal(canonical?.knownGood, "1.1.0+1.1", "the canonical's known-good in state");
      // The snapshot id names its content (custom-html's data does not change between these versions): a new seed shows in seededAt.
      assert.ok(Date.parse(canonical.seededAt) > Date.parse(seeded.seededAt), `seeded again at the promote (${seeded.seededAt} → ${canonical.seededAt})`);
      assert.equal(await fixture.configuredKnownGood("custom-html"), "1.1.0+1.1", "the canonical's known-good in the warm config");
      await assertNothingLeft(fixture.project, "custom-html", fixture.baseDomain, ran.stack!);
    });
  });

  describe("bad input: a clear error naming what is wrong, exit ≠ 0, nothing created", { concurrency: true }, () => {
    /** A refused run: exit 1, the error on stderr, and nothing in the backend or the state dir (a project of its own: the cases run at once). */
    async function refused(args: readonly string[], env: Record<string, string> = {}): Promise<Ran> {
      const project = await newProject();
      const ran = await run(project, args, env);
      assert.equal(ran.exitCode, 1, describeRun(ran));
      assert.equal(ran.stack, undefined, `no run stack was named\n${describeRun(ran)}`);
      assert.equal(ran.stdout, "", "nothing on stdout: no summary of a run that never ran");
      assert.deepEqual(await runStacks(project), [], "no run stack in the backend");
      assert.deepEqual(await readdir(path.join(project.stateDir, "runs")).catch(() => []), [], "no run registration");
      assert.equal(existsSync(path.join(project.stateDir, "results")), false, "no results");
      return ran;
    }

    it("an unknown recipe", async () => {
      const ran = await refused(["run", "--recipe", "nope"]);
      assert.match(ran.stderr, /^warmstack: --recipe: unknown recipe nope: it is not in the catalogue \S+catalogue\.yaml \(known: custom-html, sso-app\)$/m);
    });

    it("a malformed recipe name", async () => {
      const ran = await refused(["run", "--recipe", "../x"]);
      assert.match(ran.stderr, /^warmstack: --recipe: is not a valid recipe name \(lowercase letters, digits and single hyphens/m);
    });

    for (const ref of ["XYZ", "123"]) {
      it(`a malformed ref (${ref})`, async () => {
        const ran = await refused(["run", "--recipe", "custom-html", "--ref", ref]);
        assert.match(ran.stderr, /^warmstack: --ref: must be a commit hash \(7–40 lowercase hex digits\)/m);
      });
    }

    it("a ref that is no commit of the recipe", async () => {
      const ran = await refused(["run", "--recipe", "custom-html", "--ref", "0000000"]);
      assert.match(ran.stderr, /^warmstack: --ref: 0000000 is not a commit of recipe custom-html: \S+custom-html\.git \(refs\/heads\/\*\) does not have it$/m);
    });

    for (const pr of ["0", "1.5", "abc"]) {
      it(`a malformed PR number (${pr})`, async () => {
        const ran = await refused(["run", "--recipe", "custom-html", "--pr", pr]);
        assert.match(ran.stderr, /^warmstack: --pr: must be a positive whole number$/m);
      });
    }

    it("a catalogue entry with a value of the wrong type", async () => {
      const file = await catalogueWith("custom-html", (entry) => {
        entry.deployTimeoutSeconds = "fast";
      });
      const ran = await refused(["run", "--recipe", "custom-html", "--catalogue", file]);
      assert.ok(ran.stderr.includes(`recipe catalogue ${file} is invalid`), ran.stderr);
      assert.match(ran.stderr, /^ {2}recipes\.custom-html\.deployTimeoutSeconds: .*number/m);
    });

    it("a catalogue entry with an unknown key (given by WARMSTACK_CATALOGUE)", async () => {
      const file = await catalogueWith("custom-html", (entry) => {
        entry.healthcheck = "/health";
      });
      const ran = await refused(["run", "--recipe", "custom-html"], { WARMSTACK_CATALOGUE: file });
      assert.ok(ran.stderr.includes(`recipe catalogue ${file} is invalid`), ran.stderr);
      assert.match(ran.stderr, /^ {2}recipes\.custom-html\.healthcheck: unknown key$/m);
    });

    it("an invalid entry of another recipe still refuses the run: the catalogue is checked as a whole", async () => {
      const file = await catalogueWith("sso-app", (entry) => {
        (entry.test as Record<string, unknown>).timeoutSeconds = 0;
      });
      const ran = await refused(["run", "--recipe", "custom-html", "--catalogue", file]);
      assert.match(ran.stderr, /^ {2}recipes\.sso-app\.test\.timeoutSeconds: /m);
    });
  });

  describe("a test command that hangs is stopped at its timeout, and the run still leaves nothing", { concurrency: true }, () => {
    for (const [what, script] of [
      ["the test command itself hangs", "sleep 600"],
      // Shorter, so that a runner that waits for the child fails this test in minutes, not in ten.
      ["a child of the test command hangs, holding its output open", "sleep 150 & wait"],
    ] as const) {
      it(what, { timeout: 900_000 }, async () => {
        const project = await newProject();
        const baseDomain = uniqueBaseDomain();
        const catalogue = await catalogueWith("custom-html", (entry) => {
          entry.test = { command: ["bash", "-c", script], timeoutSeconds: 3 };
        });
        const ran = await run(project, ["run", "--recipe", "custom-html", "--catalogue", catalogue], { WARMSTACK_BASE_DOMAIN: baseDomain });
        assert.equal(ran.exitCode, 1, describeRun(ran));
        const { results, summary } = await written(project, ran);
        assert.equal(results.outcome, "failed");
        assert.equal(results.failedStep, "tests");
        assert.equal(results.tests.outcome, "timed-out");
        assert.ok(results.tests.durationMs >= 3000, `the tests ran ${results.tests.durationMs} ms, at least their 3 s timeout`);
        assert.match(results.error ?? "", /the tests timed out after 3s/);
        assert.match(summary, /\*\*Tests:\*\* timed out after/);
        await assertNothingLeft(project, "custom-html", baseDomain, ran.stack!);
      });
    }
  });

  describe("warmstack trigger", { concurrency: true }, () => {
    let refusedProject: PulumiProject;

    before(async () => {
      refusedProject = await newProject();
    });

    for (const [comment, mode] of [
      ["!testme", "cold"],
      ["  !testme --quick\n", "quick"],
    ] as const) {
      it(`${JSON.stringify(comment)} starts a ${mode} run`, { timeout: 900_000 }, async () => {
        const project = await newProject();
        const baseDomain = uniqueBaseDomain();
        const ran = await run(project, ["trigger", "--comment", comment, "--recipe", "custom-html"], { WARMSTACK_BASE_DOMAIN: baseDomain });
        assert.equal(ran.exitCode, 0, describeRun(ran));
        const { results } = await written(project, ran);
        assert.equal(results.mode, mode);
        assert.equal(results.outcome, "passed");
        assert.equal(results.tests.outcome, "passed");
        if (mode === "quick") {
          // No warm stack here, so no canonical: the quick lane falls back to cold and says why.
          assert.equal(results.lane, "cold");
          assert.equal(results.fallbacks.length, 1);
          assert.equal(results.fallbacks[0]?.from, "quick");
          assert.equal(results.fallbacks[0]?.to, "cold");
          assert.match(results.fallbacks[0]?.reason ?? "", /not enrolled/);
        } else {
          assert.equal(results.lane, "cold");
          assert.deepEqual(results.fallbacks, []);
        }
        await assertNothingLeft(project, "custom-html", baseDomain, ran.stack!);
      });
    }

    for (const [comment, reason] of [
      ["!testme --fast", /^warmstack: --comment refused: unknown option --fast: only `!testme` or `!testme --quick`$/m],
      ["please !testme", /^warmstack: --comment refused: the comment must be exactly `!testme` or `!testme --quick`; it contains other text$/m],
    ] as const) {
      it(`${JSON.stringify(comment)} is refused with the reason, and nothing runs`, async () => {
        const ran = await run(refusedProject, ["trigger", "--comment", comment, "--recipe", "custom-html"]);
        assert.equal(ran.exitCode, 1, describeRun(ran));
        assert.match(ran.stderr, reason);
        assert.equal(ran.stack, undefined);
        assert.equal(ran.stdout, "");
        assert.deepEqual(await runStacks(refusedProject), [], "no run stack in the backend");
        assert.deepEqual(await readdir(path.join(refusedProject.stateDir, "runs")).catch(() => []), [], "no run registration");
        assert.equal(existsSync(path.join(refusedProject.stateDir, "results")), false, "no results");
      });
    }
  });
});
