import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, symlink, unlink } from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import { execa } from "execa";
import { StackDeployer } from "../../infra/adapters/stack-deployer";
import { canonicalDomain } from "../../infra/naming";
import { bed, proxyUrl } from "../support/bed";
import { REPO_ROOT } from "../support/pulumi-project";
import { WarmStackFixture } from "../support/warm-stack";

/**
 * The move to typed resources, proven on the bed: a warm stack (a warm Traefik and a canonical)
 * written by warmstack as it was before resources had types of their own is taken over by this
 * warmstack with no replace, no create, no delete and no deploy — the aliases move the state in place.
 */
const UNTYPED_COMMIT = "a3e9994a4f351168cc3f5c14d599650e3084456d"; // main before the typed resources
const TRAEFIK = "1.0.0+3.6.12";
const KNOWN_GOOD = "1.0.0+1.0";

interface ExportedResource {
  urn: string;
  type: string;
  outputs?: Record<string, unknown>;
}

describe("typed resources take over a state written before them", () => {
  let oldRoot: string;
  let fixture: WarmStackFixture;
  let haveCommit = true;

  before(async () => {
    haveCommit = (await execa("git", ["-C", REPO_ROOT, "cat-file", "-e", `${UNTYPED_COMMIT}^{commit}`], { reject: false })).exitCode === 0;
    if (!haveCommit) return;
    oldRoot = await mkdtemp(path.join(os.tmpdir(), "warmstack-untyped-"));
    await execa("bash", ["-c", 'git -C "$1" archive "$2" | tar -x -C "$3"', "archive", REPO_ROOT, UNTYPED_COMMIT, oldRoot]);
    await symlink(path.join(REPO_ROOT, "node_modules"), path.join(oldRoot, "node_modules"));
    await execa(process.execPath, [path.join(REPO_ROOT, "node_modules", "typescript", "bin", "tsc"), "-p", path.join(oldRoot, "tsconfig.json")]);

    fixture = await WarmStackFixture.create([{ kind: "traefik", initialTags: [TRAEFIK] }], {
      canonicals: JSON.stringify({ "custom-html": { knownGood: KNOWN_GOOD, health: { path: "/health" }, deployTimeoutSeconds: 60 } }),
    });
    await fixture.cli(["config", "set", "-s", "warm", "warmstack:stateDir", fixture.project.stateDir]);
    const checkout = fixture.abra.recipeDir("custom-html");
    await execa("git", ["clone", "-q", path.join(bed().recipes, "custom-html"), checkout]);
    const tags = (await execa("git", ["-C", checkout, "tag"])).stdout.split("\n").filter((tag) => tag && tag !== KNOWN_GOOD);
    await execa("git", ["-C", checkout, "tag", "-d", ...tags]);
  });

  after(async () => {
    if (!haveCommit) return;
    await useProgramOf(REPO_ROOT);
    await fixture?.dispose();
    await new StackDeployer({ abraDir: fixture.abra.root, server: "default", proxyUrl: proxyUrl() }).remove(canonicalApp(), { volumes: true }).catch(() => undefined);
    await rm(oldRoot, { recursive: true, force: true });
  });

  /** The project runs the compiled program of this checkout (`dist`), as an upgrade of warmstack swaps it. */
  async function useProgramOf(root: string): Promise<void> {
    const dist = path.join(fixture.project.dir, "dist");
    await unlink(dist);
    await symlink(path.join(root, "dist"), dist);
  }

  function canonicalApp() {
    return { recipe: "custom-html", domain: canonicalDomain("custom-html", bed().domain) };
  }

  async function resources(): Promise<ExportedResource[]> {
    const exported = JSON.parse(await fixture.cli(["stack", "export", "-s", "warm"])) as { deployment: { resources?: ExportedResource[] } };
    return (exported.deployment.resources ?? []).filter((resource) => resource.type.startsWith("pulumi-nodejs:dynamic"));
  }

  it("moves a warm app and a canonical to their types with 0 replaces and 0 deploys", { timeout: 900_000 }, async (t) => {
    if (!haveCommit) return t.skip(`commit ${UNTYPED_COMMIT} is not in this checkout's history: there is no untyped warmstack to write the old state with`);
    await useProgramOf(oldRoot);
    const written = await fixture.up();
    assert.equal(written.exitCode, 0, written.output);
    const before = await resources();
    assert.deepEqual(before.map((resource) => [resource.type, resource.urn.split("::").at(-1)]).sort(), [
      ["pulumi-nodejs:dynamic:Resource", "canonical-custom-html"],
      ["pulumi-nodejs:dynamic:Resource", "traefik"],
    ]);
    const containers = await fixture.containerIds("traefik");
    const alerts = (await fixture.alerts()).length;
    const deployer = fixture.deployer();
    const canonicalEnv = await deployer.appEnv(canonicalApp());

    await useProgramOf(REPO_ROOT);
    const preview = JSON.parse((await fixture.project.pulumiOrThrow(["preview", "-s", "warm", "--json"])).replace(/^[^{]*/, "")) as { steps?: { op: string; urn: string }[] };
    const ops = (preview.steps ?? []).filter((step) => step.urn.includes("pulumi-nodejs:dynamic")).map((step) => step.op);
    assert.deepEqual(ops.filter((op) => op !== "same"), [], `the plan: ${JSON.stringify(preview.steps)}`);

    const moved = await fixture.up();
    assert.equal(moved.exitCode, 0, moved.output);
    assert.doesNotMatch(moved.output, /\b\d+ (to )?(create|created|replace|replaced|delete|deleted|update|updated)\b/, moved.output);
    const after = await resources();
    assert.deepEqual(after.map((resource) => [resource.type, resource.urn.split("::").at(-1)]).sort(), [
      ["pulumi-nodejs:dynamic/warmstack:Canonical", "custom-html"],
      ["pulumi-nodejs:dynamic/warmstack:WarmApp", "traefik"],
    ]);
    const snapshotOf = (list: ExportedResource[], name: string) => list.find((resource) => resource.urn.endsWith(`::${name}`))?.outputs?.snapshotId;
    assert.equal(snapshotOf(after, "custom-html"), snapshotOf(before, "canonical-custom-html"), "the known-good snapshot is the same");
    assert.deepEqual(await fixture.containerIds("traefik"), containers, "the warm Traefik was not redeployed");
    assert.equal((await fixture.alerts()).length, alerts, "no upgrade, rollback or restart happened");
    assert.deepEqual(await deployer.appEnv(canonicalApp()), canonicalEnv, "the canonical was not touched");
    assert.equal(await deployer.currentVersion(canonicalApp()), null, "the canonical stays undeployed");
  });
});
