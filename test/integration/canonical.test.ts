import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { rm, writeFile } from "node:fs/promises";
import { execa } from "execa";
import { FileCoordination, Lease } from "../../infra/adapters/coordination";
import { restoreSnapshot } from "../../infra/adapters/snapshots";
import { localNode } from "../../infra/adapters/nodes";
import * as swarm from "../../infra/adapters/swarm";
import { waitUntil } from "../../infra/adapters/health";
import { processesMarked } from "../../runner/processes";
import { stackLocks } from "../../runner/stack-locks";
import type { RunnerSettings } from "../../runner/workspace";
import { leasedCanonicalOf } from "../../runner/warm-context";
import { assertOneSnapshot, CanonicalStackFixture, Enrolment, helpersOf, removeVolumeEventually, storeState, takeHelperWriting, treeHash, withVolumes } from "../support/canonical-stack";
import { viaProxy } from "../support/http";

/**
 * Canonicals on the bed, each test group with a warm stack of its own (its own base domain, backend
 * and snapshot store), driven by the real pulumi CLI and the `warmstack` CLI as an operator would.
 */
const HEALTH = { path: "/health" };
const V100 = "1.0.0+1.0";
const V101 = "1.0.1+1.0";
const V110 = "1.1.0+1.1";
const CRASHES = "1.5.1+1.2";
const UNHEALTHY = "1.5.2+1.2";

const fixtures: CanonicalStackFixture[] = [];
const extraVolumes: string[] = [];

async function stackWith(enrolments: readonly Enrolment[], options: { snapshotStore?: string } = {}): Promise<CanonicalStackFixture> {
  const fixture = await CanonicalStackFixture.create(enrolments, options);
  fixtures.push(fixture);
  return fixture;
}

/** The volume Swarm will attach as the recipe's `content`, created first (labelled as the stack's) and filled. */
async function prefilledContent(fixture: CanonicalStackFixture, recipe: string, script: string): Promise<string> {
  const stack = fixture.stack(recipe);
  const volume = `${stack}_content`;
  await swarm.docker(["volume", "create", "--label", `com.docker.stack.namespace=${stack}`, volume]);
  await withVolumes([volume], `cd /v/*\n${script}`);
  return volume;
}

const VARIED_FILES = String.raw`echo "setting=1" >app.conf
echo hidden >.dotfile
mkdir -p nested/deeper
echo deep >nested/deeper/file.txt
echo private >private.key; chmod 0600 private.key
printf '#!/bin/sh\necho hi\n' >run.sh; chmod 0755 run.sh
ln -s nested/deeper/file.txt link
echo owned >owned.txt; chown 1234:5678 owned.txt
head -c 100000 /dev/urandom >blob.bin`;

async function isIdle(fixture: CanonicalStackFixture, recipe: string): Promise<boolean> {
  const stack = fixture.stack(recipe);
  const [services, containers] = await Promise.all([swarm.stackServices(stack), swarm.stackContainers(stack)]);
  return services.length === 0 && containers.length === 0;
}

interface PromoteJson {
  ok: boolean;
  from: string | null;
  knownGood: string | null;
  changed: boolean;
  snapshotId?: string;
  error?: string;
}

async function promote(fixture: CanonicalStackFixture, recipe: string, version: string, extra: string[] = []) {
  const run = await fixture.runner(["promote", "--recipe", recipe, "--version", version, "--json", ...extra]);
  return { exitCode: run.exitCode, stderr: String(run.stderr), result: JSON.parse(String(run.stdout)) as PromoteJson };
}

after(async () => {
  for (const fixture of fixtures) await fixture.dispose();
  for (const volume of extraVolumes) await removeVolumeEventually(volume);
});

/** Processes started for this project's backend (the CLI, language host and provider inherit its environment). */
function processesOf(fixture: CanonicalStackFixture): Promise<number[]> {
  return processesMarked(`PULUMI_BACKEND_URL=${fixture.project.backendUrl}`);
}

