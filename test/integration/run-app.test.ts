import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import * as path from "node:path";
import { LocalWorkspace, Stack } from "@pulumi/pulumi/automation";
import { randomBytes } from "node:crypto";
import { execa } from "execa";
import { StackDeployer } from "../../infra/adapters/stack-deployer";
import * as swarm from "../../infra/adapters/swarm";
import { runDomain, stackNameForDomain } from "../../infra/naming";
import { RunApp } from "../../infra/run-app";
import { AbraDir } from "../support/abra-dir";
import { bed, proxyUrl } from "../support/bed";
import { viaProxy } from "../support/http";
import { PulumiProject, REPO_ROOT } from "../support/pulumi-project";

/** A run id of its own, so two suites on one bed never share a run's domain. */
const runId = () => randomBytes(3).toString("hex");

/** RunApp's cold lane through the real engine: a fresh app per run, and nothing left afterwards. */
describe("RunApp, cold lane (custom-html fixture)", () => {
  let project: PulumiProject;
  let abra: AbraDir;

  before(async () => {
    project = await PulumiProject.create();
    abra = await AbraDir.create(["custom-html"]);
  });

  after(async () => {
    await abra.dispose();
    await project.dispose();
  });

  async function runStack(hex: string, ref: string): Promise<{ stack: Stack; domain: string }> {
    const stackName = `run-custom-html-${hex}`;
    const domain = runDomain("custom-html", hex, bed().domain);
    const program = async () => {
      const app = new RunApp("app", {
        recipe: "custom-html",
        stack: stackName,
        domain,
        ref,
        health: { path: "/health" },
        deployTimeoutMs: 60_000,
        deployerSettings: { deployer: "stack", abraDir: abra.root, server: "default", proxyUrl: proxyUrl(), dnsrrEndpoints: true },
      });
      return { deployed: app.deployed };
    };
    const workDir = path.join(project.stateDir, stackName);
    await mkdir(workDir, { recursive: true });
    const stack = await LocalWorkspace.createOrSelectStack(
      { stackName, projectName: "warmstack", program },
      { workDir, projectSettings: { name: "warmstack", runtime: "nodejs", main: REPO_ROOT }, envVars: project.env() },
    );
    return { stack, domain };
  }

  async function leftovers(domain: string) {
    const stack = stackNameForDomain(domain);
    const deployer = new StackDeployer({ abraDir: abra.root, server: "default", proxyUrl: proxyUrl() });
    return {
      services: (await swarm.stackServices(stack)).length,
      volumes: (await swarm.stackVolumes(stack)).length,
      envFile: existsSync(deployer.envPath(domain)),
    };
  }

  it("deploys the newest release, then a commit, on the run's own domain, and destroy leaves nothing", async () => {
    const first = runId();
    const { stack, domain } = await runStack(first, "");
    const up = await stack.up();
    assert.equal(up.outputs.deployed?.value, "2.0.0+1.2", "an empty ref deploys the newest release");
    assert.equal((await viaProxy(domain, "/health")).status, 200);
    assert.match(domain, new RegExp(`^cust-${first}\\.`));

    const { stdout: commit } = await execa("git", ["-C", abra.recipeDir("custom-html"), "rev-parse", "1.1.0+1.1^{commit}"]);
    const byCommit = await runStack(runId(), commit.slice(0, 12));
    const second = await byCommit.stack.up();
    assert.equal(second.outputs.deployed?.value, commit.slice(0, 12));
    assert.equal((await viaProxy(byCommit.domain, "/version")).body.trim(), "1.1");

    for (const run of [{ stack, domain }, byCommit]) {
      await run.stack.destroy();
      assert.deepEqual(await leftovers(run.domain), { services: 0, volumes: 0, envFile: false });
    }
  });

  it("a deploy that fails leaves no app, volume or env file behind", async () => {
    await abra.keepOnlyTags("custom-html", ["1.0.0+1.0", "1.5.1+1.2"]);
    const { stack, domain } = await runStack(runId(), "1.5.1+1.2");
    await assert.rejects(stack.up(), /Swarm gave up|timed out/);
    assert.deepEqual(await leftovers(domain), { services: 0, volumes: 0, envFile: false });
    await stack.destroy();
  });

  it("refuses a ref that is neither a version nor a commit before creating anything", async () => {
    const { stack, domain } = await runStack(runId(), "main; rm -rf /");
    await assert.rejects(stack.up(), /ref.*is neither a version/);
    assert.deepEqual(await leftovers(domain), { services: 0, volumes: 0, envFile: false });
  });
});
