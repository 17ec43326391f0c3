import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import * as path from "node:path";
import { LocalWorkspace } from "@pulumi/pulumi/automation";
import { execa } from "execa";
import { MarkerFile } from "../support/marker-file";
import { PulumiProject, REPO_ROOT } from "../support/pulumi-project";

describe("the real Pulumi engine through the Automation API (inline program, dynamic resource)", () => {
  let project: PulumiProject;

  before(async () => {
    project = await PulumiProject.create();
  });

  after(async () => {
    await project.dispose();
  });

  it("ups, previews a diff without applying it, updates and destroys", async () => {
    const file = path.join(project.stateDir, "marker.txt");
    const workDir = path.join(project.stateDir, "inline");
    await mkdir(workDir);
    let content = "one";
    const program = async () => {
      const marker = new MarkerFile("marker", { path: file, content });
      return { content: marker.content };
    };
    const stack = await LocalWorkspace.createOrSelectStack(
      { stackName: "engine", projectName: "warmstack-engine-check", program },
      {
        workDir,
        // main must name the project directory, or the dynamic-provider plugin starts where there
        // are no node_modules.
        projectSettings: { name: "warmstack-engine-check", runtime: "nodejs", main: REPO_ROOT },
        envVars: project.env(),
      },
    );

    const created = await stack.up();
    assert.equal(created.summary.result, "succeeded");
    assert.equal(created.outputs.content?.value, "one");
    assert.equal(readFileSync(file, "utf8"), "one");

    content = "two";
    const preview = await stack.preview();
    assert.equal(preview.changeSummary.update, 1, JSON.stringify(preview.changeSummary));
    assert.equal(readFileSync(file, "utf8"), "one", "a preview changes nothing");

    const updated = await stack.up();
    assert.equal(updated.summary.resourceChanges?.update, 1);
    assert.equal(readFileSync(file, "utf8"), "two");

    const destroyed = await stack.destroy();
    assert.equal(destroyed.summary.result, "succeeded");
    assert.equal(existsSync(file), false, "destroy ran the provider's delete");
    await stack.workspace.removeStack("engine");
  });
});

describe("the real pulumi CLI in the project directory (bed language host)", () => {
  const projects: PulumiProject[] = [];
  async function freshProject(): Promise<PulumiProject> {
    const project = await PulumiProject.create();
    projects.push(project);
    return project;
  }

  after(async () => {
    for (const project of projects) await project.dispose();
  });

  it("previews, ups and destroys the warm stack, and the runner sees the same stack", async () => {
    const project = await freshProject();
    assert.equal((await project.pulumi(["stack", "init", "warm"])).exitCode, 0);
    for (const [key, value] of [
      ["baseDomain", "warm.test"],
      ["abraDir", path.join(project.stateDir, "abra")],
      ["proxyUrl", "http://127.0.0.1:47080"],
      ["alertDir", path.join(project.stateDir, "alerts")],
      ["apps", "{}"],
    ]) {
      assert.equal((await project.pulumi(["config", "set", "-s", "warm", `warmstack:${key}`, value!])).exitCode, 0);
    }

    const preview = await project.pulumi(["preview", "-s", "warm"]);
    assert.equal(preview.exitCode, 0, preview.output);
    assert.match(preview.output, /\+ 1 to create/);

    const up = await project.pulumi(["up", "-s", "warm", "--yes"]);
    assert.equal(up.exitCode, 0, up.output);
    const outputs = await project.pulumi(["stack", "output", "-s", "warm", "--json"]);
    assert.deepEqual(JSON.parse(outputs.output), { plan: [], holds: [], deployed: {}, canonicals: {} });

    const runner = await execa("node", [path.join(REPO_ROOT, "dist", "runner", "cli.js"), "preview", "--json"], {
      env: project.env(),
      reject: false,
    });
    assert.equal(runner.exitCode, 0, runner.stderr);
    const summary = JSON.parse(runner.stdout) as { ok: boolean; changes: Record<string, number> };
    assert.equal(summary.ok, true);
    assert.deepEqual(summary.changes, { same: 1 }, "the runner operates the stack the CLI created");

    const destroy = await project.pulumi(["destroy", "-s", "warm", "--yes"]);
    assert.equal(destroy.exitCode, 0, destroy.output);
    assert.match(destroy.output, /- 1 deleted|1 deleted/);
  });

  it("status on a backend without a warm stack says so, exits non-zero, and creates no stack", async () => {
    const project = await freshProject();
    const status = await execa("node", [path.join(REPO_ROOT, "dist", "runner", "cli.js"), "status"], { env: project.env(), reject: false });
    assert.notEqual(status.exitCode, 0);
    assert.match(status.stderr, /there is no warm stack in backend file:\/\//);
    const stacks = await project.pulumi(["stack", "ls", "--json"]);
    assert.equal(stacks.exitCode, 0, stacks.output);
    assert.doesNotMatch(stacks.output, /"warm/, "a read-only command created no stack");
  });

  it("refuses malformed config by naming the key, and an unknown stack name", async () => {
    const project = await freshProject();
    assert.equal((await project.pulumi(["stack", "init", "warm"])).exitCode, 0);
    await project.pulumi(["config", "set", "-s", "warm", "warmstack:baseDomain", "Not_A_Domain"]);
    await project.pulumi(["config", "set", "-s", "warm", "warmstack:abraDir", "relative/path"]);
    await project.pulumi(["config", "set", "-s", "warm", "warmstack:proxyUrl", "http://10.1.2.3:80"]);
    await project.pulumi(["config", "set", "-s", "warm", "warmstack:colour", "blue"]);
    const bad = await project.pulumi(["preview", "-s", "warm"]);
    assert.notEqual(bad.exitCode, 0);
    assert.match(bad.output, /warmstack:baseDomain: /);
    assert.match(bad.output, /warmstack:abraDir: must be an absolute path/);
    assert.match(bad.output, /warmstack:proxyUrl: must be an http URL on loopback/);
    assert.match(bad.output, /warmstack:colour: unknown key/);

    assert.equal((await project.pulumi(["stack", "init", "staging"])).exitCode, 0);
    const unknown = await project.pulumi(["preview", "-s", "staging"]);
    assert.notEqual(unknown.exitCode, 0);
    assert.match(unknown.output, /unknown stack "staging": warmstack runs the stack "warm" and run stacks named run-<recipe>-<runId>/);
  });
});
