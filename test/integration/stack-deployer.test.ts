import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFile, stat } from "node:fs/promises";
import { StackDeployer } from "../../infra/adapters/stack-deployer";
import * as swarm from "../../infra/adapters/swarm";
import { stackNameForDomain } from "../../infra/naming";
import { AbraDir } from "../support/abra-dir";
import { proxyUrl, uniqueDomain } from "../support/bed";
import { viaProxy } from "../support/http";

const HEALTH = { path: "/health" };

describe("stack deployer on the real swarm (custom-html fixture)", () => {
  let abra: AbraDir;
  let deployer: StackDeployer;
  const app = { recipe: "custom-html", domain: uniqueDomain("html") };
  const stack = stackNameForDomain(app.domain);

  before(async () => {
    abra = await AbraDir.create(["custom-html"]);
    deployer = new StackDeployer({ abraDir: abra.root, server: "default", proxyUrl: proxyUrl(), dnsrrEndpoints: true });
  });

  after(async () => {
    await deployer.undeploy(app).catch(() => undefined);
    await deployer.remove(app, { volumes: true }).catch(() => undefined);
    await abra.dispose();
  });

  it("deploys a version, routes its domain through Traefik, upgrades, undeploys and removes", async () => {
    await deployer.newApp(app, { version: "1.0.0+1.0" });
    await deployer.deploy(app, { ref: "1.0.0+1.0", health: HEALTH, timeoutMs: 120_000 });
    assert.equal(await deployer.currentVersion(app), "1.0.0+1.0");
    assert.equal((await viaProxy(app.domain, "/version")).body.trim(), "1.0");
    assert.match(await readFile(deployer.envPath(app.domain), "utf8"), /^TYPE=custom-html:1\.0\.0\+1\.0$/m);

    assert.equal((await viaProxy(app.domain, "/files/marker", "PUT", "kept across upgrades")).status, 204);

    await assert.rejects(
      deployer.deploy(app, { ref: "1.0.0+1.0", health: HEALTH, timeoutMs: 60_000 }),
      /already deployed at 1\.0\.0\+1\.0; a redeploy of the same version must be forced/,
    );

    await deployer.deploy(app, { ref: "1.1.0+1.1", health: HEALTH, timeoutMs: 120_000 });
    assert.equal(await deployer.currentVersion(app), "1.1.0+1.1");
    assert.equal((await viaProxy(app.domain, "/version")).body.trim(), "1.1");
    assert.equal(await deployer.envVersion(app), "1.1.0+1.1");
    assert.equal((await viaProxy(app.domain, "/files/marker")).body, "kept across upgrades");

    const volumes = await deployer.volumes(app);
    assert.deepEqual(volumes, [`${stack}_content`]);

    await deployer.undeploy(app);
    assert.deepEqual(await swarm.stackServices(stack), []);
    assert.deepEqual(await swarm.stackContainers(stack), []);
    assert.deepEqual(await swarm.stackNetworks(stack), []);
    assert.equal(await swarm.volumeExists(`${stack}_content`), true, "undeploy keeps the volume");
    assert.equal(await deployer.currentVersion(app), null);

    await deployer.remove(app, { volumes: true });
    assert.equal(await swarm.volumeExists(`${stack}_content`), false, "remove deletes the volume");
    await assert.rejects(stat(deployer.envPath(app.domain)), { code: "ENOENT" });
  });

  it("refuses a ref that is neither a version nor a commit, and an app that does not exist", async () => {
    await assert.rejects(
      deployer.deploy({ recipe: "custom-html", domain: uniqueDomain("nope") }, { ref: "1.0.0+1.0", health: HEALTH, timeoutMs: 5000 }),
      /no env file at .*: create the app first/,
    );
    await assert.rejects(
      deployer.deploy(app, { ref: "main; rm -rf /", health: HEALTH, timeoutMs: 5000 }),
      /ref "main; rm -rf \/" is neither a version/,
    );
    await assert.rejects(deployer.newApp({ recipe: "custom-html", domain: "Bad_Domain" }), /domain/);
  });
});
