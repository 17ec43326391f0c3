import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readdir, readFile, writeFile } from "node:fs/promises";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { LocalWorkspace, Stack } from "@pulumi/pulumi/automation";
import { KeycloakAdmin, KeycloakError } from "../../infra/adapters/keycloak";
import { CREATED_AT_ATTRIBUTE, realmOutputs, RunRealm, RunRealmArgs, STACK_ATTRIBUTE } from "../../infra/run-realm";
import { proxyUrl } from "../support/bed";
import { viaProxy } from "../support/http";
import { PulumiProject } from "../support/pulumi-project";
import { SharedKeycloak, sharedKeycloak } from "../support/shared-keycloak";

const RECIPE = "sso-app";

function hex6(): string {
  return randomBytes(3).toString("hex");
}

/** Every file under dir, recursively: the file backend's state, history and backups. */
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries.filter((entry) => entry.isFile()).map((entry) => path.join(entry.parentPath, entry.name));
}

describe("RunRealm through the Automation API on the shared Keycloak", () => {
  let keycloak: SharedKeycloak;
  let project: PulumiProject;
  let admin: KeycloakAdmin;
  let passwordFile: string;
  const realms = new Set<string>();
  const stacks: Stack[] = [];
  const output: string[] = [];

  before(async () => {
    keycloak = await sharedKeycloak();
    project = await PulumiProject.create();
    passwordFile = path.join(project.stateDir, "keycloak-admin-password");
    await writeFile(passwordFile, keycloak.adminPassword, { mode: 0o600 });
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

  /**
   * A run stack of the project, driven as the runner drives it: inline program, the project
   * directory (so the provider runs in dist/stacks), the admin credentials only in the environment.
   */
  async function runStack(hex: string, adminEnv: Record<string, string>, args: Partial<RunRealmArgs> = {}): Promise<Stack> {
    realms.add(`${RECIPE}-${hex}`);
    const program = async () => {
      const realm = new RunRealm("realm", {
        recipe: RECIPE,
        runId: hex,
        stack: pulumi.getStack(),
        keycloakDomain: keycloak.domain,
        proxyUrl: proxyUrl(),
        stateDir: project.stateDir,
        ...args,
      });
      return realmOutputs(realm);
    };
    const stack = await LocalWorkspace.createOrSelectStack(
      { stackName: `run-${RECIPE}-${hex}`, projectName: "warmstack", program },
      { workDir: project.dir, envVars: { ...project.env(), ...adminEnv } },
    );
    stacks.push(stack);
    return stack;
  }

  const byFile = () => ({ WARMSTACK_KEYCLOAK_ADMIN_PASSWORD_FILE: passwordFile });
  const byEnv = () => ({ WARMSTACK_KEYCLOAK_ADMIN_USER: keycloak.adminUser, WARMSTACK_KEYCLOAK_ADMIN_PASSWORD: keycloak.adminPassword });
  const onOutput = (text: string) => output.push(text);

  it("two run stacks up at once get two working realms, secret in state; destroy removes both and leaves master", { timeout: 900_000 }, async () => {
    const hexes = [hex6(), hex6()];
    const [first, second] = [await runStack(hexes[0]!, byFile()), await runStack(hexes[1]!, byEnv())];
    const ups = await Promise.all([first.up({ onOutput }), second.up({ onOutput })]);

    const outputs = ups.map((up, n) => {
      const realm = `${RECIPE}-${hexes[n]}`;
      assert.equal(up.summary.result, "succeeded");
      assert.equal(up.outputs.realm?.value, realm);
      assert.equal(up.outputs.issuer?.value, `http://${keycloak.domain}/realms/${realm}`);
      assert.equal(up.outputs.tokenEndpoint?.value, `http://${keycloak.domain}/realms/${realm}/protocol/openid-connect/token`);
      assert.equal(up.outputs.clientId?.value, RECIPE);
      assert.equal(up.outputs.testUser?.value, "warmstack-test");
      assert.equal(up.outputs.clientSecret?.secret, true);
      assert.equal(up.outputs.testUserPassword?.secret, true);
      return {
        realm,
        clientSecret: up.outputs.clientSecret!.value as string,
        password: up.outputs.testUserPassword!.value as string,
      };
    });
    assert.notEqual(outputs[0]!.clientSecret, outputs[1]!.clientSecret, "secrets are generated per run");

    const tokens = [];
    for (const [n, run] of outputs.entries()) {
      const attributes = (await admin.findRealm(run.realm))?.attributes;
      assert.equal(attributes?.[STACK_ATTRIBUTE], `run-${RECIPE}-${hexes[n]}`);
      assert.ok(!Number.isNaN(Date.parse(attributes?.[CREATED_AT_ATTRIBUTE] ?? "")));
      tokens.push(await admin.passwordGrant(run.realm, RECIPE, run.clientSecret, "warmstack-test", run.password));
    }
    await assert.rejects(admin.userinfo(outputs[1]!.realm, tokens[0]!.accessToken), (error: KeycloakError) => error.status === 401);

    const secrets = [keycloak.adminPassword, ...outputs.flatMap((run) => [run.clientSecret, run.password])];
    const state = await Promise.all((await filesUnder(path.join(project.stateDir, "pulumi"))).map(async (file) => ({ file, text: await readFile(file, "utf8") })));
    assert.ok(state.some(({ text }) => text.includes(outputs[0]!.realm)), "the backend files hold the realm's state");
    for (const { file, text } of state) {
      for (const value of secrets) assert.ok(!text.includes(value), `a secret in plaintext in ${file}`);
    }
    const printed = output.join("");
    for (const value of secrets) assert.ok(!printed.includes(value), "a secret in the engine's output");

    const destroys = await Promise.all([first.destroy({ onOutput }), second.destroy({ onOutput })]);
    for (const destroy of destroys) assert.equal(destroy.summary.result, "succeeded");
    for (const run of outputs) assert.equal(await admin.realmExists(run.realm), false, `${run.realm} is gone`);
    assert.equal((await viaProxy(keycloak.domain, "/realms/master")).status, 200, "master is untouched");
    await Promise.all([first, second].map((stack) => stack.workspace.removeStack(stack.name)));
  });

  it("eight run stacks creating and destroying realms at once: no error, nothing left", { timeout: 900_000 }, async () => {
    const hexes = Array.from({ length: 8 }, () => hex6());
    const runs = await Promise.all(hexes.map((hex) => runStack(hex, byFile())));
    const ups = await Promise.all(runs.map((stack) => stack.up({ onOutput })));
    for (const up of ups) assert.equal(up.summary.result, "succeeded");
    for (const hex of hexes) assert.equal(await admin.realmExists(`${RECIPE}-${hex}`), true);
    const destroys = await Promise.all(runs.map((stack) => stack.destroy({ onOutput })));
    for (const destroy of destroys) assert.equal(destroy.summary.result, "succeeded");
    const left = (await admin.listRealms()).map((realm) => realm.realm).filter((realm) => hexes.some((hex) => realm.endsWith(hex)));
    assert.deepEqual(left, [], "no realm of these runs is left");
    await Promise.all(runs.map((stack) => stack.workspace.removeStack(stack.name)));
  });

  it("adopts its own realm left by a lost create, with new secrets; refuses one it does not own", { timeout: 600_000 }, async () => {
    // What a killed run leaves: the provider finished the create, the state never learned of it.
    const hex = hex6();
    const realm = `${RECIPE}-${hex}`;
    const lost = { clientSecret: randomBytes(18).toString("base64url"), password: randomBytes(18).toString("base64url") };
    const createdAt = "2026-01-02T03:04:05.000Z";
    await admin.createRunRealm({
      realm,
      clientId: RECIPE,
      clientSecret: lost.clientSecret,
      user: { username: "warmstack-test", password: lost.password },
      attributes: { [STACK_ATTRIBUTE]: `run-${RECIPE}-${hex}`, [CREATED_AT_ATTRIBUTE]: createdAt },
    });
    const stack = await runStack(hex, byFile());
    const up = await stack.up({ onOutput });
    assert.equal(up.summary.result, "succeeded");
    const clientSecret = up.outputs.clientSecret!.value as string;
    assert.notEqual(clientSecret, lost.clientSecret);
    await admin.passwordGrant(realm, RECIPE, clientSecret, "warmstack-test", up.outputs.testUserPassword!.value as string);
    await assert.rejects(admin.passwordGrant(realm, RECIPE, lost.clientSecret, "warmstack-test", lost.password), { status: 401 });
    assert.equal((await admin.findRealm(realm))?.attributes[CREATED_AT_ATTRIBUTE], createdAt, "the realm's age is kept");
    await stack.destroy();
    assert.equal(await admin.realmExists(realm), false);

    const foreignHex = hex6();
    const foreign = `${RECIPE}-${foreignHex}`;
    realms.add(foreign);
    await admin.createRunRealm({
      realm: foreign,
      clientId: RECIPE,
      clientSecret: lost.clientSecret,
      user: { username: "warmstack-test", password: lost.password },
      attributes: { [STACK_ATTRIBUTE]: "run-other-ffffff" },
    });
    const intruder = await runStack(foreignHex, byFile());
    await assert.rejects(
      intruder.up({ onOutput }),
      new RegExp(`realm ${foreign} already exists on ${keycloak.domain.replace(/\./g, "\\.")} and is not stack run-${RECIPE}-${foreignHex}'s \\(it belongs to run-other-ffffff\\); refusing to adopt it`),
    );
    await admin.passwordGrant(foreign, RECIPE, lost.clientSecret, "warmstack-test", lost.password);
    assert.equal((await admin.findRealm(foreign))?.attributes[STACK_ATTRIBUTE], "run-other-ffffff", "a stranger's realm is left as it was");
  });

  it("refuses a bad run id or recipe in check, naming the field, and creates nothing", { timeout: 600_000 }, async () => {
    const cases: Array<[Partial<RunRealmArgs>, RegExp]> = [
      [{ runId: "12345G" }, /runId: "12345G" is not a run id \(exactly 6 lowercase hex digits\)/],
      [{ recipe: "Sso_App" }, /recipe: "Sso_App" is not a valid recipe name/],
      [{ stack: "warm" }, /stack: "warm" is not a run stack name/],
    ];
    const hexes: string[] = ["12345G"];
    for (const [args, message] of cases) {
      const hex = hex6();
      hexes.push(hex);
      const stack = await runStack(hex, byFile(), args);
      await assert.rejects(stack.up({ onOutput }), message);
      const state = await stack.exportStack();
      assert.deepEqual(
        (state.deployment.resources ?? []).filter((resource: { type: string }) => resource.type === "pulumi-nodejs:dynamic/warmstack:RunRealm"),
        [],
        "no realm recorded",
      );
    }
    // Other suites create and delete realms on the shared Keycloak meanwhile: look only for these runs'.
    const created = (await admin.listRealms()).map((realm) => realm.realm).filter((realm) => hexes.some((hex) => realm.toLowerCase().includes(hex.toLowerCase())));
    assert.deepEqual(created, [], "no realm created");
  });

  it("fails clearly, creating nothing, when the admin password is not in the environment", { timeout: 300_000 }, async () => {
    const hex = hex6();
    const stack = await runStack(hex, {});
    await assert.rejects(stack.up({ onOutput }), /no Keycloak admin password for .*: set WARMSTACK_KEYCLOAK_ADMIN_PASSWORD_FILE/);
    assert.equal(await admin.realmExists(`${RECIPE}-${hex}`), false);
  });
});
