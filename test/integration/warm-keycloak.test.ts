import { describe, it, TestContext } from "node:test";
import assert from "node:assert/strict";
import { snapshotInfo, takeSnapshot } from "../../infra/adapters/snapshots";
import { docker } from "../../infra/adapters/swarm";
import { stackNameForDomain } from "../../infra/naming";
import { keycloakAdmin, realmExists } from "../support/keycloak-admin";
import { bootedKeycloak } from "../support/warm-stack";

/**
 * The warm Keycloak (stateful) through plain `pulumi up -s warm`: a real upgrade with a database
 * migration (26.5.6 → 26.7.3), and every way an upgrade can fail, each ending on the previous
 * version with its data (a marker realm) intact.
 */
const BASE = "1.0.0+26.5.6";
/** Each test's Keycloak goes as soon as the test ends: idle Keycloaks still cost memory and CPU. */
async function warmKeycloakWithMarker(t: TestContext, initialTags: readonly string[], deployTimeoutSeconds?: number) {
  const { fixture, firstUp } = await bootedKeycloak(t, initialTags, deployTimeoutSeconds);
  const appSecrets = (await fixture.resourceOutputs("keycloak", true)).appSecrets as Record<string, string>;
  const password = appSecrets.admin_password!;
  assert.ok(password && password.length >= 20, "an admin password was generated");
  const admin = await keycloakAdmin(fixture.domains.keycloak!, password);
  await admin.realms.create({ realm: "marker", enabled: true });
  return { fixture, password, first: firstUp };
}

// Their boots take the bed-wide boot slots (support/keycloak-boots.ts) one up at a time; the slowest
// path (a health check that never passes) starts first.
describe("warm Keycloak", { concurrency: 3 }, () => {
  for (const broken of [
    // The health check never passes: its deploy timeout is the whole wait, and a boot takes seconds.
    { tag: "1.5.2+26.7.3", path: "deploys but fails health", reason: /\/realms\/master: HTTP 404|timed out/, deployTimeoutSeconds: 150 },
    { tag: "1.5.0+26.7.3", path: "target fails validation", reason: /undeclared_secret/ },
    { tag: "1.5.1+26.7.3", path: "deploy does not converge", reason: /gave up|timed out/ },
  ]) {
    it(`rolls back when the ${broken.path}, restoring the pre-upgrade snapshot`, async (t) => {
      const { fixture, password } = await warmKeycloakWithMarker(t, [BASE], broken.deployTimeoutSeconds);
      const before = await fixture.resourceOutputs("keycloak");
      await fixture.abra.releaseTags("keycloak", [broken.tag]);
      const up = await fixture.up();
      assert.notEqual(up.exitCode, 0, "a rolled-back upgrade fails the run loudly");

      assert.equal(await fixture.deployer().currentVersion(fixture.app("keycloak")), BASE);
      assert.ok(await realmExists(await keycloakAdmin(fixture.domains.keycloak!, password), "marker"), "marker realm intact");
      const after = await fixture.resourceOutputs("keycloak");
      assert.equal(after.lastGood, before.lastGood, "lastGood unchanged");
      assert.equal(after.rolledBack, true);
      const alerts = (await fixture.alerts()).filter((alert) => alert.outcome !== "upgraded");
      assert.equal(alerts.length, 1, JSON.stringify(alerts));
      assert.equal(alerts[0]!.outcome, "rolled-back");
      assert.equal(alerts[0]!.to, broken.tag);
      assert.match(alerts[0]!.reason, broken.reason);
    });
  }

  it("upgrades 26.5.6 → 26.7.3 through plain pulumi up, keeping its data; a second up restarts nothing; no secret leaks", async (t) => {
    const { fixture, password, first } = await warmKeycloakWithMarker(t, [BASE]);
    const before = await fixture.resourceOutputs("keycloak");
    assert.equal(before.lastGood, BASE);

    await fixture.abra.releaseTags("keycloak", ["1.1.0+26.7.3"]);
    const preview = await fixture.preview();
    assert.equal(preview.exitCode, 0, preview.output);
    assert.match(preview.output, /~ .*keycloak.*update|1 to update/);
    assert.equal(await fixture.deployer().currentVersion(fixture.app("keycloak")), BASE, "a preview deploys nothing");

    const up = await fixture.up();
    assert.equal(up.exitCode, 0, up.output);
    assert.equal(await fixture.deployer().currentVersion(fixture.app("keycloak")), "1.1.0+26.7.3");
    const after = await fixture.resourceOutputs("keycloak");
    assert.equal(after.lastGood, "1.1.0+26.7.3", "lastGood advances");
    assert.equal(after.rolledBack, false);
    assert.ok(await realmExists(await keycloakAdmin(fixture.domains.keycloak!, password), "marker"), "the marker realm survived the upgrade");
    const upgraded = (await fixture.alerts()).find((alert) => alert.outcome === "upgraded");
    assert.equal(upgraded?.to, "1.1.0+26.7.3");

    const containers = await fixture.containerIds("keycloak");
    const again = await fixture.up();
    assert.equal(again.exitCode, 0, again.output);
    assert.deepEqual(await fixture.containerIds("keycloak"), containers, "an up with nothing to do restarts nothing");

    const everything = [first, preview.output, up.output, again.output, JSON.stringify(await fixture.alerts()), await fixture.stateText()].join("\n");
    assert.equal(everything.includes(password), false, "the admin password appears in no output, alert or state file");
    assert.equal(everything.includes("test-bed-passphrase"), false, "nor does the state passphrase");
  });

  it("a rollback that itself fails alerts loudly and leaves the snapshot untouched", async (t) => {
    const { fixture } = await warmKeycloakWithMarker(t, [BASE]);
    await fixture.abra.releaseTags("keycloak", ["1.5.0+26.7.3"]);
    // The previous version cannot be deployed again: its tag is gone from the recipe.
    await fixture.abra.keepOnlyTags("keycloak", ["1.5.0+26.7.3"]);
    const up = await fixture.up();
    assert.notEqual(up.exitCode, 0);
    assert.match(up.output, /ROLLBACK FAILED/);
    const alerts = (await fixture.alerts()).filter((alert) => alert.outcome === "rollback-failed");
    assert.equal(alerts.length, 1);
    assert.equal(alerts[0]!.severity, "critical");

    const app = stackNameForDomain(fixture.domains.keycloak!);
    const snapshot = await snapshotInfo(app, { store: fixture.snapshotStore });
    assert.ok(snapshot, "the pre-upgrade snapshot is still there");
    // The volumes were restored from it before the redeploy failed: a fresh snapshot of them (in
    // another store) must carry the same content hash, so the kept one is the pre-upgrade data.
    const verifyStore = `${fixture.snapshotStore}_verify`;
    try {
      const volumes = await fixture.deployer().volumes(fixture.app("keycloak"));
      const fresh = await takeSnapshot({ app, volumes }, { store: verifyStore });
      assert.equal(fresh.id, snapshot.id);
    } finally {
      await docker(["volume", "rm", "-f", verifyStore]).catch(() => undefined);
    }
    const state = await fixture.resourceOutputs("keycloak");
    assert.equal(state.lastGood, BASE, "the failed update recorded nothing new");
  });
});
