import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import * as path from "node:path";
import { LocalWorkspace } from "@pulumi/pulumi/automation";
import { KeycloakAdmin } from "../../infra/adapters/keycloak";
import * as swarm from "../../infra/adapters/swarm";
import { runDomain, stackNameForDomain } from "../../infra/naming";
import { ssoPath } from "../../runner/run-plan";
import { runProgram } from "../../stacks/run";
import { AbraDir } from "../support/abra-dir";
import { bed, proxyUrl } from "../support/bed";
import { withKeycloakBoot } from "../support/keycloak-boots";
import { PulumiProject } from "../support/pulumi-project";
import { sharedKeycloak } from "../support/shared-keycloak";

/**
 * The run program through the real engine, as the runner drives it (project directory, Pulumi.yaml's
 * main): an SSO recipe gets a realm on the shared Keycloak, or a cold Keycloak of its own when the
 * runner found the shared one not answering, and destroy leaves nothing.
 */
describe("run stacks of an SSO recipe (sso-app fixture)", { concurrency: true }, () => {
  let project: PulumiProject;
  let abra: AbraDir;

  before(async () => {
    project = await PulumiProject.create();
    abra = await AbraDir.create(["sso-app", "keycloak"]);
    await abra.keepOnlyTags("keycloak", ["1.1.0+26.7.3"]);
  });

  after(async () => {
    await abra.dispose();
    await project.dispose();
  });

  async function runStack(hex: string, sso: Record<string, string>, adminPasswordFile: string | undefined) {
    const stackName = `run-sso-app-${hex}`;
    const stack = await LocalWorkspace.createOrSelectStack(
      { stackName, projectName: "warmstack", program: runProgram },
      {
        workDir: project.dir,
        envVars: { ...project.env(), ...(adminPasswordFile ? { WARMSTACK_KEYCLOAK_ADMIN_PASSWORD_FILE: adminPasswordFile } : {}) },
      },
    );
    const config: Record<string, string> = {
      recipe: "sso-app",
      runId: hex,
      baseDomain: bed().domain,
      abraDir: abra.root,
      proxyUrl: proxyUrl(),
      stateDir: project.stateDir,
      ...sso,
    };
    for (const [key, value] of Object.entries(config)) await stack.setConfig(`warmstack:${key}`, { value });
    return stack;
  }

  async function grantWorks(outputs: Record<string, { value: unknown }>, keycloakDomain: string): Promise<void> {
    const value = (key: string) => String(outputs[key]?.value);
    const keycloak = new KeycloakAdmin(
      { url: `http://${keycloakDomain}`, proxyUrl: proxyUrl(), adminUser: "unused", adminPassword: "unused" },
      { stateDir: project.stateDir },
    );
    try {
      const tokens = await keycloak.passwordGrant(value("realm"), value("clientId"), value("clientSecret"), value("testUser"), value("testUserPassword"));
      assert.ok(tokens.accessToken.length > 20);
    } finally {
      keycloak.close();
    }
  }

  it("borrows the shared Keycloak: a realm of its own, a working password grant, gone after destroy", async () => {
    const shared = await sharedKeycloak();
    const passwordFile = path.join(project.stateDir, "kc-admin-password");
    await writeFile(passwordFile, shared.adminPassword, { mode: 0o600 });
    const id = randomBytes(3).toString("hex");
    const stack = await runStack(id, { sso: "warm-keycloak", keycloakDomain: shared.domain }, passwordFile);
    const up = await stack.up();
    assert.equal(up.outputs.sso?.value, "warm-keycloak");
    assert.equal(up.outputs.issuer?.value, `http://${shared.domain}/realms/sso-app-${id}`);
    assert.equal(up.outputs.clientSecret?.secret, true);
    await grantWorks(up.outputs, shared.domain);
    assert.equal(up.stdout.includes(String(up.outputs.clientSecret?.value)), false, "no secret in the engine output");

    await stack.destroy();
    const admin = new KeycloakAdmin(
      { url: `http://${shared.domain}`, proxyUrl: proxyUrl(), adminUser: shared.adminUser, adminPassword: shared.adminPassword },
      { stateDir: project.stateDir },
    );
    try {
      assert.equal(await admin.realmExists(`sso-app-${id}`), false, "the realm went with the stack");
      assert.equal(await admin.realmExists("master"), true);
    } finally {
      admin.close();
    }
  });

  it("a shared Keycloak that does not answer sends the run to a cold Keycloak of its own, which destroy removes with its volumes", async () => {
    await mkdir(project.stateDir, { recursive: true });
    const absent = `absent-kc.${bed().domain}`;
    const chosen = await ssoPath(true, absent, proxyUrl());
    assert.equal(chosen.sso, "cold-keycloak");
    assert.match(String(chosen.ssoFallback), /absent-kc\.warm\.test answers \/realms\/master with HTTP 404/);
    const id = randomBytes(3).toString("hex");
    const stack = await runStack(id, { sso: chosen.sso, ssoFallback: chosen.ssoFallback ?? "" }, undefined);
    const up = await withKeycloakBoot("the run's cold Keycloak", () => stack.up());
    assert.equal(up.outputs.sso?.value, "cold-keycloak");
    assert.equal(up.outputs.ssoFallback?.value, chosen.ssoFallback);
    const coldDomain = runDomain("keycloak", id, bed().domain);
    assert.equal(up.outputs.issuer?.value, `http://${coldDomain}/realms/sso-app-${id}`);
    await grantWorks(up.outputs, coldDomain);

    await stack.destroy();
    const coldStack = stackNameForDomain(coldDomain);
    assert.deepEqual(await swarm.stackServices(coldStack), []);
    assert.deepEqual(await swarm.stackVolumes(coldStack), [], "the cold Keycloak's volumes are gone");
  });
});
