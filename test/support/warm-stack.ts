import type { TestContext } from "node:test";
import assert from "node:assert/strict";
import { randomInt } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import * as net from "node:net";
import * as path from "node:path";
import { listAlerts, AlertRecord } from "../../infra/adapters/alerts";
import { StackDeployer } from "../../infra/adapters/stack-deployer";
import * as swarm from "../../infra/adapters/swarm";
import { stackNameForDomain } from "../../infra/naming";
import { AbraDir } from "./abra-dir";
import { keycloakAdmin, realmExists } from "./keycloak-admin";
import { bootDiagnostics } from "./boot-diagnostics";
import { withKeycloakBoot } from "./keycloak-boots";
import { bed, proxyUrl, uniqueDomain } from "./bed";
import { PulumiProject } from "./pulumi-project";

/** Pulumi's marker for a secret value in an exported deployment. */
const SECRET_SIGNATURE = "4dabf18193072939515e22adb298388d";

/** With --show-secrets, a secret is exported as { [signature]: …, plaintext: "<JSON>" }. */
function revealSecrets(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(revealSecrets);
  if (value && typeof value === "object") {
    const record = value as Record<string, unknown>;
    if (SECRET_SIGNATURE in record) return typeof record.plaintext === "string" ? revealSecrets(JSON.parse(record.plaintext)) : "[secret]";
    return Object.fromEntries(Object.entries(record).map(([key, entry]) => [key, revealSecrets(entry)]));
  }
  return value;
}

/**
 * A free TCP port for a test's own Traefik (host-mode publishing binds it on every address). It is
 * taken below the kernel's ephemeral range: a port the OS hands out for listen(0) is also handed to
 * outgoing connections, and one took it between the check and Traefik's bind.
 */
export async function freePort(): Promise<number> {
  const range = await readFile("/proc/sys/net/ipv4/ip_local_port_range", "utf8").catch(() => "32768 60999");
  const ephemeralFrom = Number(range.trim().split(/\s+/)[0]) || 32768;
  const from = 20000;
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = from + randomInt(Math.max(1000, ephemeralFrom - from));
    if (port < ephemeralFrom && (await canListen(port))) return port;
  }
  throw new Error(`no free port between ${from} and ${ephemeralFrom} after 50 tries`);
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "0.0.0.0", () => server.close(() => resolve(true)));
  });
}

export interface WarmAppSpec {
  kind: "keycloak" | "traefik";
  initialTags: readonly string[];
  deployTimeoutSeconds?: number;
}

/** The first label of a fixture app's domain (`kc-<hex>.<bed domain>`): no product name starts so. */
export const FIXTURE_DOMAIN_PREFIX = { keycloak: "kc", traefik: "tr" } as const;

/** The stacks of fixture apps, of this run or left by a killed one: named by `uniqueDomain`. */
export function isFixtureStack(stack: string, bedDomain: string): boolean {
  const prefixes = Object.values(FIXTURE_DOMAIN_PREFIX).join("|");
  return new RegExp(`^(${prefixes})-[0-9a-f]{1,6}_${bedDomain.replace(/\./g, "_")}$`).test(stack);
}

/**
 * A warm stack of its own for one test: a project directory and file backend, a $ABRA_DIR with
 * trimmed recipe clones, unique domains, its own Traefik port, snapshot store and alert directory.
 * Driven through the real pulumi CLI, as an operator would.
 */
export class WarmStackFixture {
  readonly domains: Record<string, string> = {};
  traefikPort = 0;

  private constructor(
    readonly project: PulumiProject,
    readonly abra: AbraDir,
    readonly snapshotStore: string,
  ) {}

