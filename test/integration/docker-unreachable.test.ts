import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { StackDeployer } from "../../infra/adapters/stack-deployer";
import { DockerError, swarmIsActive } from "../../infra/adapters/swarm";
import { AbraDir } from "../support/abra-dir";
import { liveState } from "../../runner/status";
import { proxyUrl, uniqueDomain } from "../support/bed";

describe("a docker socket that is not there", () => {
  it("fails with docker's own reason, naming the socket, and creates nothing", async () => {
    const abra = await AbraDir.create(["custom-html"]);
    const previous = process.env.DOCKER_HOST;
    process.env.DOCKER_HOST = "unix:///run/warmstack-no-such-docker.sock";
    try {
      await assert.rejects(swarmIsActive(), (error: unknown) => error instanceof DockerError && /warmstack-no-such-docker\.sock/.test(error.message));
      const deployer = new StackDeployer({ abraDir: abra.root, server: "default", proxyUrl: proxyUrl() });
      const app = { recipe: "custom-html", domain: uniqueDomain("nodocker") };
      await assert.rejects(deployer.newApp(app), /Cannot connect to the Docker daemon|warmstack-no-such-docker/);
      await assert.rejects(deployer.envVersion(app), /no env file/, "no env file was left behind");
      const warmApp = {
        ...app,
        deployerSettings: { deployer: "stack", abraDir: abra.root, server: "default", proxyUrl: proxyUrl(), dnsrrEndpoints: true },
        health: { path: "/health" },
      };
      const live = await liveState(warmApp);
      assert.equal(live.checked, false, "status reports a warm app it cannot look at instead of failing");
      assert.match(live.checked ? "" : live.reason, /^the swarm cannot be read \(docker service ls -q failed .*warmstack-no-such-docker\.sock/);
    } finally {
      if (previous === undefined) delete process.env.DOCKER_HOST;
      else process.env.DOCKER_HOST = previous;
      await abra.dispose();
    }
  });
});
