import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, stat, unlink, writeFile } from "node:fs/promises";
import * as path from "node:path";
import * as os from "node:os";
import { isMap, isSeq, parseDocument, YAMLMap } from "yaml";
import { assertDomain, assertNodeName, assertRecipeName, PINNED_NODE_KEY, secretName, stackNameForDomain } from "../naming";
import { isVersion } from "../versions";
import { EnvFile, readEnvFile, writeEnvFile } from "./app-env";
import { waitConverged } from "./convergence";
import { AppRef, DeployOptions, DeployResult, Deployer, HealthSpec, NewAppOptions, NewAppResult } from "./deployer";
import { HttpProbe, probeHttp, ProbeResult, waitUntil } from "./health";
import { NodeGoneError, resolveNode } from "./nodes";
import { exportTree, fileExistsAt, isCommitRef, readFileAt, releasedVersions } from "./recipes";
import * as swarm from "./swarm";

export interface StackDeployerOptions {
  /** Co-op Cloud's directory: recipes/<recipe> (git repos) and servers/<server>/<domain>.env */
  abraDir: string;
  server: string;
  /** The proxy's web entrypoint on loopback, where health paths are probed under the app's domain. */
  proxyUrl: string;
  /** Where recipe versions are exported for a deploy; a fresh directory per deploy. */
  workRoot?: string;
  resolveImage?: "never" | "changed";
  /** For hosts without IPVS, where service VIPs do not route: every service gets endpoint_mode dnsrr. */
  dnsrrEndpoints?: boolean;
  undeployTimeoutMs?: number;
}

export class AppStateError extends Error {
  constructor(
    readonly domain: string,
    message: string,
  ) {
    super(`app ${domain}: ${message}`);
    this.name = "AppStateError";
  }
}

/** Label that marks the swarm secrets warmstack created for an app, so remove finds exactly those. */
const SECRET_APP_LABEL = "warmstack.app";
const SECRET_VERSION_KEY = /^SECRET_([A-Z][A-Z0-9_]*)_VERSION$/;
const COMPOSE_FILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*\.ya?ml$/;

function versionLabel(stack: string): string {
  return `coop-cloud.${stack}.version`;
}

/**
 * Sets the version label on every service, as abra does, so the live swarm says what runs; places
 * every service of an app pinned to a node on that node, where its volumes are.
 */
export function stampServices(composeText: string, stack: string, ref: string, dnsrr: boolean, node?: string): string {
  const document = parseDocument(composeText);
  const services = document.get("services");
  if (!isMap(services)) throw new Error("compose file has no services map");
  const label = versionLabel(stack);
  const templatedLabel = "coop-cloud.${STACK_NAME}.version";
  for (const item of services.items) {
    const service = item.value;
    if (!isMap(service)) continue;
    let deploy = service.get("deploy");
    if (!isMap(deploy)) {
      deploy = new YAMLMap();
      service.set("deploy", deploy);
    }
    const deployMap = deploy as YAMLMap;
    const labels = deployMap.get("labels");
    if (isSeq(labels)) {
      labels.items = labels.items.filter((entry) => {
        const text = String((entry as { value?: unknown }).value ?? entry);
        return !text.startsWith(`${label}=`) && !text.startsWith(`${templatedLabel}=`);
      });
      labels.add(`${label}=${ref}`);
    } else if (isMap(labels)) {
      labels.delete(templatedLabel);
      labels.set(label, ref);
    } else {
      deployMap.set("labels", document.createNode({ [label]: ref }));
    }
    if (dnsrr) deployMap.set("endpoint_mode", "dnsrr");
    if (node !== undefined) pinPlacement(document, deployMap, assertNodeName(node));
  }
  return document.toString();
}

function pinPlacement(document: ReturnType<typeof parseDocument>, deploy: YAMLMap, node: string): void {
  let placement = deploy.get("placement");
  if (!isMap(placement)) {
    placement = new YAMLMap();
    deploy.set("placement", placement);
  }
  const placementMap = placement as YAMLMap;
  const constraint = `node.hostname == ${node}`;
  const constraints = placementMap.get("constraints");
  if (isSeq(constraints)) {
    const present = constraints.items.some((entry) => String((entry as { value?: unknown }).value ?? entry) === constraint);
    if (!present) constraints.add(constraint);
  } else {
    placementMap.set("constraints", document.createNode([constraint]));
  }
}

export class StackDeployer implements Deployer {
  constructor(private readonly options: StackDeployerOptions) {}

  envPath(domain: string): string {
    return path.join(this.options.abraDir, "servers", this.options.server, `${assertDomain(domain)}.env`);
  }

  recipeDir(recipe: string): string {
    return path.join(this.options.abraDir, "recipes", assertRecipeName(recipe));
  }

  private probe(domain: string, spec: HealthSpec): HttpProbe {
    return { baseUrl: spec.baseUrl ?? this.options.proxyUrl, path: spec.path, host: domain, expectStatus: spec.expectStatus };
  }

