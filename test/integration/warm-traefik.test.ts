import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import * as http from "node:http";
import * as path from "node:path";
import { execa } from "execa";
import { stackNameForDomain } from "../../infra/naming";
import { serviceHasLiveTask, stackServices } from "../../infra/adapters/swarm";
import { REPO_ROOT } from "../support/pulumi-project";
import { killUntilSwarmGivesUp } from "../support/swarm-give-up";
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

  it("a warm app Swarm gave up on (as after host restarts) shows as down in preview and comes back on the next up", async () => {
    const fixture = await warmTraefik([BASE]);
    const stack = stackNameForDomain(fixture.app("traefik").domain);
    await killUntilSwarmGivesUp(stack);
    const [service] = await stackServices(stack);
    assert.equal(await ping(fixture.traefikPort), 0, "nothing answers once Swarm gave up");

    const cli = (args: string[]) =>
      execa("node", [path.join(REPO_ROOT, "dist", "runner", "cli.js"), ...args], { env: fixture.project.env(), reject: false });
    const preview = await cli(["preview", "--json"]);
    assert.equal(preview.exitCode, 0, preview.stderr);
    const plan = JSON.parse(preview.stdout) as { plan: { app: string; action: string; down: boolean }[] };
    assert.deepEqual(plan.plan.map((app) => [app.app, app.action, app.down]), [["traefik", "stay", true]]);
    assert.equal(await serviceHasLiveTask(service!.id), false, "a preview restarts nothing");
    const liveOf = async () => {
      const status = await cli(["status", "--json"]);
      assert.equal(status.exitCode, 0, status.stderr);
      return (JSON.parse(status.stdout) as { warmApps: { app: string; live: unknown }[] }).warmApps.map((app) => [app.app, app.live]);
    };
    assert.deepEqual(await liveOf(), [["traefik", { checked: true, version: BASE, healthy: false, detail: "/ping: ECONNREFUSED" }]]);

    const up = await cli(["up"]);
    assert.equal(up.exitCode, 0, up.stderr);
    assert.match(up.stdout, /traefik \(tr-[0-9a-f]{6}\.warm\.test\): stays at 1\.0\.0\+3\.6\.12, was DOWN/);
    assert.equal(await ping(fixture.traefikPort), 200, "answering again");
    assert.deepEqual(await liveOf(), [["traefik", { checked: true, version: BASE, healthy: true, detail: "/ping: HTTP 200" }]]);
    assert.equal(await fixture.deployer().currentVersion(fixture.app("traefik")), BASE, "at the same version");
    const restarted = (await fixture.alerts()).filter((alert) => alert.outcome === "restarted");
    assert.equal(restarted.length, 1, JSON.stringify(restarted));
    assert.match(restarted[0]!.reason, /was down at 1\.0\.0\+3\.6\.12; restarted tr-[0-9a-f]{6}_warm_test_app, which Swarm had given up on/);

    const containers = await fixture.containerIds("traefik");
    const again = await fixture.up();
    assert.equal(again.exitCode, 0, again.output);
    assert.deepEqual(await fixture.containerIds("traefik"), containers, "a healthy app is left alone");
    assert.equal((await fixture.alerts()).filter((alert) => alert.outcome === "restarted").length, 1);
  });
});

