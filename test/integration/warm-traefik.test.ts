import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import * as http from "node:http";
import { WarmStackFixture } from "../support/warm-stack";

/**
 * The warm Traefik (stateless) through plain `pulumi preview/up -s warm`: holds, no-op runs, and
 * the three rollback paths. Each test has its own warm stack and Traefik port.
 */
const BASE = "1.0.0+3.6.12";
const fixtures: WarmStackFixture[] = [];

async function warmTraefik(initialTags: readonly string[], extraConfig: Record<string, string> = {}) {
  const fixture = await WarmStackFixture.create([{ kind: "traefik", initialTags }], extraConfig);
  fixtures.push(fixture);
  const first = await fixture.up();
  assert.equal(first.exitCode, 0, first.output);
  return fixture;
}

async function ping(port: number): Promise<number> {
  return new Promise((resolve) => {
    http
      .get({ host: "127.0.0.1", port, path: "/ping", timeout: 3000 }, (response) => {
        response.resume();
        resolve(response.statusCode ?? 0);
      })
      .on("error", () => resolve(0));
  });
}

after(async () => {
  for (const fixture of fixtures) await fixture.dispose();
});

describe("warm Traefik: holds and no-op runs", { concurrency: true }, () => {
  it("holds recipe-major, upstream-major, manual-step and new-required-key upgrades: preview shows why, up alerts once", async () => {
    const fixture = await warmTraefik([BASE]);
    const deployer = fixture.deployer();
    const cases = [
      { tag: "2.0.0+3.6.12", reason: "recipe-major" },
      { tag: "1.4.0+4.0.0", reason: "upstream-major" },
      { tag: "1.3.0+3.6.12", reason: "manual-steps", line: /manual intervention/ },
      { tag: "1.2.0+3.6.12", reason: "new-required-key", line: /ACME_EMAIL/ },
    ];
    for (const held of cases) {
      await fixture.abra.keepOnlyTags("traefik", [BASE]);
      await fixture.abra.releaseTags("traefik", [held.tag]);
      const containers = await fixture.containerIds("traefik");
      const alertsBefore = (await fixture.alerts()).length;

      const preview = await fixture.preview();
      assert.equal(preview.exitCode, 0, preview.output);
      assert.match(preview.output, new RegExp(`hold traefik at ${BASE.replace(/[+.]/g, "\\$&")}: ${held.tag.replace(/[+.]/g, "\\$&")} is available`));
      if (held.line) assert.match(preview.output, held.line);
      assert.equal((await fixture.alerts()).length, alertsBefore, "a preview writes no alert");

      const up = await fixture.up();
      assert.equal(up.exitCode, 0, up.output);
      assert.equal(await deployer.currentVersion(fixture.app("traefik")), BASE, `${held.reason}: stays at the current version`);
      assert.deepEqual(await fixture.containerIds("traefik"), containers, `${held.reason}: nothing was redeployed`);
      const outputs = await fixture.outputs();
      assert.deepEqual(
        (outputs.holds as { reason: string; blockedAt: string }[]).map((hold) => [hold.reason, hold.blockedAt]),
        [[held.reason, held.tag]],
      );
      const alerts = await fixture.alerts();
      assert.equal(alerts.length, alertsBefore + 1, "up writes one alert per hold");
      assert.equal(alerts[0]!.outcome, "held");
      assert.equal(alerts[0]!.to, held.tag);
    }
  });

  it("an up with nothing to do restarts nothing", async () => {
    const fixture = await warmTraefik([BASE]);
    const containers = await fixture.containerIds("traefik");
    assert.equal(containers.length, 1);
    const again = await fixture.up();
    assert.equal(again.exitCode, 0, again.output);
    assert.match(again.output, /1 unchanged|2 unchanged/);
    assert.deepEqual(await fixture.containerIds("traefik"), containers);
    assert.equal(await ping(fixture.traefikPort), 200);
  });
});

describe("warm Traefik: a failed upgrade rolls back to the previous version and alerts once", { concurrency: true }, () => {
  for (const broken of [
    { tag: "1.5.0+3.6.12", path: "target fails validation", reason: /undeclared_secret/ },
    { tag: "1.5.1+3.6.12", path: "deploy does not converge", reason: /rolled back the update|timed out/ },
    { tag: "1.5.2+3.6.12", path: "deploys but fails health", reason: /\/ping: HTTP 404|timed out/ },
  ]) {
    it(broken.path, async () => {
      const fixture = await warmTraefik([BASE]);
      const before = await fixture.resourceOutputs("traefik");
      await fixture.abra.releaseTags("traefik", [broken.tag]);
      const up = await fixture.up();
      assert.notEqual(up.exitCode, 0, "a rolled-back upgrade fails the run loudly");
      assert.match(up.output, /failed and was rolled back/);

      assert.equal(await fixture.deployer().currentVersion(fixture.app("traefik")), BASE);
      assert.equal(await ping(fixture.traefikPort), 200, "healthy on the previous version");
      const after = await fixture.resourceOutputs("traefik");
      assert.equal(after.lastGood, before.lastGood, "lastGood unchanged");
      assert.equal(after.rolledBack, true);
      const alerts = (await fixture.alerts()).filter((alert) => alert.outcome !== "upgraded");
      assert.equal(alerts.length, 1, JSON.stringify(alerts));
      assert.equal(alerts[0]!.outcome, "rolled-back");
      assert.equal(alerts[0]!.from, BASE);
      assert.equal(alerts[0]!.to, broken.tag);
      assert.match(alerts[0]!.reason, broken.reason);
    });
  }
});