describe("canonicals on the bed", { concurrency: true }, () => {
  describe("a canonical of the data app: seed, data-warm, restore, promote", { concurrency: false }, () => {
    let fixture: CanonicalStackFixture;
    let volume: string;
    let prefilled: string;
    const recipe = "custom-html";

    before(async () => {
      fixture = await stackWith([{ recipe, tags: [V100, V101, CRASHES, UNHEALTHY], knownGood: V100, deployTimeoutSeconds: 30 }]);
      volume = await prefilledContent(fixture, recipe, VARIED_FILES);
      prefilled = await treeHash([volume]);
    });

    it("enrolling seeds it at the known-good and leaves it idle, its volume kept (with the data it found) and one snapshot of it", async () => {
      const up = await fixture.up();
      assert.equal(up.exitCode, 0, up.output);
      const domain = fixture.app(recipe).domain;
      const state = await fixture.canonical(recipe);
      assert.ok(state);
      assert.equal(state.knownGood, V100);
      assert.equal(state.domain, domain);
      assert.equal(domain, `warm-custom-html.${fixture.baseDomain}`);
      assert.match(state.snapshotId, /^[0-9a-f]{64}$/);
      assert.ok(state.snapshotBytes > 100_000, `the snapshot holds the data (${state.snapshotBytes} bytes)`);
      assert.ok(Math.abs(Date.parse(state.seededAt) - Date.now()) < 300_000, state.seededAt);
      const outputs = (await fixture.outputs()).canonicals as Record<string, unknown>;
      const thisNode = (await localNode()).hostname;
      assert.deepEqual(outputs[recipe], { knownGood: V100, domain, snapshotId: state.snapshotId, snapshotBytes: state.snapshotBytes, seededAt: state.seededAt, node: thisNode });

      assert.ok(await isIdle(fixture, recipe), "undeployed after seeding");
      assert.deepEqual(await fixture.deployer().volumes(fixture.app(recipe)), [volume]);
      assert.equal(await treeHash([volume]), prefilled, "Swarm reattached the existing volume and nothing in it changed");
      const store = await storeState(fixture.snapshotStore, fixture.snapshotKey(recipe));
      assertOneSnapshot(store.entries, state.snapshotId);
      assert.equal(store.sha, state.snapshotId, "the current snapshot's content hashes to its id");
      assert.equal(store.takenAt, state.seededAt);
      const env = await fixture.deployer().appEnv(fixture.app(recipe));
      assert.equal(env?.TYPE, `${recipe}:${V100}`);
      assert.equal(env?.WARMSTACK_OWNER, "warmstack/warm");
      assert.equal(env?.WARMSTACK_NODE, thisNode, "pinned to the node its volume is on: the runner's own");
    });

    it("an up with nothing to do deploys nothing and keeps the snapshot", async () => {
      const before = await fixture.canonical(recipe);
      const up = await fixture.up();
      assert.equal(up.exitCode, 0, up.output);
      assert.match(up.output, /2 unchanged/);
      assert.deepEqual(await fixture.canonical(recipe), before);
      assert.equal((await storeState(fixture.snapshotStore, fixture.snapshotKey(recipe))).takenAt, before?.seededAt);
    });

    it("data-warm round trip: a marker written while deployed is there at the next deploy", async () => {
      const deployer = fixture.deployer();
      const app = fixture.app(recipe);
      const marker = `warm-${randomBytes(6).toString("hex")}`;
      await deployer.deploy(app, { ref: V100, health: HEALTH, timeoutMs: 120_000 });
      assert.equal((await viaProxy(app.domain, "/files/marker", "PUT", marker)).status, 204);
      await deployer.undeploy(app);
      assert.ok(await isIdle(fixture, recipe));
      await deployer.deploy(app, { ref: V100, health: HEALTH, timeoutMs: 120_000 });
      assert.deepEqual(await viaProxy(app.domain, "/files/marker"), { status: 200, body: marker });
      await deployer.undeploy(app);
    });

    it("restore round trip: changed, added and deleted files and modes come back exactly as the snapshot has them", async () => {
      await withVolumes(
        [volume],
        String.raw`cd /v/*
        echo "setting=2" >app.conf
        echo added >added.txt
        rm nested/deeper/file.txt
        chmod 0644 private.key
        rm blob.bin
        mkdir -p new-dir && echo x >new-dir/x`,
      );
      assert.notEqual(await treeHash([volume]), prefilled, "the changes show in the tree hash");
      const state = await fixture.canonical(recipe);
      const restored = await restoreSnapshot({ app: fixture.snapshotKey(recipe), volumes: [volume] }, fixture.snapshotOptions());
      assert.equal(restored.id, state?.snapshotId);
      assert.equal(await treeHash([volume]), prefilled, "content, modes, owners, links and the set of files match the snapshot");
    });

    it("promote to a newer healthy version advances the known-good and replaces the snapshot", async () => {
      const before = await fixture.canonical(recipe);
      const promoted = await promote(fixture, recipe, V101);
      assert.equal(promoted.exitCode, 0, promoted.stderr);
      assert.equal(promoted.result.ok, true, promoted.result.error);
      assert.equal(promoted.result.from, V100);
      assert.equal(promoted.result.knownGood, V101);
      const state = await fixture.canonical(recipe);
      assert.equal(state?.knownGood, V101);
      assert.equal(promoted.result.snapshotId, state?.snapshotId);
      assert.ok(Date.parse(state!.seededAt) > Date.parse(before!.seededAt), "a new snapshot was taken");
      assert.equal(await fixture.configuredKnownGood(recipe), V101);
      const store = await storeState(fixture.snapshotStore, fixture.snapshotKey(recipe));
      assertOneSnapshot(store.entries, state!.snapshotId, "exactly one snapshot");
      assert.equal(store.sha, state!.snapshotId);
      assert.equal(store.takenAt, state!.seededAt, "the current snapshot is the new one");
      assert.equal(await fixture.deployer().envVersion(fixture.app(recipe)), V101);
      assert.ok(await isIdle(fixture, recipe));
      assert.equal(await treeHash([volume]), prefilled, "the data is the known-good's");
    });

    for (const [broken, why] of [
      [CRASHES, /non-zero exit \(1\)|gave up/],
      [UNHEALTHY, /health \/health: HTTP 503/],
    ] as const) {
      it(`promote to a broken version (${broken}) keeps the known-good and its snapshot byte-identical and says why`, async () => {
        const state = await fixture.canonical(recipe);
        const store = await storeState(fixture.snapshotStore, fixture.snapshotKey(recipe));
        const tree = await treeHash([volume]);
        const promoted = await promote(fixture, recipe, broken);
        assert.equal(promoted.exitCode, 1, promoted.stderr);
        assert.equal(promoted.result.ok, false);
        assert.equal(promoted.result.knownGood, V101);
        assert.match(promoted.result.error ?? "", new RegExp(`${broken.replace(/[.+]/g, "\\$&")} did not become the known-good`));
        assert.match(promoted.result.error ?? "", why);
        assert.match(promoted.result.error ?? "", /The known-good stays 1\.0\.1\+1\.0/);

        assert.deepEqual(await fixture.canonical(recipe), state, "state unchanged");
        assert.equal(await fixture.configuredKnownGood(recipe), V101, "the config is put back");
        assert.deepEqual(await storeState(fixture.snapshotStore, fixture.snapshotKey(recipe)), store, "the snapshot is byte-identical");
        assert.equal(await treeHash([volume]), tree, "the volume holds the known-good's data again");
        assert.equal(await fixture.deployer().envVersion(fixture.app(recipe)), V101, "TYPE names the known-good again");
        assert.ok(await isIdle(fixture, recipe), "the broken attempt is undeployed");
      });
    }

    it("bad promotes are refused with a clear error and change nothing", async () => {
      const state = await fixture.canonical(recipe);
      for (const [args, message] of [
        [["--recipe", "nextcloud", "--version", V101], /recipe nextcloud is not enrolled in the warm stack \(enrolled: custom-html\)/],
        [["--recipe", recipe, "--version", "9.9.9+1.0"], /9\.9\.9\+1\.0 is not a released version of custom-html \(released: 1\.0\.0\+1\.0, 1\.0\.1\+1\.0, 1\.5\.1\+1\.2, 1\.5\.2\+1\.2\)/],
        [["--recipe", recipe, "--version", V100], /1\.0\.0\+1\.0 is older than custom-html's known-good 1\.0\.1\+1\.0/],
        [["--recipe", recipe, "--version", "latest"], /--version: is not a recipe version/],
        [["--recipe", "../etc", "--version", V101], /--recipe: is not a valid recipe name/],
      ] as const) {
        const run = await fixture.runner(["promote", ...args]);
        assert.equal(run.exitCode, 1, `${args.join(" ")}: ${run.stderr}`);
        assert.match(String(run.stderr), message);
      }
      assert.deepEqual(await fixture.canonical(recipe), state);
      assert.equal(await fixture.configuredKnownGood(recipe), V101);
      assert.ok(await isIdle(fixture, recipe));
      const current = await fixture.runner(["promote", "--recipe", recipe, "--version", V101]);
      assert.equal(current.exitCode, 0, current.stderr);
      assert.match(String(current.stdout), /1\.0\.1\+1\.0 already is the known-good; nothing changed/);
    });

    it("an older known-good set by hand is refused by the canonical itself, changing nothing", async () => {
      const state = await fixture.canonical(recipe);
      const tree = await treeHash([volume]);
      await fixture.enrol([{ recipe, tags: [], knownGood: V100, deployTimeoutSeconds: 30 }]);
      const up = await fixture.up();
      assert.notEqual(up.exitCode, 0, up.output);
      assert.match(up.output, /refusing to move the known-good back from 1\.0\.1\+1\.0 to 1\.0\.0\+1\.0/);
      assert.deepEqual(await fixture.canonical(recipe), state);
      assert.equal(await treeHash([volume]), tree);
      assert.equal(await fixture.deployer().envVersion(fixture.app(recipe)), V101);
      assert.ok(await isIdle(fixture, recipe));
      await fixture.enrol([{ recipe, tags: [], knownGood: V101, deployTimeoutSeconds: 30 }]);
    });

    it("status shows the canonical's known-good, snapshot size and age, idle or leased", async () => {
      const state = await fixture.canonical(recipe);
      const status = async () => {
        const run = await fixture.runner(["status", "--json"]);
        assert.equal(run.exitCode, 0, run.stderr);
        return JSON.parse(String(run.stdout)) as { canonicals: Record<string, unknown>[]; warmApps: unknown[]; holds: unknown[]; alerts: unknown[] };
      };
      const idle = await status();
      assert.equal(idle.canonicals.length, 1);
      const [canonical] = idle.canonicals;
      assert.equal(canonical!.recipe, recipe);
      assert.equal(canonical!.knownGood, V101);
      assert.equal(canonical!.snapshotId, state?.snapshotId);
      assert.equal(canonical!.snapshotBytes, state?.snapshotBytes);
      assert.ok(typeof canonical!.snapshotAgeSeconds === "number" && canonical!.snapshotAgeSeconds >= 0 && canonical!.snapshotAgeSeconds < 3600);
      assert.equal(canonical!.state, "idle");
      assert.deepEqual([idle.warmApps, idle.holds, idle.alerts], [[], [], []]);

      // As a crashed promote can leave it: deployed, with nobody holding the lease.
      await fixture.deployer().deploy(fixture.app(recipe), { ref: V101, health: HEALTH, timeoutMs: 60_000, force: true });
      try {
        const deployed = await status();
        assert.deepEqual([deployed.canonicals[0]!.state, deployed.canonicals[0]!.deployedVersion], ["deployed", V101]);
        assert.match(String((await fixture.runner(["status"])).stdout), /DEPLOYED at 1\.0\.1\+1\.0 without a lease: quick runs will not borrow it/);
      } finally {
        await fixture.deployer().undeploy(fixture.app(recipe));
      }

      const holder = "run-custom-html-a1b2c3";
      const borrowed = leasedCanonicalOf(state as unknown as Record<string, unknown>);
      assert.ok(borrowed, "the seeded canonical's state is what a quick run borrows");
      assert.equal((await new FileCoordination(fixture.project.stateDir).tryTakeLease(recipe, holder, borrowed)).taken, true);
      const leased = await status();
      assert.equal(leased.canonicals[0]!.state, "leased");
      assert.equal((leased.canonicals[0]!.lease as Lease).stack, holder);
      const text = await fixture.runner(["status"]);
      assert.match(String(text.stdout), new RegExp(`custom-html \\(${fixture.app(recipe).domain.replace(/\./g, "\\.")}\\): known-good 1\\.0\\.1\\+1\\.0, snapshot \\d+(\\.\\d)? KiB taken \\d+[smh] ago \\([0-9a-f]{12}\\), leased`));
      // A lease the adapter cannot read still counts as held: a quick run may be using the canonical.
      await writeFile(new FileCoordination(fixture.project.stateDir).leaseFile(recipe), "{half a lease");
      const unreadable = await status();
      assert.equal(unreadable.canonicals[0]!.state, "leased");
      assert.match(String(unreadable.canonicals[0]!.lease), /^unreadable lease: .* is not JSON/);
      await rm(new FileCoordination(fixture.project.stateDir).leaseFile(recipe));
    });
  });

  describe("a canonical and a SIGKILL during its snapshot step", { concurrency: false }, () => {
    it("keeps the previous snapshot intact, and the next up completes the promotion", async () => {
      const recipe = "custom-html";
      const fixture = await stackWith([{ recipe, tags: [V100, V101], knownGood: V100 }]);
      // Big enough that writing the new snapshot takes seconds: the kill lands while it is written.
      const volume = await prefilledContent(fixture, recipe, "head -c 500M /dev/urandom >big.bin\necho small >small.txt");
      const prefilled = await treeHash([volume]);
      const seed = await fixture.up();
      assert.equal(seed.exitCode, 0, seed.output);
      const previous = await fixture.canonical(recipe);
      const previousStore = await storeState(fixture.snapshotStore, fixture.snapshotKey(recipe));
      assert.equal(previousStore.sha, previous?.snapshotId);

      await fixture.enrol([{ recipe, tags: [], knownGood: V101 }]);
      const key = fixture.snapshotKey(recipe);
      // Its own process group, as a runner runs the engine: the CLI, language host and provider die together.
      const up = execa("pulumi", ["up", "-s", "warm", "--yes", "--skip-preview", "--non-interactive"], {
        cwd: fixture.project.dir,
        env: fixture.project.env(),
        detached: true,
        reject: false,
        all: true,
      });
      // Frozen while it writes the new tar, so the kill lands mid-write however loaded the machine is.
      const helper = await takeHelperWriting(key);
      await swarm.docker(["pause", helper.container]);
      // Pulumi starts the language host and the dynamic provider in process groups of their own: a
      // crash of the runner is the end of every process of this run, not only of the CLI's group.
      const engine = await processesOf(fixture);
      assert.ok(engine.length >= 3, `the CLI, language host and provider run (${engine.join(" ")})`);
      for (const target of [-up.pid!, ...engine]) {
        try {
          process.kill(target, "SIGKILL");
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== "ESRCH") throw error;
        }
      }
      const killed = await up;
      assert.equal(killed.signal, "SIGKILL", String(killed.all));
      // The helper is a swarm service and outlives the runner; a crash of the node takes it down too,
      // mid-write: the case the atomic switch of `current` exists for.
      const helpers = await helpersOf(key, "take");
      assert.deepEqual(helpers, [helper.name], "the kill landed during the snapshot step");
      await swarm.docker(["unpause", helper.container]);
      await swarm.docker(["kill", helper.container]);
      await swarm.docker(["service", "rm", ...helpers]);

      const afterKill = await storeState(fixture.snapshotStore, key);
      assert.equal(afterKill.current, previousStore.current, "current still names the previous snapshot");
      assert.equal(afterKill.sha, previous?.snapshotId, "and it is complete: its content hashes to its id");
      assert.equal(afterKill.takenAt, previousStore.takenAt);
      assert.ok(afterKill.entries.some((entry) => entry.startsWith(".partial-")), `the new snapshot was cut off mid-write: ${afterKill.entries.join(" ")}`);
      assert.deepEqual(await processesOf(fixture), [], "no engine process outlived the kill");
      assert.equal((await new FileCoordination(fixture.project.stateDir).readLease(recipe))?.stack, "warm", "the killed up's hold on the canonical is left behind");

      const locked = await fixture.up();
      assert.notEqual(locked.exitCode, 0);
      assert.match(locked.output, /the stack is currently locked/);
      await fixture.cli(["cancel", "-s", "warm", "--yes"]);
      await fixture.cli(["refresh", "-s", "warm", "--yes", "--skip-preview", "--clear-pending-creates"]);
      const next = await fixture.up();
      assert.equal(next.exitCode, 0, next.output);

      const state = await fixture.canonical(recipe);
      assert.equal(state?.knownGood, V101);
      assert.ok(Date.parse(state!.seededAt) > Date.parse(previous!.seededAt));
      const store = await storeState(fixture.snapshotStore, key);
      assertOneSnapshot(store.entries, state!.snapshotId, "leftovers are gone");
      assert.equal(store.sha, state!.snapshotId);
      assert.equal(store.takenAt, state!.seededAt);
      assert.equal(await treeHash([volume]), prefilled);
      assert.equal(await fixture.deployer().envVersion(fixture.app(recipe)), V101);
      assert.ok(await isIdle(fixture, recipe));
      assert.equal(await new FileCoordination(fixture.project.stateDir).readLease(recipe), null, "the next up adopted the left hold and gave it back");
    });
  });

  describe("two canonicals: queued promotes and de-enrolling one", { concurrency: false }, () => {
    let fixture: CanonicalStackFixture;
    const unrelated = `wstest-unrelated-${randomBytes(3).toString("hex")}`;

    before(async () => {
      fixture = await stackWith([
        { recipe: "custom-html", tags: [V100, V101, V110], knownGood: V100 },
        // sso-app's first boot takes 150 s (the cost a canonical saves quick runs).
        { recipe: "sso-app", tags: [V100, V110], knownGood: V100, deployTimeoutSeconds: 300 },
      ]);
      await swarm.docker(["volume", "create", unrelated]);
      extraVolumes.push(unrelated);
      await withVolumes([unrelated], "cd /v/* && echo keep >keep.txt");
      const up = await fixture.up();
      assert.equal(up.exitCode, 0, up.output);
    });

    /**
     * A real operation holding the warm stack's lock for as long as the test wants: a plain up that
     * promotes `recipe` while the test holds its lease as a quick run would, so the up waits inside
     * the Canonical's update with the stack locked.
     */
    async function blockedUp(recipe: string, to: string) {
      const holder = "run-custom-html-b10c6d";
      const borrowed = leasedCanonicalOf((await fixture.canonical(recipe)) as unknown as Record<string, unknown>);
      assert.ok(borrowed);
      assert.equal((await new FileCoordination(fixture.project.stateDir).tryTakeLease(recipe, holder, borrowed)).taken, true);
      await fixture.setConfig("leaseWaitSeconds", "900");
      await fixture.setKnownGood(recipe, to);
      const done = fixture.up();
      const lock = await waitUntil(
        "the blocked up to hold the warm stack's lock",
        async () => {
          const live = (await stackLocks({ backendUrl: fixture.project.backendUrl } as RunnerSettings, "warm")).find((entry) => entry.owner === "live");
          return live ? { done: true, value: live } : { done: false, state: "no live lock yet" };
        },
        { timeoutMs: 300_000, intervalMs: 500 },
      );
      return { lock, done, release: () => new FileCoordination(fixture.project.stateDir).releaseLease(recipe, holder) };
    }

    it("a promote queues on the warm stack's lock and gives up at its deadline, naming the owner and changing nothing", async () => {
      const ssoBefore = await fixture.canonical("sso-app");
      const blocker = await blockedUp("custom-html", V101);
      try {
        const second = await promote(fixture, "sso-app", V110, ["--lock-timeout", "3"]);
        assert.equal(second.exitCode, 1, second.stderr);
        assert.match(second.result.error ?? "", new RegExp(`the warm stack stayed locked for more than 3s by pid ${blocker.lock.pid} on \\S+`));
        assert.equal(await fixture.configuredKnownGood("sso-app"), V100, "its config is put back");
      } finally {
        await blocker.release();
        await blocker.done;
      }
      const landed = await blocker.done;
      assert.equal(landed.exitCode, 0, landed.output);
      assert.equal((await fixture.canonical("custom-html"))?.knownGood, V101);
      assert.deepEqual(await fixture.canonical("sso-app"), ssoBefore);
    });

    it("concurrent promotes queue behind a running operation, then both land, one after the other", async () => {
      const blocker = await blockedUp("custom-html", V110);
      const runs = [fixture.runner(["promote", "--recipe", "custom-html", "--version", V110]), fixture.runner(["promote", "--recipe", "sso-app", "--version", V110])];
      const said = runs.map(() => "");
      runs.forEach((run, index) => run.all?.on("data", (chunk: Buffer) => (said[index] += chunk.toString())));
      try {
        await waitUntil(
          "the promotes to queue: one on the canonical's lease, one on the warm stack's lock",
          async () => (/is lent to run-custom-html-b10c6d; waiting/.test(said[0]!) && /the warm stack is locked by pid \d+ .*; waiting for it/.test(said[1]!) ? { done: true, value: undefined } : { done: false, state: said.map((text) => text.trim().split("\n").at(-1) ?? "").join(" | ") }),
          { timeoutMs: 300_000, intervalMs: 500 },
        );
      } finally {
        await blocker.release();
        // Whatever happened above, the next test must not find the stack still locked by it.
        await blocker.done;
      }
      assert.equal((await blocker.done).exitCode, 0);
      for (const run of await Promise.all(runs)) assert.equal(run.exitCode, 0, String(run.all));
      for (const recipe of ["custom-html", "sso-app"]) {
        assert.equal((await fixture.canonical(recipe))?.knownGood, V110, recipe);
        assert.equal(await fixture.configuredKnownGood(recipe), V110, recipe);
        assert.ok(await isIdle(fixture, recipe), recipe);
      }
    });

    it("de-enrolling removes exactly that canonical's app, volumes and snapshot", async () => {
      const deployer = fixture.deployer();
      const sso = { state: await fixture.canonical("sso-app"), store: await storeState(fixture.snapshotStore, fixture.snapshotKey("sso-app")), volumes: await deployer.volumes(fixture.app("sso-app")) };
      const ssoTree = await treeHash(sso.volumes);
      assert.equal(sso.volumes.length, 1);
      const customVolumes = await deployer.volumes(fixture.app("custom-html"));
      assert.equal(customVolumes.length, 1);

      await fixture.enrol([{ recipe: "sso-app", tags: [], knownGood: V110, deployTimeoutSeconds: 300 }]);
      const up = await fixture.up();
      assert.equal(up.exitCode, 0, up.output);
      assert.match(up.output, /1 deleted/);

      assert.equal(await deployer.appEnv(fixture.app("custom-html")), null, "its env file is gone");
      assert.deepEqual(await deployer.volumes(fixture.app("custom-html")), []);
      assert.equal(await swarm.volumeExists(customVolumes[0]!), false);
      assert.deepEqual((await storeState(fixture.snapshotStore, fixture.snapshotKey("custom-html"))).entries, [], "its snapshot is gone");
      assert.equal(await fixture.canonical("custom-html"), undefined);

      assert.deepEqual(await fixture.canonical("sso-app"), sso.state, "the other canonical is untouched");
      assert.deepEqual(await storeState(fixture.snapshotStore, fixture.snapshotKey("sso-app")), sso.store);
      assert.deepEqual(await deployer.volumes(fixture.app("sso-app")), sso.volumes);
      assert.equal(await treeHash(sso.volumes), ssoTree);
      assert.notEqual(await deployer.appEnv(fixture.app("sso-app")), null);
      assert.equal((await withVolumes([unrelated], "cat /v/*/keep.txt", { readOnly: true })).trim(), "keep", "unrelated volumes are untouched");
      assert.deepEqual(Object.keys((await fixture.outputs()).canonicals as object), ["sso-app"]);
    });

    it("a new snapshot store moves the known-good snapshot, byte-identical, and empties the old one", async () => {
      const state = await fixture.canonical("sso-app");
      const oldStore = fixture.snapshotStore;
      const newStore = `wstest_canon_moved_${randomBytes(3).toString("hex")}`;
      extraVolumes.push(newStore);
      const volumes = await fixture.deployer().volumes(fixture.app("sso-app"));
      const tree = await treeHash(volumes);
      await fixture.setConfig("snapshotStore", newStore);
      const up = await fixture.up();
      assert.equal(up.exitCode, 0, up.output);
      const moved = await fixture.canonical("sso-app");
      assert.equal(moved?.knownGood, state?.knownGood);
      assert.equal(moved?.snapshotId, state?.snapshotId, "the same content gives the same snapshot");
      const store = await storeState(newStore, fixture.snapshotKey("sso-app"));
      assert.equal(store.sha, state?.snapshotId);
      assert.equal(store.takenAt, moved?.seededAt);
      assert.deepEqual((await storeState(oldStore, fixture.snapshotKey("sso-app"))).entries, [], "the old store holds nothing of it");
      assert.equal(await treeHash(volumes), tree);
      assert.ok(await isIdle(fixture, "sso-app"));
    });
  });

  describe("a canonical lent to a quick run: a change waits for it", { concurrency: false }, () => {
    it("a plain up that promotes waits while the lease is held and lands once it is freed; past leaseWaitSeconds it fails, changing nothing", async () => {
      const recipe = "custom-html";
      const fixture = await stackWith([{ recipe, tags: [V100, V101], knownGood: V100, deployTimeoutSeconds: 30 }]);
      const seeded = await fixture.up();
      assert.equal(seeded.exitCode, 0, seeded.output);
      const state = await fixture.canonical(recipe);
      const store = await storeState(fixture.snapshotStore, fixture.snapshotKey(recipe));
      const holder = "run-custom-html-c0ffee";
      const borrowed = leasedCanonicalOf(state as unknown as Record<string, unknown>);
      assert.ok(borrowed);
      assert.equal((await new FileCoordination(fixture.project.stateDir).tryTakeLease(recipe, holder, borrowed)).taken, true);
      const unchanged = async (what: string) => {
        assert.deepEqual(await fixture.canonical(recipe), state, `${what}: state`);
        assert.deepEqual(await storeState(fixture.snapshotStore, fixture.snapshotKey(recipe)), store, `${what}: snapshot`);
        assert.equal(await fixture.deployer().envVersion(fixture.app(recipe)), V100, `${what}: TYPE`);
        assert.equal((await new FileCoordination(fixture.project.stateDir).readLease(recipe))?.stack, holder, `${what}: the quick run keeps its lease`);
      };

      await fixture.setConfig("leaseWaitSeconds", "3");
      await fixture.enrol([{ recipe, tags: [], knownGood: V101, deployTimeoutSeconds: 30 }]);
      const timedOut = await fixture.up();
      assert.notEqual(timedOut.exitCode, 0, timedOut.output);
      assert.match(timedOut.output, /canonical custom-html: a quick run kept it for more than 3s \(held by run-custom-html-c0ffee since [^)]+\); nothing was changed/);
      await unchanged("past the deadline");

      await fixture.setConfig("leaseWaitSeconds", "300");
      const up = fixture.up();
      // Long enough for an unguarded promote to have deployed the new version already.
      const watchUntil = Date.now() + 30_000;
      while (Date.now() < watchUntil) {
        assert.ok(await isIdle(fixture, recipe), "nothing is deployed on the lent canonical's domain by the warm stack");
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
      await unchanged("while lent");
      assert.equal(await new FileCoordination(fixture.project.stateDir).releaseLease(recipe, holder), true);
      const landed = await up;
      assert.equal(landed.exitCode, 0, landed.output);
      assert.equal((await fixture.canonical(recipe))?.knownGood, V101);
      assert.equal(await fixture.deployer().envVersion(fixture.app(recipe)), V101);
      assert.equal(await new FileCoordination(fixture.project.stateDir).readLease(recipe), null, "the warm stack gave its lease back");
      assert.ok(await isIdle(fixture, recipe));
    });
  });

  describe("enrolling bad input: a clear error, nothing changed", { concurrency: false }, () => {
    it("an unreleased known-good, an unknown recipe or a bad recipe name stop the program, naming the config key", async () => {
      const recipe = "custom-html";
      const fixture = await stackWith([{ recipe, tags: [V100, V101], knownGood: "9.9.9+1.0" }]);
      const cases: [Enrolment[] | Record<string, unknown>, RegExp][] = [
        [[], /warmstack:canonicals\.custom-html\.knownGood: 9\.9\.9\+1\.0 is not a released version of custom-html \(released: 1\.0\.0\+1\.0, 1\.0\.1\+1\.0\)/],
        [[{ recipe: "nextcloud", tags: [], knownGood: V100 }], /warmstack:canonicals\.nextcloud: unknown recipe: there is no checkout at /],
        [{ Custom_HTML: { knownGood: V100, health: HEALTH } }, /warmstack:canonicals\.Custom_HTML: is not a valid recipe name/],
      ];
      for (const [enrolment, message] of cases) {
        if (Array.isArray(enrolment)) {
          if (enrolment.length > 0) await fixture.enrol(enrolment);
        } else {
          await fixture.setConfig("canonicals", JSON.stringify(enrolment));
        }
        const up = await fixture.up();
        assert.notEqual(up.exitCode, 0, up.output);
        assert.match(up.output, message);
      }
      assert.equal(await fixture.deployer().appEnv(fixture.app(recipe)), null, "no app was created");
      assert.deepEqual(await fixture.deployer().volumes(fixture.app(recipe)), []);
      assert.equal(await fixture.canonical(recipe), undefined);
      assert.equal(await swarm.volumeExists(fixture.snapshotStore), false, "no snapshot was taken");
    });

    it("a node that is no hostname, or not in the swarm: refused naming it, nothing created", async () => {
      const recipe = "custom-html";
      const fixture = await stackWith([{ recipe, tags: [V100], knownGood: V100, node: "a b" }]);
      const malformed = await fixture.up();
      assert.notEqual(malformed.exitCode, 0, malformed.output);
      assert.match(malformed.output, /warmstack:canonicals\.custom-html\.node: is not a swarm node hostname/);
      await fixture.enrol([{ recipe, tags: [V100], knownGood: V100, node: "no-such-node" }]);
      const absent = await fixture.up();
      assert.notEqual(absent.exitCode, 0, absent.output);
      assert.match(absent.output, /swarm node no-such-node is not in the swarm \(its nodes: \S+\)/);
      assert.equal(await fixture.deployer().appEnv(fixture.app(recipe)), null, "no app was created");
      assert.equal(await fixture.canonical(recipe), undefined);
      assert.equal(await swarm.volumeExists(fixture.snapshotStore), false, "no snapshot was taken");
    });

    it("a snapshot store without space fails the seed, saying so, and leaves the data and the store as they were", async () => {
      const recipe = "custom-html";
      const store = `wstest_canon_tiny_${randomBytes(3).toString("hex")}`;
      await swarm.docker(["volume", "create", "--driver", "local", "--opt", "type=tmpfs", "--opt", "device=tmpfs", "--opt", "o=size=256k", store]);
      const fixture = await stackWith([{ recipe, tags: [V100], knownGood: V100 }], { snapshotStore: store });
      const volume = await prefilledContent(fixture, recipe, "head -c 2M /dev/urandom >data.bin");
      const tree = await treeHash([volume]);
      const up = await fixture.up();
      assert.notEqual(up.exitCode, 0, up.output);
      assert.match(up.output, /not enough free disk for a snapshot of app \S+ in store wstest_canon_tiny_\w+/);
      assert.equal(await fixture.canonical(recipe), undefined);
      assert.equal((await storeState(store, fixture.snapshotKey(recipe))).current, undefined, "no snapshot");
      assert.equal(await treeHash([volume]), tree, "the data is untouched");
      assert.ok(await isIdle(fixture, recipe), "the seed attempt is undeployed");
    });
  });
});
