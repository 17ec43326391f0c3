import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import * as net from "node:net";
import * as path from "node:path";
import { execa } from "execa";
import type { WarmSummary } from "../../runner/warm-run";
import { bed } from "../support/bed";
import { catalogueWithSources } from "../support/catalogues";
import { giteaApi, GiteaRepo } from "../support/gitea";
import { REPO_ROOT } from "../support/pulumi-project";
import { freePort, WarmStackFixture } from "../support/warm-stack";

/**
 * Warm operations fetch every recipe from its remote first: a release tagged on the bed's real Gitea
 * shows up in `warmstack preview`; a remote that refuses or never answers keeps the checkout the warm
 * stack has (preview warns, up alerts, nothing moves), and the fetch is bounded by its deadline.
 */
const BASE = "1.0.0+3.6.12";
const PATCH = "1.0.1+3.6.12";
const admin = giteaApi("admin");

describe("recipe sources of the warm stack", { concurrency: false }, () => {
  let fixture: WarmStackFixture;
  let repo: GiteaRepo;
  let silent: net.Server;

  before(async () => {
    fixture = await WarmStackFixture.create([{ kind: "traefik", initialTags: [BASE] }]);
    // The remote has released only what the checkout has: the base version.
    repo = await admin.createRecipeRepo("traefik", undefined, fixture.abra.remote("traefik"));
    const up = await fixture.up();
    assert.equal(up.exitCode, 0, up.output);
    // Accepts connections and never answers: a remote that hangs.
    silent = net.createServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
  });

  after(async () => {
    silent?.close();
    await fixture?.dispose();
    if (repo) await admin.deleteRepo(repo);
  });

  async function warmstack(args: string[], source: string, env: Record<string, string> = {}) {
    fixture.project.catalogue = await catalogueWithSources(fixture.project.stateDir, { traefik: source });
    return execa("node", [path.join(REPO_ROOT, "dist", "runner", "cli.js"), ...args], { env: { ...fixture.project.env(), ...env }, reject: false });
  }

  it("a remote that refuses: preview warns, up alerts and moves nothing, planned from the checkout it has", async () => {
    const closed = `http://127.0.0.1:${await freePort()}/coop-cloud/traefik.git`;
    const containers = await fixture.containerIds("traefik");
    const preview = await warmstack(["preview"], closed);
    assert.equal(preview.exitCode, 0, preview.stderr);
    assert.match(preview.stdout, new RegExp(`WARNING recipe traefik: could not fetch ${closed.replace(/[.]/g, "\\.")}; planned from the checkout it has`));
    assert.match(preview.stdout, new RegExp(`traefik \\(\\S+\\): stays at ${BASE.replace(/[.+]/g, "\\$&")}`));
    const up = await warmstack(["up", "--json"], closed);
    assert.equal(up.exitCode, 0, up.stderr);
    const summary = JSON.parse(up.stdout) as WarmSummary;
    assert.deepEqual(summary.fetches.map((fetch) => [fetch.recipe, fetch.outcome]), [["traefik", "failed"]]);
    const alerts = (await fixture.alerts()).filter((alert) => alert.outcome === "fetch-failed");
    assert.equal(alerts.length, 1, "one alert for the one failed fetch");
    assert.match(alerts[0]!.reason, /could not fetch recipe traefik from/);
    assert.deepEqual(await fixture.containerIds("traefik"), containers, "nothing was redeployed");
  });

  it("a remote that never answers is given up at its deadline, which the warning names", async () => {
    const address = silent.address() as net.AddressInfo;
    const preview = await warmstack(["preview", "--json"], `http://127.0.0.1:${address.port}/traefik.git`, { WARMSTACK_GIT_TIMEOUT_SECONDS: "3" });
    assert.equal(preview.exitCode, 0, preview.stderr);
    const summary = JSON.parse(preview.stdout) as WarmSummary;
    assert.equal(summary.fetches[0]?.outcome, "failed");
    assert.match(summary.fetches[0]?.detail ?? "", /no answer within 3s/);
  });

  it("a release tagged on the forge appears in preview after the fetch", async () => {
    const quiet = await warmstack(["preview", "--json"], repo.cloneUrl);
    assert.deepEqual((JSON.parse(quiet.stdout) as WarmSummary).plan.map((app) => [app.app, app.action, app.target]), [["traefik", "stay", BASE]]);
    const commit = (await execa("git", ["-C", path.join(bed().recipes, "traefik"), "rev-parse", `${PATCH}^{commit}`])).stdout.trim();
    await admin.pushTag(repo, PATCH, commit);
    const preview = await warmstack(["preview", "--json"], repo.cloneUrl);
    assert.equal(preview.exitCode, 0, preview.stderr);
    const summary = JSON.parse(preview.stdout) as WarmSummary;
    assert.deepEqual(summary.fetches.map((fetch) => [fetch.recipe, fetch.outcome, fetch.source]), [["traefik", "fetched", repo.cloneUrl]]);
    assert.deepEqual(summary.plan.map((app) => [app.app, app.current, app.target]), [["traefik", BASE, PATCH]]);
  });
});
