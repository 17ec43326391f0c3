import { describe, it, TestContext } from "node:test";
import assert from "node:assert/strict";
import { randomInt } from "node:crypto";
import * as path from "node:path";
import { execa, ResultPromise } from "execa";
import { snapshotInfo } from "../../infra/adapters/snapshots";
import { docker } from "../../infra/adapters/swarm";
import { stackNameForDomain } from "../../infra/naming";
import { processesMarked } from "../../runner/processes";
import { CanonicalStackFixture, storeState } from "../support/canonical-stack";
import { PulumiProject, REPO_ROOT } from "../support/pulumi-project";
import { withKeycloakBoot } from "../support/keycloak-boots";
import { keycloakWithMarker } from "../support/warm-stack";

/**
 * A kill campaign over the warm stack's own operations: each is started through the runner, killed
 * with SIGKILL of its process group at a point of its work (a snapshot being taken or restored, the
 * new version deploying, a random moment), and then one plain `warmstack up` must heal it with no
 * manual step: state matching the live system (a refresh changes nothing), no process of it left,
 * the known-good and its snapshot either the old ones or the new, and the live Keycloak's realms kept.
 */

function runner(project: PulumiProject, args: string[]): ResultPromise<{ reject: false; detached: true; all: true }> {
  return execa(process.execPath, [path.join(REPO_ROOT, "dist", "runner", "cli.js"), ...args], { env: project.env(), reject: false, detached: true, all: true });
}

type KillPoint = { name: string; reached: () => Promise<boolean> };

/** A snapshot helper of this app's store key doing `operation` (take, restore, delete) exists. */
function helper(operation: string, key: string): KillPoint {
  return {
    name: `the snapshot helper's ${operation}`,
    reached: async () => (await docker(["service", "ls", "--filter", `label=warmstack.snapshot-app=${key}`, "--filter", `label=warmstack.snapshot-helper=${operation}`, "--format", "{{.Name}}"])).trim() !== "",
  };
}

/** The app's service carries the version label of `version`: that deploy is under way. */
function deploying(stack: string, version: string): KillPoint {
  return {
    name: `the deploy of ${version}`,
    reached: async () => (await docker(["service", "ls", "--filter", `label=coop-cloud.${stack}.version=${version}`, "--format", "{{.Name}}"])).trim() !== "",
  };
}

function after(seconds: number): KillPoint {
  const at = Date.now() + seconds * 1000;
  return { name: `${seconds}s in`, reached: async () => Date.now() >= at };
}

/**
 * Starts the operation, waits for the kill point (bounded), kills its process group — its dynamic
 * provider, in a group of its own, carries on as after a host crash of the runner alone — and returns
 * whether the point was reached before the operation ended by itself.
 */