  static async create(apps: readonly WarmAppSpec[], extraConfig: Record<string, string> = {}): Promise<WarmStackFixture> {
    const project = await PulumiProject.create();
    const abra = await AbraDir.create(apps.map((app) => app.kind));
    project.catalogue = await abra.catalogue();
    const fixture = new WarmStackFixture(project, abra, `warmstack_test_snapshots_${Math.random().toString(16).slice(2, 8)}`);
    const appsConfig: Record<string, unknown> = {};
    for (const app of apps) {
      await abra.keepOnlyTags(app.kind, app.initialTags);
      fixture.domains[app.kind] = uniqueDomain(FIXTURE_DOMAIN_PREFIX[app.kind]);
      if (app.kind === "keycloak") {
        appsConfig.keycloak = {
          recipe: "keycloak",
          kind: "stateful",
          domain: fixture.domains.keycloak,
          health: { path: "/realms/master" },
          deployTimeoutSeconds: app.deployTimeoutSeconds ?? 300,
        };
      } else {
        fixture.traefikPort = await freePort();
        appsConfig.traefik = {
          recipe: "traefik",
          kind: "stateless",
          domain: fixture.domains.traefik,
          health: { path: "/ping", baseUrl: `http://127.0.0.1:${fixture.traefikPort}` },
          env: { WEB_PORT: String(fixture.traefikPort) },
          deployTimeoutSeconds: app.deployTimeoutSeconds ?? 60,
        };
      }
    }
    await fixture.cli(["stack", "init", "warm"]);
    const config: Record<string, string> = {
      baseDomain: bed().domain,
      abraDir: abra.root,
      proxyUrl: proxyUrl(),
      alertDir: fixture.alertDir,
      snapshotStore: fixture.snapshotStore,
      apps: JSON.stringify(appsConfig),
      ...extraConfig,
    };
    for (const [key, value] of Object.entries(config)) {
      // As an operator would: a webhook URL may carry a token.
      const secret = key === "alertWebhook" ? ["--secret"] : [];
      await fixture.cli(["config", "set", "-s", "warm", ...secret, `warmstack:${key}`, value]);
    }
    return fixture;
  }

  get alertDir(): string {
    return path.join(this.project.stateDir, "alerts");
  }

  /** Sets one app's deploy timeout in the warm stack's config, as an operator would between ups. */
  async setDeployTimeout(kind: "keycloak" | "traefik", seconds: number): Promise<void> {
    const apps = JSON.parse(await this.cli(["config", "get", "-s", "warm", "warmstack:apps"])) as Record<string, Record<string, unknown>>;
    apps[kind]!.deployTimeoutSeconds = seconds;
    await this.cli(["config", "set", "-s", "warm", "warmstack:apps", JSON.stringify(apps)]);
  }

  deployer(): StackDeployer {
    return new StackDeployer({ abraDir: this.abra.root, server: "default", proxyUrl: proxyUrl(), dnsrrEndpoints: true });
  }

  app(kind: "keycloak" | "traefik") {
    return { recipe: kind, domain: this.domains[kind]! };
  }

  cli(args: readonly string[]): Promise<string> {
    return this.project.pulumiOrThrow(args);
  }

  /** An up of a warm stack with a Keycloak boots one, so it waits for a boot slot first. */
  up(): Promise<{ exitCode: number; output: string }> {
    const up = () => this.project.pulumi(["up", "-s", "warm", "--yes", "--skip-preview"]);
    return this.domains.keycloak ? withKeycloakBoot(`the up of ${this.domains.keycloak}`, up) : up();
  }

  /** Why the Keycloak did not come up (support/boot-diagnostics.ts). */
  keycloakDiagnostics(): Promise<string> {
    return bootDiagnostics(stackNameForDomain(this.domains.keycloak!), this.domains.keycloak!);
  }

  preview(): Promise<{ exitCode: number; output: string }> {
    return this.project.pulumi(["preview", "-s", "warm"]);
  }

  async outputs(): Promise<Record<string, unknown>> {
    return JSON.parse(await this.cli(["stack", "output", "-s", "warm", "--json"])) as Record<string, unknown>;
  }

