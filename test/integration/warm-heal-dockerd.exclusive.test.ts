import { describe, it, TestContext } from "node:test";
import assert from "node:assert/strict";
import * as path from "node:path";
import { execa } from "execa";
import { snapshotInfo } from "../../infra/adapters/snapshots";
import { docker } from "../../infra/adapters/swarm";
import { processesMarked } from "../../runner/processes";
import { CanonicalStackFixture, storeState, takeHelperWriting, withBallast } from "../support/canonical-stack";
import { REPO_ROOT } from "../support/pulumi-project";
import { withKeycloakBoot } from "../support/keycloak-boots";
import { eventually } from "../support/quick-runs";
import { keycloakWithMarker } from "../support/warm-stack";

/**
 * dockerd restarted (every container killed, as by a host crash) in the middle of a warm-stack
 * operation: the operation ends as it ends, and one plain `warmstack up` afterwards heals it. It
 * restarts what every other suite stands on, so it runs alone, after them (run-tests.js).
 */
function warmstack(env: Record<string, string>, args: string[]) {
  return execa(process.execPath, [path.join(REPO_ROOT, "dist", "runner", "cli.js"), ...args], { env, reject: false, all: true, timeout: 1_500_000 });
}

/** Polls a check that may throw (dockerd is away) until it holds. */
function until(what: string, reached: () => Promise<boolean>, timeoutMs: number): Promise<true> {
  return eventually(what, async () => ((await reached().catch(() => false)) ? true : undefined), timeoutMs, 200);
}

/** SIGKILL of dockerd, containerd and every shim (by the 15 characters /proc keeps of a name), then the bed's own start of them (and its proxy). */
async function restartDockerd(): Promise<void> {
  for (const program of ["dockerd", "containerd", "containerd-shim"]) await execa("pkill", ["-KILL", "-x", program], { reject: false });
  await until("dockerd to be gone", async () => (await execa("docker", ["version"], { reject: false })).exitCode !== 0, 60_000);
  const started = await execa("bash", [path.join(REPO_ROOT, "test", "bed", "setup.sh"), "docker_engine", "proxy"], { reject: false, all: true, timeout: 600_000 });
  assert.equal(started.exitCode, 0, String(started.all));
}

async function settled(fixture: { project: { pulumi(args: readonly string[]): Promise<{ exitCode: number; output: string }>; dir: string } }, what: string) {
  const refresh = await fixture.project.pulumi(["refresh", "-s", "warm", "--preview-only"]);
  assert.equal(refresh.exitCode, 0, refresh.output);
  const summary = refresh.output.slice(refresh.output.lastIndexOf("Resources:"));
  assert.doesNotMatch(summary, /to (update|delete|create)/, `${what}: the state matches the live system\n${refresh.output}`);
  assert.deepEqual(await processesMarked(`WARMSTACK_PROJECT_DIR=${fixture.project.dir}`), [], `${what}: no process left`);
}

describe("the warm stack heals after dockerd restarts in its operations", { concurrency: false }, () => {
  it("a Keycloak upgrade, dockerd restarted while the new version deploys", { timeout: 2_400_000 }, async (t: TestContext) => {
    const { fixture, stack, markerKept } = await keycloakWithMarker(t, "1.0.0+26.5.6", 300);
    const target = "1.1.0+26.7.3";
    await fixture.abra.releaseTags("keycloak", [target]);
    const healed = await withKeycloakBoot("the upgrade dockerd interrupts", async () => {
      const upgrade = warmstack(fixture.project.env(), ["up"]);
      await until(`the deploy of ${target}`, async () => (await docker(["service", "ls", "--filter", `label=coop-cloud.${stack}.version=${target}`, "--format", "{{.Name}}"])).trim() !== "", 900_000);
      await restartDockerd();
      const interrupted = await upgrade;
      t.diagnostic(`the interrupted up ended with exit ${interrupted.exitCode}`);
      return warmstack(fixture.project.env(), ["up"]);
    });
    assert.equal(healed.exitCode, 0, String(healed.all));
    assert.equal(await fixture.deployer().currentVersion(fixture.app("keycloak")), target);
    assert.ok(await markerKept(), "the live Keycloak keeps its realms");
    await settled(fixture, "Keycloak upgrade");
  });

  it("a canonical promote, dockerd restarted while its new snapshot is taken", { timeout: 2_400_000 }, async (t: TestContext) => {
    const versions = ["1.0.0+1.0", "1.0.1+1.0"];
    const fixture = await CanonicalStackFixture.create([{ recipe: "custom-html", tags: versions, knownGood: versions[0]!, deployTimeoutSeconds: 60 }]);
    t.after(() => fixture.dispose());
    // custom-html's data is the same at both versions and takes a moment to tar: 300 MB make the
    // take last long enough for dockerd to go in the middle of it, not before or after.
    await withBallast(fixture.stack("custom-html"), "content", 300);
    assert.equal((await fixture.up()).exitCode, 0);
    const key = fixture.snapshotKey("custom-html");
    const promote = warmstack(fixture.project.env(), ["promote", "--recipe", "custom-html", "--version", versions[1]!]);
    await takeHelperWriting(key, 900_000);
    await restartDockerd();
    const interrupted = await promote;
    t.diagnostic(`the interrupted promote ended with exit ${interrupted.exitCode}`);
    const healed = await warmstack(fixture.project.env(), ["up"]);
    assert.equal(healed.exitCode, 0, String(healed.all));
    const state = await fixture.canonical("custom-html");
    assert.ok(state && versions.includes(state.knownGood), `the known-good ${state?.knownGood} is the old one or the new`);
    assert.equal((await storeState(fixture.snapshotStore, key)).sha, state.snapshotId, "the store's snapshot is the one the state records");
    assert.equal((await snapshotInfo(key, { store: fixture.snapshotStore }))?.version, state.knownGood);
    assert.equal(await fixture.deployer().currentVersion(fixture.app("custom-html")), null, "idle");
    await settled(fixture, "canonical promote");
  });
});
