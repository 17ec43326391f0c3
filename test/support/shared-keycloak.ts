import { randomBytes } from "node:crypto";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import * as path from "node:path";
import { execa } from "execa";
import { FileCoordination } from "../../infra/adapters/coordination";
import { StackDeployer } from "../../infra/adapters/stack-deployer";
import { waitHttpHealthy } from "../../infra/adapters/health";
import { bed, proxyUrl } from "./bed";
import { withKeycloakBoot } from "./keycloak-boots";

/**
 * One warm Keycloak shared by every test that does not need its own: Keycloak boots take 15–70 s
 * here. Test files run in separate processes, so the first one deploys it under a lock file and
 * the others reuse it; it stays up between suite runs on the same machine.
 */
export interface SharedKeycloak {
  domain: string;
  adminUser: string;
  adminPassword: string;
}

export const SHARED_KEYCLOAK_VERSION = "1.1.0+26.7.3";

function home(): string {
  return path.join(bed().cache, "shared-keycloak");
}

export async function sharedKeycloak(): Promise<SharedKeycloak> {
  await mkdir(home(), { recursive: true, mode: 0o700 });
  const domain = `kc-shared.${bed().domain}`;
  return new FileCoordination(home()).withLock("shared-keycloak", { what: "the shared Keycloak", timeoutMs: 1_800_000 }, async () => {
    const abraDir = path.join(home(), "abra");
    const recipeDir = path.join(abraDir, "recipes", "keycloak");
    await rm(recipeDir, { recursive: true, force: true });
    await execa("git", ["clone", "-q", path.join(bed().recipes, "keycloak"), recipeDir]);
    const deployer = new StackDeployer({ abraDir, server: "default", proxyUrl: proxyUrl(), dnsrrEndpoints: true });
    const app = { recipe: "keycloak", domain };
    const passwordFile = path.join(home(), "admin-password");
    const health = { path: "/realms/master" };
    const healthyWithin = (timeoutMs: number) =>
      waitHttpHealthy("the shared Keycloak", { baseUrl: proxyUrl(), path: health.path, host: domain }, { timeoutMs, intervalMs: 2000 }).then(
        () => true,
        () => false,
      );
    const running = await deployer.currentVersion(app);
    const password = (await readFile(passwordFile, "utf8").catch(() => undefined))?.trim();
    if (running === SHARED_KEYCLOAK_VERSION && password && (await healthyWithin(5000))) return { domain, adminUser: "admin", adminPassword: password };
    return withKeycloakBoot("the shared Keycloak", async () => {
      // After a dockerd restart the service is there but Keycloak boots again (or, once its restart
      // attempts are used up, must be restarted): wait for it rather than paying for a fresh deploy.
      if (running === SHARED_KEYCLOAK_VERSION && password) {
        await deployer.revive(app);
        if (await healthyWithin(180_000)) return { domain, adminUser: "admin", adminPassword: password };
      }
      await deployer.undeploy(app);
      await deployer.remove(app, { volumes: true });
      const adminPassword = randomBytes(18).toString("base64url");
      await writeFile(passwordFile, adminPassword, { mode: 0o600 });
      await deployer.newApp(app, { version: SHARED_KEYCLOAK_VERSION, secrets: { admin_password: adminPassword } });
      await deployer.deploy(app, { ref: SHARED_KEYCLOAK_VERSION, health, timeoutMs: 300_000 });
      return { domain, adminUser: "admin", adminPassword };
    });
  });
}