  /** The WarmApp resource's outputs, secrets decrypted (for the tests that need an admin password). */
  async resourceOutputs(app: string, showSecrets = false): Promise<Record<string, unknown>> {
    const exported = JSON.parse(await this.cli(["stack", "export", "-s", "warm", ...(showSecrets ? ["--show-secrets"] : [])])) as {
      deployment: { resources?: { urn: string; outputs?: Record<string, unknown> }[] };
    };
    const resource = exported.deployment.resources?.find((entry) => entry.urn.endsWith(`WarmApp::${app}`) || entry.urn.endsWith(`::${app}`));
    if (!resource) throw new Error(`no resource ${app} in the warm stack's state`);
    return revealSecrets(resource.outputs ?? {}) as Record<string, unknown>;
  }

  async alerts(): Promise<AlertRecord[]> {
    return listAlerts(this.alertDir);
  }

  async containerIds(kind: "keycloak" | "traefik"): Promise<string[]> {
    return (await swarm.stackContainers(stackNameForDomain(this.domains[kind]!))).sort();
  }

  /** Every file of the backend, for asserting that no secret is stored in plain text. */
  async stateText(): Promise<string> {
    const root = path.join(this.project.stateDir, "pulumi");
    const texts: string[] = [];
    const walk = async (dir: string): Promise<void> => {
      for (const entry of await readdir(dir, { withFileTypes: true })) {
        const full = path.join(dir, entry.name);
        if (entry.isDirectory()) await walk(full);
        else texts.push(await readFile(full, "utf8").catch(() => ""));
      }
    };
    await walk(root);
    return texts.join("\n");
  }

  async dispose(): Promise<void> {
    await this.project.pulumi(["destroy", "-s", "warm", "--yes", "--skip-preview"]);
    const deployer = this.deployer();
    for (const kind of Object.keys(this.domains) as ("keycloak" | "traefik")[]) {
      await deployer.undeploy(this.app(kind)).catch(() => undefined);
      await deployer.remove(this.app(kind), { volumes: true }).catch(() => undefined);
    }
    await swarm.docker(["volume", "rm", "-f", this.snapshotStore]).catch(() => undefined);
    await this.abra.dispose();
    await this.project.dispose();
  }
}

/**
 * Keycloak's first boot creates its schema and master realm: 20 s on a quiet machine, 140 s seen on a
 * CI machine running four suites beside it. It gets this long whatever a test sets for what follows.
 */
const FIRST_BOOT_TIMEOUT_SECONDS = 400;

/** A warm stack whose Keycloak has booted at the first of `initialTags`, then given the test's own deploy timeout. */
export async function bootedKeycloak(t: TestContext, initialTags: readonly string[], deployTimeoutSeconds?: number): Promise<{ fixture: WarmStackFixture; firstUp: string }> {
  const fixture = await WarmStackFixture.create([{ kind: "keycloak", initialTags, deployTimeoutSeconds: FIRST_BOOT_TIMEOUT_SECONDS }]);
  t.after(() => fixture.dispose());
  const up = await fixture.up();
  if (up.exitCode !== 0) assert.fail(`${up.output}\n${await fixture.keycloakDiagnostics()}`);
  await fixture.setDeployTimeout("keycloak", deployTimeoutSeconds ?? 300);
  return { fixture, firstUp: up.output };
}

/**
 * A warm stack whose Keycloak is up at `initialTag` with a realm "marker" in it, which every later
 * operation on it must keep; disposed when the test ends.
 */
export async function keycloakWithMarker(t: TestContext, initialTag: string, deployTimeoutSeconds: number) {
  const { fixture } = await bootedKeycloak(t, [initialTag], deployTimeoutSeconds);
  const password = ((await fixture.resourceOutputs("keycloak", true)).appSecrets as Record<string, string>).admin_password!;
  await (await keycloakAdmin(fixture.domains.keycloak!, password)).realms.create({ realm: "marker", enabled: true });
  return {
    fixture,
    stack: stackNameForDomain(fixture.domains.keycloak!),
    markerKept: async () => realmExists(await keycloakAdmin(fixture.domains.keycloak!, password), "marker"),
  };
}
