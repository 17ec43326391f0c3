import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, unlink, writeFile } from "node:fs/promises";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { LocalWorkspace, Stack } from "@pulumi/pulumi/automation";
import { execa } from "execa";
import { KeycloakAdmin } from "../../infra/adapters/keycloak";
import { FileCoordination } from "../../infra/adapters/coordination";
import { leasedCanonicalSchema } from "../../infra/config";
import { WARM_LEASE_HOLDER } from "../../infra/naming";
import type { ReapDecision } from "../../infra/reaper";
import { RUN_OWNER_KEY } from "../../infra/run-app";
import { CREATED_AT_ATTRIBUTE, RunRealm, STACK_ATTRIBUTE } from "../../infra/run-realm";
import type { ReapReport } from "../../runner/reap";
import { proxyUrl } from "../support/bed";
import { viaProxy } from "../support/http";
import { PulumiProject, REPO_ROOT } from "../support/pulumi-project";
import { SharedKeycloak, sharedKeycloak } from "../support/shared-keycloak";

function hex6(): string {
  return randomBytes(3).toString("hex");
}

// The shared Keycloak holds other suites' live realms, which this suite's registry does not know:
// every reap here is scoped to a recipe only this process uses.
const RECIPE = `reap${hex6()}`;

describe("warmstack reap on the shared Keycloak", () => {
  let keycloak: SharedKeycloak;
  let project: PulumiProject;
  let admin: KeycloakAdmin;
  let abraDir: string;
  const realms = new Set<string>();
  const stacks: Stack[] = [];

  before(async () => {
    keycloak = await sharedKeycloak();
    project = await PulumiProject.create();
    abraDir = path.join(project.stateDir, "abra");
    await writeFile(path.join(project.stateDir, "keycloak-admin-password"), keycloak.adminPassword, { mode: 0o600 });
    admin = new KeycloakAdmin(
      { url: `http://${keycloak.domain}`, proxyUrl: proxyUrl(), adminUser: keycloak.adminUser, adminPassword: keycloak.adminPassword },
      { stateDir: project.stateDir },
    );
  });

  after(async () => {
    for (const stack of stacks) await stack.destroy().catch(() => undefined);
    for (const realm of realms) await admin.deleteRealm(realm);
    await admin.close();
    await project.dispose();
  });

  function adminEnv(): Record<string, string> {
    return { WARMSTACK_KEYCLOAK_ADMIN_USER: keycloak.adminUser, WARMSTACK_KEYCLOAK_ADMIN_PASSWORD_FILE: path.join(project.stateDir, "keycloak-admin-password") };
  }

  /** A run stack with its realm, up through the engine as a run would have it. */
  async function upRunStack(hex: string): Promise<Stack> {
    realms.add(`${RECIPE}-${hex}`);
    const program = async () => {
      const realm = new RunRealm("realm", {
        recipe: RECIPE,
        runId: hex,
        stack: pulumi.getStack(),
        keycloakDomain: keycloak.domain,
        proxyUrl: proxyUrl(),
        stateDir: project.stateDir,
      });
      return { realm: realm.realm };
    };
    const stack = await LocalWorkspace.createOrSelectStack(
      { stackName: `run-${RECIPE}-${hex}`, projectName: "warmstack", program },
      { workDir: project.dir, envVars: { ...project.env(), ...adminEnv() } },
    );
    stacks.push(stack);
    assert.equal((await stack.up()).summary.result, "succeeded");
    return stack;
  }

  async function createRealm(hex: string, attributes: Record<string, string>): Promise<string> {
    const realm = `${RECIPE}-${hex}`;
    realms.add(realm);
    const secret = randomBytes(18).toString("base64url");
    await admin.createRunRealm({ realm, clientId: RECIPE, clientSecret: secret, user: { username: "warmstack-test", password: secret }, attributes });
    return realm;
  }

  async function runReap(...extra: string[]): Promise<ReapReport> {
    const args = ["reap", "--json", "--recipe", RECIPE, "--keycloak-domain", keycloak.domain, "--abra-dir", abraDir, "--proxy-url", proxyUrl(), ...extra];
    const result = await execa("node", [path.join(REPO_ROOT, "dist", "runner", "cli.js"), ...args], {
      env: { ...project.env(), ...adminEnv() },
      reject: false,
      timeout: 300_000,
      all: true,
    });
    const output = String(result.all ?? "");
    assert.ok(!output.includes(keycloak.adminPassword), "the admin password in reap's output");
    assert.equal(result.exitCode, 0, output);
    return JSON.parse(String(result.stdout)) as ReapReport;
  }

  const names = (decisions: ReapDecision[]) =>
    decisions.map((d) => (d.kind === "realm" ? `realm ${d.realm}` : d.kind === "app" ? `app ${d.domain}` : `${d.kind} ${d.stack}`)).sort();

  async function backendStacks(): Promise<string[]> {
    const workspace = await LocalWorkspace.create({ workDir: project.dir, envVars: project.env() });
    return (await workspace.listStacks()).map((s) => s.name);
  }

  it("removes only the realm and app whose run is gone; --dry-run only lists them; a live run's, a foreign realm and master stay", { timeout: 600_000 }, async () => {
    const goneHex = hex6();
    const gone = await upRunStack(goneHex);
    const goneRealm = `${RECIPE}-${goneHex}`;
    // What a crashed run can leave: its state deleted, its realm still on Keycloak.
    const rm = await project.pulumi(["stack", "rm", "--force", "--yes", "-s", gone.name]);
    assert.equal(rm.exitCode, 0, rm.output);
    assert.equal(await admin.realmExists(goneRealm), true);

    const liveHex = hex6();
    const liveStack = `run-${RECIPE}-${liveHex}`;
    await new FileCoordination(project.stateDir).register(liveStack);
    const liveRealm = await createRealm(liveHex, { [STACK_ATTRIBUTE]: liveStack, [CREATED_AT_ATTRIBUTE]: new Date().toISOString() });
    const foreignRealm = await createRealm(hex6(), { "someone.else": "theirs" });

    const server = path.join(abraDir, "servers", "default");
    await mkdir(server, { recursive: true });
    const orphanApp = path.join(server, `reap-${goneHex}.test.env`);
    const liveApp = path.join(server, `reap-${liveHex}.test.env`);
    const warmApp = path.join(server, `warm-${RECIPE}.test.env`);
    await writeFile(orphanApp, `TYPE=${RECIPE}\nDOMAIN=reap-${goneHex}.test\n${RUN_OWNER_KEY}=${gone.name}\n`);
    await writeFile(liveApp, `TYPE=${RECIPE}\nDOMAIN=reap-${liveHex}.test\n${RUN_OWNER_KEY}=${liveStack}\n`);
    await writeFile(warmApp, `TYPE=${RECIPE}\nDOMAIN=warm-${RECIPE}.test\n`);

    try {
      const dry = await runReap("--dry-run");
      assert.equal(dry.dryRun, true);
      assert.deepEqual(names(dry.removed), [`app reap-${goneHex}.test`, `realm ${goneRealm}`]);
      assert.ok(dry.removed.every((d) => d.reason.includes("not live")));
      assert.deepEqual(names(dry.kept), [`app reap-${liveHex}.test`, `realm ${foreignRealm}`, `realm ${liveRealm}`, `registration ${liveStack}`].sort());
      for (const realm of [goneRealm, liveRealm, foreignRealm]) assert.equal(await admin.realmExists(realm), true, `${realm} after --dry-run`);
      assert.ok(existsSync(orphanApp), "the orphan app after --dry-run");

      const real = await runReap();
      assert.deepEqual(names(real.removed), [`app reap-${goneHex}.test`, `realm ${goneRealm}`]);
      assert.deepEqual(real.failed, []);
      assert.equal(await admin.realmExists(goneRealm), false);
      assert.equal(await admin.realmExists(liveRealm), true);
      assert.equal(await admin.realmExists(foreignRealm), true);
      assert.ok(!existsSync(orphanApp) && existsSync(liveApp) && existsSync(warmApp), "only the orphan app is removed");
      assert.equal((await viaProxy(keycloak.domain, "/realms/master")).status, 200, "master is untouched");
    } finally {
      // Once unregistered, the "live" run's realm and app would be the next test's orphans.
      await new FileCoordination(project.stateDir).unregister(liveStack);
      await admin.deleteRealm(liveRealm);
      await unlink(liveApp).catch(() => undefined);
    }
  });

  it("frees a canonical's lease the warm stack left when its process died, putting nothing back, and keeps one whose process runs", async () => {
    const canonical = leasedCanonicalSchema.parse({
      // No such app or snapshot exists: a put-back would fail, and reap with it.
      domain: `warm-${RECIPE}.warm.test`,
      knownGood: "1.0.0+1.0",
      snapshotStore: `wstest_none_${hex6()}`,
      helperImage: "warmstack/base:bookworm",
      deployerSettings: { deployer: "stack", abraDir, server: "default", proxyUrl: proxyUrl(), dnsrrEndpoints: true },
      health: { path: "/health" },
      deployTimeoutMs: 30_000,
    });
    assert.equal((await new FileCoordination(project.stateDir).tryTakeLease(RECIPE, WARM_LEASE_HOLDER, canonical)).taken, true);
    const kept = await runReap();
    assert.deepEqual(names(kept.removed), []);
    assert.ok(kept.kept.some((d) => d.kind === "lease" && d.stack === WARM_LEASE_HOLDER && /warm stack is changing the canonical/.test(d.reason)));
    assert.equal((await new FileCoordination(project.stateDir).readLease(RECIPE))?.pid, process.pid, "the lease of a live process stays");

    // The pid of a process that has ended, as a killed `up` leaves its provider's.
    const exited = execa("true");
    const deadPid = exited.pid!;
    await exited;
    const lease = JSON.parse(await readFile(new FileCoordination(project.stateDir).leaseFile(RECIPE), "utf8")) as Record<string, unknown>;
    await writeFile(new FileCoordination(project.stateDir).leaseFile(RECIPE), JSON.stringify({ ...lease, pid: deadPid }));
    const freed = await runReap();
    assert.deepEqual(names(freed.removed), ["lease warm"]);
    assert.match(freed.removed[0]!.reason, new RegExp(`process ${deadPid} is gone`));
    assert.equal(await new FileCoordination(project.stateDir).readLease(RECIPE), null);
  });

  it("prunes the results of runs that finished before --keep-results-days, only those, and refuses a bad retention", async () => {
    const root = path.join(project.stateDir, "results");
    const write = async (stack: string, content: string) => {
      await mkdir(path.join(root, stack), { recursive: true });
      await writeFile(path.join(root, stack, "results.json"), content);
      await writeFile(path.join(root, stack, "summary.md"), "summary");
    };
    const daysAgo = (days: number) => new Date(Date.now() - days * 86_400_000).toISOString();
    const [expired, recent, unreadable, otherRecipe] = [`run-${RECIPE}-${hex6()}`, `run-${RECIPE}-${hex6()}`, `run-${RECIPE}-${hex6()}`, `run-other-${hex6()}`];
    await write(expired, JSON.stringify({ finishedAt: daysAgo(40) }));
    await write(recent, JSON.stringify({ finishedAt: daysAgo(2) }));
    await write(unreadable, "{not json");
    await write(otherRecipe, JSON.stringify({ finishedAt: daysAgo(40) }));

    const refused = await execa("node", [path.join(REPO_ROOT, "dist", "runner", "cli.js"), "reap", "--keep-results-days", "0", "--proxy-url", proxyUrl()], { env: project.env(), reject: false });
    assert.notEqual(refused.exitCode, 0);
    assert.match(String(refused.stderr), /--keep-results-days: /);
    assert.equal(existsSync(path.join(root, expired)), true, "a refused reap removes nothing");

    const report = await runReap("--keep-results-days", "30");
    assert.deepEqual(names(report.removed), [`results ${expired}`]);
    assert.deepEqual((await readdir(root)).sort(), [otherRecipe, recent, unreadable].sort(), "only the expired run of this recipe's results are gone");
  });

  it("destroys a run stack whose registered process is dead, with its realm, and drops the registration", { timeout: 600_000 }, async () => {
    const hex = hex6();
    const stack = await upRunStack(hex);
    const exited = execa("node", ["-e", ""]);
    const deadPid = exited.pid!;
    await exited;
    await new FileCoordination(project.stateDir).register(stack.name, deadPid);

    const report = await runReap();
    assert.deepEqual(report.failed, []);
    // The realm was judged before the stack's destroy removed it; its own delete then finds it absent.
    assert.deepEqual(names(report.removed), [`realm ${RECIPE}-${hex}`, `registration ${stack.name}`, `stack ${stack.name}`]);
    assert.equal(await admin.realmExists(`${RECIPE}-${hex}`), false, "the stale run's realm is gone");
    assert.ok(!(await backendStacks()).includes(stack.name), "the stale run stack is removed from the backend");
    assert.ok(!existsSync(path.join(project.stateDir, "runs", `${stack.name}.json`)), "the dead run's registration is removed");
  });

  it("after a SIGKILL in the middle of `up`, reap frees the dead lock and leaves nothing of that run", { timeout: 600_000 }, async () => {
    // `pulumi config set` of an all-digit hex reaches the program as a number (infra/config.ts
    // decodes it), which the run config refuses: that is not what this test is about.
    let hex = hex6();
    while (!/[a-f]/.test(hex)) hex = hex6();
    const name = `run-${RECIPE}-${hex}`;
    const realm = `${RECIPE}-${hex}`;
    realms.add(realm);
    assert.equal((await project.pulumi(["stack", "init", name])).exitCode, 0);
    // Its own ABRA_DIR, as each run has, holding an app its provider made unobserved.
    const runAbraDir = path.join(project.stateDir, `abra-${hex}`);
    const lostApp = path.join(runAbraDir, "servers", "default", `reap-${hex}.test.env`);
    await mkdir(path.dirname(lostApp), { recursive: true });
    await writeFile(lostApp, `TYPE=${RECIPE}\nDOMAIN=reap-${hex}.test\n${RUN_OWNER_KEY}=${name}\n`);
    const config: Record<string, string> = {
      recipe: RECIPE,
      runId: hex,
      baseDomain: "reap.test",
      abraDir: runAbraDir,
      proxyUrl: proxyUrl(),
      stateDir: project.stateDir,
      sso: "warm-keycloak",
      keycloakDomain: keycloak.domain,
    };
    for (const [key, value] of Object.entries(config)) {
      const set = await project.pulumi(["config", "set", "-s", name, `warmstack:${key}`, value]);
      assert.equal(set.exitCode, 0, set.output);
    }
    // Its own process group, so the kill takes the language host and the provider with it, as a
    // killed CI job's would be.
    const up = execa("pulumi", ["up", "--yes", "--skip-preview", "--non-interactive", "-s", name], {
      cwd: project.dir,
      env: { ...project.env(), ...adminEnv() },
      detached: true,
      reject: false,
      timeout: 300_000,
      all: true,
    });
    let ended: string | undefined;
    void up.then((result) => (ended = String(result.all)));
    await new FileCoordination(project.stateDir).register(name, up.pid!);
    const deadline = Date.now() + 180_000;
    while (!(await admin.realmExists(realm))) {
      assert.equal(ended, undefined, "`up` ended before it created the realm");
      assert.ok(Date.now() < deadline, "the realm did not appear within 180 s");
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    process.kill(-up.pid!, "SIGKILL");
    await up;
    const locks = (await readdir(path.join(project.stateDir, "pulumi", ".pulumi", "locks"), { recursive: true, withFileTypes: true }).catch(() => []))
      .filter((entry) => entry.isFile() && path.basename(entry.parentPath) === name && entry.name.endsWith(".json"));
    assert.equal(locks.length, 1, "the killed `up` left its lock");

    const report = await runReap();
    assert.deepEqual(report.failed, []);
    assert.deepEqual(names(report.removed), [`app reap-${hex}.test`, `realm ${realm}`, `registration ${name}`, `stack ${name}`]);
    assert.equal(await admin.realmExists(realm), false, "the killed run's realm is gone");
    assert.ok(!existsSync(lostApp), "the app in the run's own ABRA_DIR is gone");
    assert.ok(!(await backendStacks()).includes(name), "the killed run's stack is removed from the backend");
    assert.ok(!existsSync(path.join(project.stateDir, "runs", `${name}.json`)), "the killed run's registration is removed");
  });
});