async function killAt(project: PulumiProject, args: string[], point: KillPoint): Promise<boolean> {
  const operation = runner(project, args);
  let ended = false;
  void operation.then(() => (ended = true));
  const deadline = Date.now() + 900_000;
  while (!ended && !(await point.reached())) {
    if (Date.now() >= deadline) throw new Error(`timed out after 900s waiting for ${point.name}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  // A moment more, somewhere inside that step.
  await new Promise((resolve) => setTimeout(resolve, randomInt(0, 1500)));
  const reached = !ended;
  try {
    process.kill(-operation.pid!, "SIGKILL");
  } catch {
    // It had ended.
  }
  await operation;
  return reached;
}

/** After the heal: a refresh finds nothing to change, and no process of the project is left. */
async function assertSettled(project: PulumiProject, what: string): Promise<void> {
  const refresh = await project.pulumi(["refresh", "-s", "warm", "--preview-only"]);
  assert.equal(refresh.exitCode, 0, refresh.output);
  const summary = refresh.output.slice(refresh.output.lastIndexOf("Resources:"));
  assert.match(summary, /\d+ unchanged/, `${what}: ${refresh.output}`);
  assert.doesNotMatch(summary, /to (update|delete|create)|updated|deleted|created/, `${what}: the state matches the live system\n${refresh.output}`);
  assert.deepEqual(await processesMarked(`WARMSTACK_PROJECT_DIR=${project.dir}`), [], `${what}: no process of the warm stack is left`);
}

async function healUp(project: PulumiProject, what: string) {
  const healed = await runner(project, ["up"]);
  return { exitCode: healed.exitCode, output: String(healed.all), what };
}

describe("the warm stack heals after a kill of its own operations", { concurrency: true }, () => {
  it("(a) a Keycloak upgrade with its snapshot: killed in the snapshot, then in the deploy", { timeout: 2_400_000 }, async (t: TestContext) => {
    const { fixture, stack, markerKept } = await keycloakWithMarker(t, "1.0.0+26.5.6", 300);
    for (const [to, point] of [["1.0.1+26.5.6", helper("take", stack)], ["1.1.0+26.7.3", deploying(stack, "1.1.0+26.7.3")]] as const) {
      await fixture.abra.releaseTags("keycloak", [to]);
      const { reached, healed } = await withKeycloakBoot(`(a) ${to}`, async () => ({
        reached: await killAt(fixture.project, ["up"], point),
        healed: await healUp(fixture.project, `(a) killed at ${point.name}`),
      }));
      assert.equal(healed.exitCode, 0, healed.output);
      assert.equal(await fixture.deployer().currentVersion(fixture.app("keycloak")), to, "the upgrade was carried through");
      assert.ok(await markerKept(), "the live Keycloak keeps its realms");
      await assertSettled(fixture.project, `(a) ${point.name}`);
      t.diagnostic(`a Keycloak upgrade killed at ${point.name}${reached ? "" : " (it had ended first)"}: healed by one up`);
    }
    // reap, given no Keycloak and no password, takes both from the warm stack that made it.
    const reaped = await runner(fixture.project, ["reap", "--dry-run", "--json"]);
    assert.equal(reaped.exitCode, 0, String(reaped.all));
    const report = JSON.parse(reaped.stdout) as { notChecked: string[] };
    assert.deepEqual(report.notChecked, [], "the realms of the warm stack's Keycloak were judged");
  });

  it("(b) a rollback of a broken Keycloak version: killed in the restore of its snapshot", { timeout: 2_400_000 }, async (t: TestContext) => {
    const good = "1.1.0+26.7.3";
    // 1.5.2 never passes its health check: the deploy timeout is how long the rollback waits to start.
    const { fixture, stack, markerKept } = await keycloakWithMarker(t, good, 150);
    await fixture.abra.releaseTags("keycloak", ["1.5.2+26.7.3"]);
    const point = helper("restore", stack);
    const { reached, healed } = await withKeycloakBoot("(b)", async () => ({
      reached: await killAt(fixture.project, ["up"], point),
      // The heal finishes what the killed up was doing: the rollback, which it reports (exit 1) …
      healed: await healUp(fixture.project, "(b)"),
    }));
    assert.equal(await fixture.deployer().currentVersion(fixture.app("keycloak")), good, healed.output);
    assert.ok((await fixture.alerts()).some((alert) => alert.outcome === "rolled-back" && alert.to === "1.5.2+26.7.3"), "the rollback is on record");
    assert.ok(await markerKept(), "the live Keycloak keeps its realms");
    assert.equal((await snapshotInfo(stack, { store: fixture.snapshotStore }))?.restoreCutOff, undefined, "no restore is left cut off");
    // … and the next up, holding the broken version as failed before, is green.
    const next = await healUp(fixture.project, "(b) the next up");
    assert.equal(next.exitCode, 0, next.output);
    await assertSettled(fixture.project, "(b)");
    t.diagnostic(`a Keycloak rollback killed at ${point.name}${reached ? "" : " (it had ended first)"}: healed (its rollback finished), the next up green`);
  });

  it("(c, d, e) a canonical's first seed, promotes and de-enrolment: killed at their snapshots and deploys", { timeout: 2_400_000 }, async (t: TestContext) => {
    const versions = ["1.0.0+1.0", "1.0.1+1.0", "1.1.0+1.1"];
    const fixture = await CanonicalStackFixture.create([{ recipe: "custom-html", tags: versions, knownGood: versions[0]!, deployTimeoutSeconds: 60 }]);
    t.after(() => fixture.dispose());
    const key = fixture.snapshotKey("custom-html");
    const app = fixture.app("custom-html");

    /** The known-good and its snapshot agree, with the state, and are one of the versions allowed. */
    const assertCanonical = async (allowed: readonly string[], what: string) => {
      const state = await fixture.canonical("custom-html");
      assert.ok(state && allowed.includes(state.knownGood), `${what}: the known-good ${state?.knownGood} is one of ${allowed.join(", ")}`);
      const store = await storeState(fixture.snapshotStore, key);
      assert.equal(store.sha, state.snapshotId, `${what}: the store's snapshot is the one the state records`);
      assert.equal((await snapshotInfo(key, { store: fixture.snapshotStore }))?.version, state.knownGood, `${what}: the snapshot is of the known-good`);
      assert.equal(await fixture.deployer().envVersion(app), state.knownGood, `${what}: the env file names the known-good`);
      assert.equal(await fixture.deployer().currentVersion(app), null, `${what}: idle`);
    };

    // (e) the first seed
    const seedPoint = helper("take", key);
    const seedReached = await killAt(fixture.project, ["up"], seedPoint);
    const seeded = await healUp(fixture.project, "(e)");
    assert.equal(seeded.exitCode, 0, seeded.output);
    await assertCanonical([versions[0]!], "(e)");
    await assertSettled(fixture.project, "(e)");
    t.diagnostic(`a first seed killed at ${seedPoint.name}${seedReached ? "" : " (it had ended first)"}: healed by one up`);

    // (c) promotes, killed in the restore of the known-good and in the new version's deploy
    for (const [from, to, point] of [
      [versions[0]!, versions[1]!, helper("restore", key)],
      [versions[1]!, versions[2]!, deploying(stackNameForDomain(app.domain), versions[2]!)],
    ] as const) {
      const reached = await killAt(fixture.project, ["promote", "--recipe", "custom-html", "--version", to], point);
      const healed = await healUp(fixture.project, `(c) ${point.name}`);
      assert.equal(healed.exitCode, 0, healed.output);
      await assertCanonical([from, to], `(c) ${point.name}`);
      await assertSettled(fixture.project, `(c) ${point.name}`);
      t.diagnostic(`a promote ${from} → ${to} killed at ${point.name}${reached ? "" : " (it had ended first)"}: healed by one up, known-good ${(await fixture.canonical("custom-html"))?.knownGood}`);
    }

    // (d) de-enrolment
    await fixture.enrol([]);
    const dePoint = after(randomInt(2, 6));
    const deReached = await killAt(fixture.project, ["up"], dePoint);
    const removed = await healUp(fixture.project, "(d)");
    assert.equal(removed.exitCode, 0, removed.output);
    assert.equal(await fixture.canonical("custom-html"), undefined, "(d): gone from the state");
    assert.equal(await fixture.deployer().appEnv(app), null, "(d): its env file is gone");
    assert.deepEqual((await storeState(fixture.snapshotStore, key)).entries, [], "(d): its snapshot is gone");
    await assertSettled(fixture.project, "(d)");
    t.diagnostic(`a de-enrolment killed ${dePoint.name}${deReached ? "" : " (it had ended first)"}: healed by one up`);
  });
});
