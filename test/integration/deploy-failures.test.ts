import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { ConvergenceError } from "../../infra/adapters/convergence";
import { AppRef } from "../../infra/adapters/deployer";
import { StackDeployer } from "../../infra/adapters/stack-deployer";
import { DockerError } from "../../infra/adapters/swarm";
import { AbraDir } from "../support/abra-dir";
import { proxyUrl, uniqueDomain } from "../support/bed";

const HEALTH = { path: "/health" };

describe("deploys that fail are reported as failed (custom-html fixture)", { concurrency: true }, () => {
  let abra: AbraDir;
  let deployer: StackDeployer;
  const apps: AppRef[] = [];

  async function freshApp(prefix: string): Promise<AppRef> {
    const app = { recipe: "custom-html", domain: uniqueDomain(prefix) };
    apps.push(app);
    await deployer.newApp(app, { version: "1.0.0+1.0" });
    return app;
  }

  before(async () => {
    abra = await AbraDir.create(["custom-html"]);
    deployer = new StackDeployer({ abraDir: abra.root, server: "default", proxyUrl: proxyUrl(), dnsrrEndpoints: true });
  });

  after(async () => {
    for (const app of apps) {
      await deployer.undeploy(app).catch(() => undefined);
      await deployer.remove(app, { volumes: true }).catch(() => undefined);
    }
    await abra.dispose();
  });

  it("a first deploy of a version that cannot start fails once Swarm gives up, naming the last task state", async () => {
    const app = await freshApp("crash");
    const error = await deployer.deploy(app, { ref: "1.5.1+1.2", health: HEALTH, timeoutMs: 120_000 }).then(
      () => assert.fail("a version that exits at start must not converge"),
      (caught: unknown) => caught,
    );
    assert.ok(error instanceof ConvergenceError, String(error));
    assert.equal(error.reason, "gave-up", error.message);
    assert.match(error.message, /Swarm gave up on \S+_app; last task: Failed [^"]*"task: non-zero exit \(1\)"/);
    assert.equal(await deployer.envVersion(app), null, "TYPE is written back only on success");
  });

  it("a first deploy that never converges fails at its deadline, naming the last task state", async () => {
    const app = await freshApp("slow");
    const error = await deployer.deploy(app, { ref: "1.5.1+1.2", health: HEALTH, timeoutMs: 8_000 }).then(
      () => assert.fail("a version that exits at start must not converge"),
      (caught: unknown) => caught,
    );
    assert.ok(error instanceof ConvergenceError, String(error));
    assert.equal(error.reason, "timeout", error.message);
    assert.match(error.message, /timed out after 8s/);
    assert.match(error.message, /last task states: \S+_app: (Failed|Rejected|Running|Starting|Preparing|Assigned|Pending|Ready|New)/);
  });

  it("a deploy that runs but fails its health path is reported with the health state", async () => {
    const app = await freshApp("sick");
    await assert.rejects(
      deployer.deploy(app, { ref: "1.5.2+1.2", health: HEALTH, timeoutMs: 30_000 }),
      (error: unknown) => error instanceof ConvergenceError && /last state: health \/health: HTTP 503/.test(error.message),
    );
  });

  it("an upgrade that Swarm rolls back is reported as failed and the old version keeps running", async () => {
    const app = await freshApp("rollback");
    await deployer.deploy(app, { ref: "1.0.0+1.0", health: HEALTH, timeoutMs: 120_000 });
    const error = await deployer.deploy(app, { ref: "1.5.1+1.2", health: HEALTH, timeoutMs: 120_000 }).then(
      () => assert.fail("Swarm rolled the update back; the deploy must fail"),
      (caught: unknown) => caught,
    );
    assert.ok(error instanceof ConvergenceError, String(error));
    assert.equal(error.reason, "rolled-back", error.message);
    assert.match(error.message, /rolled back the update of/);
    assert.equal(await deployer.currentVersion(app), "1.0.0+1.0");
    assert.equal(await deployer.envVersion(app), "1.0.0+1.0");
  });

  it("a version whose compose file does not validate fails at deploy with docker's reason", async () => {
    const app = await freshApp("invalid");
    await assert.rejects(
      deployer.deploy(app, { ref: "1.5.0+1.2", health: HEALTH, timeoutMs: 30_000 }),
      (error: unknown) => error instanceof DockerError && /undeclared_secret/.test(error.message),
    );
    assert.equal(await deployer.currentVersion(app), null);
  });
});
