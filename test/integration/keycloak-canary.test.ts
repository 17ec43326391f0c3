import { describe, it, TestContext } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readdir } from "node:fs/promises";
import * as path from "node:path";
import { docker } from "../../infra/adapters/swarm";
import { processesMarked } from "../../runner/processes";
import { AbraDir } from "../support/abra-dir";
import { bed } from "../support/bed";
import { catalogueWithSources } from "../support/catalogues";
import { keycloakAdmin } from "../support/keycloak-admin";
import { withKeycloakBoot } from "../support/keycloak-boots";
import { leftovers, NOTHING_LEFT, reapReport, warmstack } from "../support/runs";
import { keycloakWithMarker } from "../support/warm-stack";

/**
 * The shared Keycloak's canary on the bed, through the runner as an operator drives it: before the
 * live Keycloak moves, a cold Keycloak at the new version boots on a copy of the live data, and the
 * catalogue's canary recipe (sso-app) runs a whole cold run against it. A version whose OpenID
 * Connect endpoints are broken while its health path answers 200 (keycloak 1.6.0, broken on purpose)
 * is held; a good one (1.0.0 → 1.1.0, Keycloak 26.5.6 → 26.7.3 with its schema migration) goes on.
 */
const BROKEN_OIDC = "1.6.0+26.7.3";

/**
 * A warm Keycloak with a marker realm, the catalogue's sso-app a canary, and a base domain of its own:
 * its canaries' and their runs' domains are told apart from those of the tests running beside it.
 */
async function warmKeycloakWithCanary(t: TestContext, initialTag: string) {
  const booted = await keycloakWithMarker(t, initialTag, 300);
  const baseDomain = `cn${randomBytes(3).toString("hex")}.${bed().domain}`;
  await booted.fixture.cli(["config", "set", "-s", "warm", "warmstack:baseDomain", baseDomain]);
  // sso-app's newest tag (1.1.1) is broken on purpose: the canary runs its last good release.
  const ssoApp = await AbraDir.create(["sso-app"]);
  t.after(() => ssoApp.dispose());
  await ssoApp.keepOnlyTags("sso-app", ["1.0.0+1.0", "1.1.0+1.1"]);
  booted.fixture.project.catalogue = await catalogueWithSources(
    booted.fixture.abra.root,
    { keycloak: booted.fixture.abra.remote("keycloak"), "sso-app": ssoApp.remote("sso-app") },
    (recipes) => {
      recipes["sso-app"]!.canary = true;
    },
  );
  return { ...booted, baseDomain };
}

/** A warm operation through the runner; one that may boot Keycloaks takes a bed boot slot. */
async function operate(t: TestContext, fixture: { project: Parameters<typeof warmstack>[0] }, args: string[]) {
  const ran = await withKeycloakBoot(`warmstack ${args.join(" ")}`, async () => warmstack(fixture.project, args));
  t.diagnostic(`warmstack ${args.join(" ")}: exit ${ran.exitCode}`);
  return { exitCode: ran.exitCode, output: String(ran.all), stdout: String(ran.stdout) };
}

/** What a canary (the keycloak run domain, run-keycloak-*) or its runs (run-sso-app-*) could leave. */
async function assertCanaryLeftNothing(project: Parameters<typeof leftovers>[0], abraRoot: string, liveDomain: string, baseDomain: string) {
  assert.deepEqual(await leftovers(project, "keycloak", { baseDomain }), NOTHING_LEFT, "the canary Keycloak is gone: its services, volumes, networks, registration");
  assert.deepEqual(await leftovers(project, "sso-app", { baseDomain }), NOTHING_LEFT, "the canary's run is gone");
  const envFiles = await readdir(path.join(abraRoot, "servers", "default"));
  assert.deepEqual(envFiles, [`${liveDomain}.env`], "only the live Keycloak's env file is left");
}