  private async readEnv(app: AppRef): Promise<EnvFile> {
    try {
      return await readEnvFile(this.envPath(app.domain));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") {
        throw new AppStateError(app.domain, `no env file at ${this.envPath(app.domain)}: create the app first`);
      }
      throw error;
    }
  }

  async newApp(app: AppRef, options: NewAppOptions = {}): Promise<NewAppResult> {
    const envPath = this.envPath(app.domain);
    const stack = stackNameForDomain(app.domain);
    const recipeDir = this.recipeDir(app.recipe);
    if (await stat(envPath).then(() => true, () => false)) {
      throw new AppStateError(app.domain, `already exists (${envPath})`);
    }
    if ((await swarm.stackServices(stack)).length > 0) {
      throw new AppStateError(app.domain, `stack ${stack} is already running on the swarm without an env file here`);
    }
    const version = options.version ?? (await releasedVersions(recipeDir)).versions.at(-1)?.raw;
    if (!version) throw new AppStateError(app.domain, `recipe ${app.recipe} has no released version`);
    const env = EnvFile.parse(await readFileAt(recipeDir, version, ".env.sample"), `${app.recipe} ${version} .env.sample`);
    env.set("TYPE", app.recipe);
    env.set("DOMAIN", app.domain);
    for (const [key, value] of Object.entries(options.env ?? {})) env.set(key, value);

    const secrets = await this.createSecrets(app.domain, stack, env, options.secrets ?? {});
    try {
      await mkdir(path.dirname(envPath), { recursive: true });
      await writeEnvFile(envPath, env);
    } catch (error) {
      await this.removeSecrets(app.domain);
      throw error;
    }
    return { envPath, secrets };
  }

  /** Creates every secret the env declares; on any failure removes the ones already made. */
  private async createSecrets(domain: string, stack: string, env: EnvFile, given: Record<string, string>) {
    const created: Record<string, string> = {};
    try {
      for (const key of env.keys()) {
        const match = SECRET_VERSION_KEY.exec(key);
        if (!match) continue;
        const name = match[1]!.toLowerCase();
        const value = given[name] ?? randomBytes(24).toString("base64url");
        await swarm.createSecret(secretName(stack, name, env.get(key) ?? ""), value, { [SECRET_APP_LABEL]: domain });
        created[name] = value;
      }
    } catch (error) {
      await this.removeSecrets(domain);
      throw error;
    }
    return created;
  }

  private async removeSecrets(domain: string): Promise<void> {
    for (const name of await swarm.secretsWithLabel(SECRET_APP_LABEL, domain)) await swarm.removeSecret(name);
  }

  async deploy(app: AppRef, options: DeployOptions): Promise<DeployResult> {
    const started = Date.now();
    if (!isVersion(options.ref) && !isCommitRef(options.ref)) {
      throw new AppStateError(app.domain, `ref "${options.ref}" is neither a version (X.Y.Z+UPSTREAM) nor a commit`);
    }
    const env = await this.readEnv(app);
    const stack = stackNameForDomain(app.domain);
    const current = await this.currentVersion(app);
    if (current === options.ref && !options.force) {
      throw new AppStateError(app.domain, `already deployed at ${current}; a redeploy of the same version must be forced`);
    }
    await mkdir(this.workRoot(), { recursive: true });
    const work = await mkdtemp(path.join(this.workRoot(), `${stack}-`));
    try {
      const recipeDir = this.recipeDir(app.recipe);
      await exportTree(recipeDir, options.ref, work);
      const composeFiles = await this.prepareComposeFiles(recipeDir, options.ref, work, env, stack);
      await swarm.deployStack(stack, {
        composeFiles,
        env: { ...env.toObject(), ...options.env, STACK_NAME: stack },
        cwd: work,
        resolveImage: this.options.resolveImage ?? "never",
      });
      await waitConverged({
        stack,
        versionLabel: versionLabel(stack),
        version: options.ref,
        health: this.probe(app.domain, options.health),
        ready: options.ready ? this.probe(app.domain, options.ready) : undefined,
        timeoutMs: options.timeoutMs,
      });
      env.set("TYPE", `${app.recipe}:${options.ref}`);
      await writeEnvFile(this.envPath(app.domain), env);
      return { version: options.ref, stack, elapsedMs: Date.now() - started };
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }

  private workRoot(): string {
    return this.options.workRoot ?? path.join(os.tmpdir(), "warmstack-work");
  }

  private async prepareComposeFiles(recipeDir: string, ref: string, work: string, env: EnvFile, stack: string) {
    const names = (env.get("COMPOSE_FILE") ?? "compose.yml").split(":").filter(Boolean);
    for (const name of names) {
      if (!COMPOSE_FILE_NAME.test(name)) throw new Error(`COMPOSE_FILE names "${name}", which is not a compose file name`);
      if (!(await fileExistsAt(recipeDir, ref, name))) throw new Error(`${name} (from COMPOSE_FILE) is not in the recipe at ${ref}`);
      const file = path.join(work, name);
      await writeFile(file, stampServices(await readFile(file, "utf8"), stack, ref, this.options.dnsrrEndpoints ?? false, env.get(PINNED_NODE_KEY)));
    }
    return names;
  }

  /**
   * The daemon that sees the app's containers and volumes: its pinned node's, when that is not this
   * CLI's; null when that node has left the swarm, taking them with it.
   */
  private async nodeHost(app: AppRef): Promise<string | undefined | null> {
    const node = await this.pinnedNode(app);
    if (node === undefined) return undefined;
    try {
      return (await resolveNode(node)).dockerHost;
    } catch (error) {
      if (error instanceof NodeGoneError) return null;
      throw error;
    }
  }

  private async nodeContainers(stack: string, host: string | undefined | null): Promise<string[]> {
    return host === null ? [] : swarm.stackContainers(stack, host);
  }

  private async nodeVolumes(stack: string, host: string | undefined | null): Promise<string[]> {
    return host === null ? [] : swarm.stackVolumes(stack, host);
  }

  async undeploy(app: AppRef, options: { timeoutMs?: number } = {}): Promise<void> {
    const stack = stackNameForDomain(app.domain);
    const host = await this.nodeHost(app);
    const timeoutMs = options.timeoutMs ?? this.options.undeployTimeoutMs ?? 120_000;
    if ((await swarm.stackServices(stack)).length > 0) {
      await swarm.removeStack(stack);
      if (host !== null) await swarm.stopRemovedServiceContainers(await swarm.stackContainers(stack, host), host, timeoutMs);
    }
    // `docker stack rm` returns before Swarm has removed tasks and networks; a snapshot or a
    // redeploy started now would race them ("network <stack>_default not found").
    await waitUntil(
      `${stack} to be gone`,
      async () => {
        const [services, containers, networks] = await Promise.all([
          swarm.stackServices(stack),
          this.nodeContainers(stack, host),
          swarm.stackNetworks(stack),
        ]);
        if (services.length + containers.length + networks.length === 0) return { done: true, value: undefined };
        return { done: false, state: `${services.length} services, ${containers.length} containers, ${networks.length} networks left` };
      },
      { timeoutMs, intervalMs: 300 },
    );
  }

  async remove(app: AppRef, options: { volumes: boolean }): Promise<void> {
    const stack = stackNameForDomain(app.domain);
    const host = await this.nodeHost(app);
    if ((await swarm.stackServices(stack)).length > 0 || (await this.nodeContainers(stack, host)).length > 0) {
      throw new AppStateError(app.domain, "is still deployed: undeploy it first");
    }
    if (options.volumes) {
      for (const volume of await this.nodeVolumes(stack, host)) await swarm.removeVolume(volume, host ?? undefined);
    }
    await this.removeSecrets(app.domain);
    await unlink(this.envPath(app.domain)).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== "ENOENT") throw error;
    });
  }

  async currentVersion(app: AppRef): Promise<string | null> {
    const stack = stackNameForDomain(app.domain);
    const services = (await swarm.stackServices(stack)).sort((a, b) => a.name.localeCompare(b.name));
    for (const service of services) {
      const label = service.labels[versionLabel(stack)];
      if (label) return label;
    }
    return null;
  }

  probeHealth(app: AppRef, health: HealthSpec): Promise<ProbeResult> {
    return probeHttp(this.probe(app.domain, health));
  }

  async revive(app: AppRef): Promise<string[]> {
    const revived: string[] = [];
    for (const service of await swarm.stackServices(stackNameForDomain(app.domain))) {
      if (service.replicas === 0 || (await swarm.serviceHasLiveTask(service.id))) continue;
      await swarm.restartService(service.id);
      revived.push(service.name);
    }
    return revived;
  }

  async appEnv(app: AppRef): Promise<Record<string, string> | null> {
    try {
      return (await readEnvFile(this.envPath(app.domain))).toObject();
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw error;
    }
  }

  async envVersion(app: AppRef): Promise<string | null> {
    const type = (await this.readEnv(app)).get("TYPE") ?? "";
    const separator = type.indexOf(":");
    return separator === -1 ? null : type.slice(separator + 1);
  }

  async setEnvVersion(app: AppRef, version: string): Promise<void> {
    const env = await this.readEnv(app);
    env.set("TYPE", `${app.recipe}:${version}`);
    await writeEnvFile(this.envPath(app.domain), env);
  }

  async volumes(app: AppRef): Promise<string[]> {
    return this.nodeVolumes(stackNameForDomain(app.domain), await this.nodeHost(app));
  }

  async removeVolume(app: AppRef, volume: string): Promise<void> {
    const host = await this.nodeHost(app);
    if (host !== null) await swarm.removeVolume(volume, host);
  }

  async pinnedNode(app: AppRef): Promise<string | undefined> {
    return (await this.appEnv(app))?.[PINNED_NODE_KEY] || undefined;
  }

  async pinToNode(app: AppRef, node: string): Promise<void> {
    const env = await this.readEnv(app);
    env.set(PINNED_NODE_KEY, assertNodeName(node));
    await writeEnvFile(this.envPath(app.domain), env);
  }
}
