import { randomBytes } from "node:crypto";
import { mkdir, open, readFile, rm, writeFile } from "node:fs/promises";
import * as path from "node:path";
import { execa } from "execa";
import { StackDeployer } from "../../infra/adapters/stack-deployer";
import { waitHttpHealthy } from "../../infra/adapters/health";
import { bed, proxyUrl } from "./bed";

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

async function withLock<T>(file: string, timeoutMs: number, body: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const handle = await open(file, "wx");
      await handle.writeFile(String(process.pid));
      await handle.close();
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      const owner = Number(await readFile(file, "utf8").catch(() => "0"));
      if (owner && !processAlive(owner)) await rm(file, { force: true });
      else if (Date.now() > deadline) throw new Error(`shared Keycloak lock ${file} held by pid ${owner} for too long`);
      else await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
  try {
    return await body();
  } finally {
    await rm(file, { force: true });
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export async function sharedKeycloak(): Promise<SharedKeycloak> {
  await mkdir(home(), { recursive: true, mode: 0o700 });
  const domain = `kc-shared.${bed().domain}`;
  return withLock(path.join(home(), "lock"), 400_000, async () => {
    const abraDir = path.join(home(), "abra");
    const recipeDir = path.join(abraDir, "recipes", "keycloak");
    await rm(recipeDir, { recursive: true, force: true });
    await execa("git", ["clone", "-q", path.join(bed().recipes, "keycloak"), recipeDir]);
    const deployer = new StackDeployer({ abraDir, server: "default", proxyUrl: proxyUrl(), dnsrrEndpoints: true });
    const app = { recipe: "keycloak", domain };
    const passwordFile = path.join(home(), "admin-password");
    const health = { path: "/realms/master" };
    const running = await deployer.currentVersion(app);
    const password = await readFile(passwordFile, "utf8").catch(() => undefined);
    // After a dockerd restart the service is there but Keycloak boots again (or, once its restart
    // attempts are used up, must be restarted): wait for it rather than paying for a fresh deploy.
    if (running === SHARED_KEYCLOAK_VERSION && password) {
      await deployer.revive(app);
      const healthy = await waitHttpHealthy(
        "the shared Keycloak",
        { baseUrl: proxyUrl(), path: health.path, host: domain },
        { timeoutMs: 180_000, intervalMs: 2000 },
      ).then(
        () => true,
        () => false,
      );
      if (healthy) return { domain, adminUser: "admin", adminPassword: password.trim() };
    }
    await deployer.undeploy(app);
    await deployer.remove(app, { volumes: true });
    const adminPassword = randomBytes(18).toString("base64url");
    await writeFile(passwordFile, adminPassword, { mode: 0o600 });
    await deployer.newApp(app, { version: SHARED_KEYCLOAK_VERSION, secrets: { admin_password: adminPassword } });
    await deployer.deploy(app, { ref: SHARED_KEYCLOAK_VERSION, health, timeoutMs: 300_000 });
    return { domain, adminUser: "admin", adminPassword };
  });
}