describe("the Keycloak canary", { concurrency: 3 }, () => {
  it("holds a version whose OIDC is broken behind a healthy /realms/master: the live Keycloak never moves, nothing is left, --retry runs it again", { timeout: 2_400_000 }, async (t) => {
    const { fixture, markerKept, baseDomain } = await warmKeycloakWithCanary(t, "1.1.0+26.7.3");
    const live = fixture.app("keycloak");
    await fixture.abra.releaseTags("keycloak", [BROKEN_OIDC]);

    const preview = await operate(t, fixture, ["preview"]);
    assert.equal(preview.exitCode, 0, preview.output);
    assert.match(preview.output, /keycloak \(\S+\): 1\.1\.0\+26\.7\.3 → 1\.6\.0\+26\.7\.3, after a canary of sso-app on a copy of it/);

    const up = await operate(t, fixture, ["up"]);
    assert.equal(up.exitCode, 0, `a hold is no failure of the up\n${up.output}`);
    assert.match(up.output, /HOLD keycloak: 1\.6\.0\+26\.7\.3 held at 1\.1\.0\+26\.7\.3 — canary-failed at 1\.6\.0\+26\.7\.3/);
    assert.equal(await fixture.deployer().currentVersion(live), "1.1.0+26.7.3", "the live Keycloak never moved");
    assert.ok(await markerKept(), "the live Keycloak keeps its realms");
    const canaryAlerts = (await fixture.alerts()).filter((alert) => alert.outcome === "canary-failed");
    assert.equal(canaryAlerts.length, 1, JSON.stringify(await fixture.alerts()));
    assert.equal(canaryAlerts[0]!.to, BROKEN_OIDC);
    assert.match(canaryAlerts[0]!.reason, /the canary failed: sso-app failed in step up .*against a copy of the live Keycloak at 1\.6\.0\+26\.7\.3 \((\d+) s\)/);
    t.diagnostic(`red canary: ${canaryAlerts[0]!.reason}`);
    await assertCanaryLeftNothing(fixture.project, fixture.abra.root, live.domain, baseDomain);
    const password = ((await fixture.resourceOutputs("keycloak", true)).appSecrets as Record<string, string>).admin_password!;
    const realms = (await (await keycloakAdmin(live.domain, password)).realms.find()).map((realm) => realm.realm).sort();
    assert.deepEqual(realms, ["marker", "master"], "the canary's run made its realm on the canary, not on the live Keycloak");

    const held = await operate(t, fixture, ["preview"]);
    assert.match(held.output, /keycloak \(\S+\): stays at 1\.1\.0\+26\.7\.3\n/, "the next plan does not run the canary again");
    assert.match(held.output, /HOLD keycloak: 1\.6\.0\+26\.7\.3 held at 1\.1\.0\+26\.7\.3 — canary-failed at 1\.6\.0\+26\.7\.3: the canary of 1\.6\.0\+26\.7\.3 failed/);

    const retried = await operate(t, fixture, ["up", "--retry", "keycloak"]);
    assert.equal(retried.exitCode, 0, retried.output);
    assert.equal((await fixture.alerts()).filter((alert) => alert.outcome === "canary-failed").length, 2, "--retry ran the canary again, and it failed again");
    assert.equal(await fixture.deployer().currentVersion(live), "1.1.0+26.7.3");
    await assertCanaryLeftNothing(fixture.project, fixture.abra.root, live.domain, baseDomain);
  });

  it("lets a good version through: a real 26.5.6 → 26.7.3 migration on a copy of the live data, then the live one moves", { timeout: 2_400_000 }, async (t) => {
    const { fixture, markerKept, baseDomain } = await warmKeycloakWithCanary(t, "1.0.0+26.5.6");
    const live = fixture.app("keycloak");
    await fixture.abra.releaseTags("keycloak", ["1.1.0+26.7.3"]);

    const up = await operate(t, fixture, ["up", "--json"]);
    assert.equal(up.exitCode, 0, up.output);
    assert.equal(await fixture.deployer().currentVersion(live), "1.1.0+26.7.3", `the live Keycloak moved after its canary; alerts: ${JSON.stringify(await fixture.alerts())}\n${up.output}`);
    assert.ok(await markerKept(), "the live Keycloak keeps its realms through the upgrade");
    const upgraded = (await fixture.alerts()).filter((alert) => alert.outcome === "upgraded" && alert.to === "1.1.0+26.7.3");
    assert.equal(upgraded.length, 1, JSON.stringify(await fixture.alerts()));
    const passed = /the canary passed: sso-app green against a copy of the live Keycloak at 1\.1\.0\+26\.7\.3 \((\d+) s\)/.exec(upgraded[0]!.reason);
    assert.ok(passed, upgraded[0]!.reason);
    t.diagnostic(`green canary: its wall time ${passed[1]} s`);
    const state = await fixture.resourceOutputs("keycloak");
    const canary = state.canaryOutcome as { passed: boolean; runs: { recipe: string; outcome: string }[] };
    assert.deepEqual([canary.passed, canary.runs.map((run) => [run.recipe, run.outcome])], [true, [["sso-app", "passed"]]]);
    assert.deepEqual((JSON.parse(up.stdout) as { holds: unknown[] }).holds, []);
    await assertCanaryLeftNothing(fixture.project, fixture.abra.root, live.domain, baseDomain);
  });

  it("killed while its Keycloak boots, with everything of the warm stack (a host crash), leaves nothing that reap does not remove", { timeout: 2_400_000 }, async (t) => {
    const { fixture, markerKept, baseDomain } = await warmKeycloakWithCanary(t, "1.1.0+26.7.3");
    const live = fixture.app("keycloak");
    await fixture.abra.releaseTags("keycloak", [BROKEN_OIDC]);
    const under = `_${baseDomain.replace(/\./g, "_")}_`;
    const canaryServices = async () => (await docker(["service", "ls", "--format", "{{.Name}}"])).split("\n").filter((name) => /^keyc-[0-9a-f]{6}_/.test(name) && name.includes(under));
    const killed = await withKeycloakBoot("a killed canary", async () => {
      const operation = warmstack(fixture.project, ["up"]);
      let ended = false;
      void operation.then(() => (ended = true));
      const deadline = Date.now() + 900_000;
      while (!ended && (await canaryServices()).length === 0) {
        if (Date.now() >= deadline) throw new Error("the canary Keycloak was not deployed within 900 s");
        await new Promise((resolve) => setTimeout(resolve, 300));
      }
      if (ended) assert.fail(`the up ended before its canary Keycloak was deployed:\n${String((await operation).all)}`);
      // Every process of this project at once: the runner, its engine, the provider and the canary's.
      const pids = await processesMarked(`WARMSTACK_PROJECT_DIR=${fixture.project.dir}`);
      t.diagnostic(`killing the ${pids.length} processes of the up`);
      for (const pid of pids) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // It had ended.
        }
      }
      const output = String((await operation).all);
      return { services: await canaryServices(), output };
    });
    assert.equal(killed.services.length, 1, `the canary Keycloak was left running by the crash\n${killed.output}`);

    const reaped = await reapReport(fixture.project);
    assert.equal(reaped.exitCode, 0, reaped.output);
    const removed = reaped.report.removed.map((decision) => `${decision.kind}:${"owner" in decision ? decision.owner : "stack" in decision ? decision.stack : ""}`);
    assert.ok(removed.some((entry) => /^app:run-keycloak-[0-9a-f]{6}$/.test(entry)), `reap removed the canary Keycloak: ${reaped.output}`);
    assert.ok(removed.some((entry) => /^registration:run-keycloak-[0-9a-f]{6}$/.test(entry)), `reap removed the canary's registration: ${removed.join(", ")}`);
    await assertCanaryLeftNothing(fixture.project, fixture.abra.root, live.domain, baseDomain);
    assert.equal(await fixture.deployer().currentVersion(live), "1.1.0+26.7.3", "the live Keycloak was back at its version before the canary started");
    assert.ok(await markerKept());
  });
});