/** A webhook receiver on loopback that answers 500, or never answers at all. */
async function webhook(behaviour: "fails" | "hangs"): Promise<{ url: string; hits: () => number; close: () => void }> {
  let hits = 0;
  const server = http.createServer((request, response) => {
    hits += 1;
    request.resume();
    if (behaviour === "fails") request.on("end", () => response.writeHead(500).end());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    hits: () => hits,
    close: () => {
      server.closeAllConnections();
      server.close();
    },
  };
}

describe("warm Traefik: the runner and bad webhooks", { concurrency: true }, () => {
  it("warmstack preview and up report the plan and the holds, as text and as JSON", async () => {
    const fixture = await warmTraefik([BASE]);
    await fixture.abra.releaseTags("traefik", ["1.0.1+3.6.12", "2.0.0+3.6.12"]);
    const cli = (args: string[]) =>
      execa("node", [path.join(REPO_ROOT, "dist", "runner", "cli.js"), ...args], { env: fixture.project.env(), reject: false });

    const preview = await cli(["preview", "--json"]);
    assert.equal(preview.exitCode, 0, preview.stderr);
    const plan = JSON.parse(preview.stdout) as { ok: boolean; plan: { app: string; current: string; target: string; action: string }[]; holds: { reason: string; blockedAt: string }[] };
    assert.equal(plan.ok, true);
    assert.deepEqual(plan.plan.map((app) => [app.app, app.current, app.target, app.action]), [["traefik", BASE, "1.0.1+3.6.12", "upgrade"]]);
    assert.deepEqual(plan.holds.map((hold) => [hold.reason, hold.blockedAt]), [["recipe-major", "2.0.0+3.6.12"]]);
    assert.equal(await fixture.deployer().currentVersion(fixture.app("traefik")), BASE, "a preview deploys nothing");

    const up = await cli(["up"]);
    assert.equal(up.exitCode, 0, up.stderr);
    assert.match(up.stdout, /traefik \(tr-[0-9a-f]{6}\.warm\.test\): 1\.0\.0\+3\.6\.12 → 1\.0\.1\+3\.6\.12/);
    assert.match(up.stdout, /HOLD traefik: 2\.0\.0\+3\.6\.12 held at 1\.0\.1\+3\.6\.12 — recipe-major at 2\.0\.0\+3\.6\.12/, "held at what runs after the up: the patch it applied");
    assert.match(up.stderr, /\[warmstack \d+\.\ds\] warm: /, "progress lines with the elapsed time");
    assert.equal(await fixture.deployer().currentVersion(fixture.app("traefik")), "1.0.1+3.6.12", "the safe patch was applied");

    const status = await cli(["status", "--json"]);
    assert.equal(status.exitCode, 0, status.stderr);
    const report = JSON.parse(status.stdout) as { warmApps: { app: string }[]; holds: { reason: string; blockedAt: string }[] };
    assert.deepEqual(report.warmApps.map((app) => app.app), ["traefik"]);
    assert.deepEqual(report.holds.map((hold) => [hold.reason, hold.blockedAt]), [["recipe-major", "2.0.0+3.6.12"]], "status shows the hold the up left");
  });

  for (const behaviour of ["fails", "hangs"] as const) {
    it(`a webhook that ${behaviour === "fails" ? "answers 500" : "never answers"} delays nothing for long and loses no alert`, async () => {
      const hook = await webhook(behaviour);
      try {
        const fixture = await warmTraefik([BASE], { alertWebhook: hook.url });
        await fixture.abra.releaseTags("traefik", ["1.3.0+3.6.12"]);
        const up = await fixture.up();
        assert.equal(up.exitCode, 0, up.output);
        assert.equal(hook.hits(), 3, "three attempts, then given up: the up finished");
        const alerts = await fixture.alerts();
        assert.equal(alerts.filter((alert) => alert.outcome === "held").length, 1, "the alert file is written whatever the webhook does");
        assert.equal(await ping(fixture.traefikPort), 200);
        assert.equal((await fixture.stateText()).includes(hook.url), false, "the webhook URL is stored only encrypted");
      } finally {
        hook.close();
      }
    });
  }
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

describe("warm Traefik: a version that failed is not tried every night", () => {
  it("the next up holds it as failed-before and is green; --retry tries it again; a bad --retry is refused", async () => {
    const broken = "1.5.0+3.6.12";
    const fixture = await warmTraefik([BASE]);
    await fixture.abra.releaseTags("traefik", [broken]);
    const failed = await fixture.up();
    assert.notEqual(failed.exitCode, 0, failed.output);
    const rolledBack = () => fixture.alerts().then((alerts) => alerts.filter((alert) => alert.outcome === "rolled-back").length);
    assert.equal(await rolledBack(), 1);

    const cli = (args: string[]) =>
      execa("node", [path.join(REPO_ROOT, "dist", "runner", "cli.js"), ...args], { env: fixture.project.env(), reject: false });
    const containers = await fixture.containerIds("traefik");
    const next = await cli(["up", "--json"]);
    assert.equal(next.exitCode, 0, next.stderr);
    const summary = JSON.parse(next.stdout) as { plan: { target: string; action: string }[]; holds: { reason: string; blockedAt: string; lines: string[] }[] };
    assert.deepEqual(summary.plan.map((app) => [app.target, app.action]), [[BASE, "stay"]]);
    assert.deepEqual(summary.holds.map((hold) => [hold.reason, hold.blockedAt]), [["failed-before", broken]]);
    assert.match(summary.holds[0]!.lines[0]!, /rolled-back: upgrade failed: .*undeclared_secret/);
    assert.deepEqual(await fixture.containerIds("traefik"), containers, "the held version was not tried");
    assert.equal(await rolledBack(), 1);
    assert.equal((await fixture.resourceOutputs("traefik")).rolledBack, false, "the recorded rollback is cleared");

    const refused = await cli(["up", "--retry", "traefik,nope"]);
    assert.notEqual(refused.exitCode, 0);
    assert.match(refused.stderr, /--retry: "nope" is not a warm app \(one of keycloak, traefik\)/);
    assert.deepEqual(await fixture.containerIds("traefik"), containers, "a refused --retry touches nothing");

    const retried = await cli(["up", "--retry", "traefik"]);
    assert.notEqual(retried.exitCode, 0, "the retry ran the upgrade, which failed again");
    assert.equal(await rolledBack(), 2);
    assert.equal(await fixture.deployer().currentVersion(fixture.app("traefik")), BASE);
    assert.equal(await ping(fixture.traefikPort), 200);
  });
});
