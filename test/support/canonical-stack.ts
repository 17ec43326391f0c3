import { randomBytes } from "node:crypto";
import assert from "node:assert/strict";
import * as path from "node:path";
import { execa } from "execa";
import { waitUntil } from "../../infra/adapters/health";
import { HELPER_APP_LABEL } from "../../infra/adapters/snapshots";
import { StackDeployer } from "../../infra/adapters/stack-deployer";
import * as swarm from "../../infra/adapters/swarm";
import { canonicalDomain, stackNameForDomain } from "../../infra/naming";
import { AbraDir } from "./abra-dir";
import { proxyUrl } from "./bed";
import { PulumiProject, REPO_ROOT } from "./pulumi-project";

export const HELPER_IMAGE = "warmstack/base:bookworm";

export interface Enrolment {
  recipe: string;
  /** The tags the recipe's checkout keeps (its released versions for this test). */
  tags: readonly string[];
  knownGood: string;
  deployTimeoutSeconds?: number;
  /** Default: GET /health. */
  health?: { path: string };
  /** The swarm node (hostname) to seed it on. */
  node?: string;
}

export interface CanonicalState {
  knownGood: string;
  domain: string;
  snapshotId: string;
  snapshotBytes: number;
  seededAt: string;
}

/**
 * A warm stack of its own with canonicals only: a project directory and file backend, a $ABRA_DIR
 * with trimmed recipe clones, a base domain of its own (canonical domains are fixed per recipe, so
 * only the base tells two tests apart) and a snapshot store volume of its own.
 */
export class CanonicalStackFixture {
  private constructor(
    readonly project: PulumiProject,
    readonly abra: AbraDir,
    readonly baseDomain: string,
    readonly snapshotStore: string,
    readonly recipes: readonly string[],
  ) {}

  static async create(enrolments: readonly Enrolment[], options: { snapshotStore?: string; extraConfig?: Record<string, string>; project?: PulumiProject } = {}) {
    const project = options.project ?? (await PulumiProject.create());
    const recipes = enrolments.map((enrolment) => enrolment.recipe);
    const abra = await AbraDir.create(recipes);
    for (const enrolment of enrolments) await abra.keepOnlyTags(enrolment.recipe, enrolment.tags);
    project.catalogue = await abra.catalogue();
    const id = randomBytes(3).toString("hex");
    const fixture = new CanonicalStackFixture(project, abra, `t${id}.warm.test`, options.snapshotStore ?? `wstest_canon_${id}`, recipes);
    await fixture.cli(["stack", "init", "warm"]);
    const config: Record<string, string> = {
      baseDomain: fixture.baseDomain,
      abraDir: abra.root,
      proxyUrl: proxyUrl(),
      alertDir: fixture.alertDir,
      snapshotStore: fixture.snapshotStore,
      stateDir: project.stateDir,
      apps: "{}",
      ...options.extraConfig,
    };
    for (const [key, value] of Object.entries(config)) await fixture.setConfig(key, value);
    await fixture.enrol(enrolments);
    return fixture;
  }

  get alertDir(): string {
    return path.join(this.project.stateDir, "alerts");
  }

  async setConfig(key: string, value: string): Promise<void> {
    await this.cli(["config", "set", "-s", "warm", `warmstack:${key}`, value]);
  }

  /** Replaces the enrolled set (de-enrolling whatever is left out). */
  async enrol(enrolments: readonly Enrolment[]): Promise<void> {
    const canonicals = Object.fromEntries(
      enrolments.map((enrolment) => [
        enrolment.recipe,
        {
          knownGood: enrolment.knownGood,
          health: enrolment.health ?? { path: "/health" },
          deployTimeoutSeconds: enrolment.deployTimeoutSeconds ?? 60,
          ...(enrolment.node ? { node: enrolment.node } : {}),
        },
      ]),
    );
    await this.setConfig("canonicals", JSON.stringify(canonicals));
  }

  /** Sets one enrolled recipe's known-good in the config, as a promote does, leaving the others. */
  async setKnownGood(recipe: string, version: string): Promise<void> {
    const config = JSON.parse(await this.cli(["config", "-s", "warm", "--json"])) as Record<string, { value?: string }>;
    const canonicals = JSON.parse(config["warmstack:canonicals"]?.value ?? "{}") as Record<string, { knownGood: string }>;
    if (!canonicals[recipe]) throw new Error(`${recipe} is not enrolled`);
    canonicals[recipe].knownGood = version;
    await this.setConfig("canonicals", JSON.stringify(canonicals));
  }

  async configuredKnownGood(recipe: string): Promise<string | undefined> {
    const config = JSON.parse(await this.cli(["config", "-s", "warm", "--json"])) as Record<string, { value?: string }>;
    const canonicals = JSON.parse(config["warmstack:canonicals"]?.value ?? "{}") as Record<string, { knownGood: string }>;
    return canonicals[recipe]?.knownGood;
  }

  deployer(): StackDeployer {
    return new StackDeployer({ abraDir: this.abra.root, server: "default", proxyUrl: proxyUrl(), dnsrrEndpoints: true });
  }

  app(recipe: string) {
    return { recipe, domain: canonicalDomain(recipe, this.baseDomain) };
  }

  stack(recipe: string): string {
    return stackNameForDomain(this.app(recipe).domain);
  }

  /** The canonical's key in the snapshot store. */
  snapshotKey(recipe: string): string {
    return this.stack(recipe);
  }

  snapshotOptions() {
    return { store: this.snapshotStore, helperImage: HELPER_IMAGE };
  }

  cli(args: readonly string[]): Promise<string> {
    return this.project.pulumiOrThrow(args);
  }

  up(): Promise<{ exitCode: number; output: string }> {
    return this.project.pulumi(["up", "-s", "warm", "--yes", "--skip-preview"]);
  }

  /** The `warmstack` CLI on this stack's backend and project directory. */
  /** `all` interleaves stdout and stderr as they come, for a test that watches a run's progress. */
  runner(args: readonly string[]) {
    return execa("node", [path.join(REPO_ROOT, "dist", "runner", "cli.js"), ...args], {
      env: this.project.env(),
      reject: false,
      timeout: 600_000,
      all: true,
    });
  }

  async outputs(): Promise<Record<string, unknown>> {
    return JSON.parse(await this.cli(["stack", "output", "-s", "warm", "--json"])) as Record<string, unknown>;
  }

  /** The Canonical resource's outputs as the state holds them (undefined when it is not in state). */
  async canonical(recipe: string): Promise<CanonicalState | undefined> {
    const exported = JSON.parse(await this.cli(["stack", "export", "-s", "warm"])) as {
      deployment: { resources?: { urn: string; type: string; outputs?: Record<string, unknown> }[] };
    };
    const resource = exported.deployment.resources?.find((entry) => entry.type === "pulumi-nodejs:dynamic/warmstack:Canonical" && entry.urn.endsWith(`::${recipe}`));
    return resource?.outputs as CanonicalState | undefined;
  }

  async dispose(): Promise<void> {
    await this.project.pulumi(["cancel", "-s", "warm", "--yes"]);
    await this.project.pulumi(["destroy", "-s", "warm", "--yes", "--skip-preview"]);
    const deployer = this.deployer();
    for (const recipe of this.recipes) {
      await deployer.undeploy(this.app(recipe)).catch(() => undefined);
      await deployer.remove(this.app(recipe), { volumes: true }).catch(() => undefined);
      for (const helper of await helpersOf(this.snapshotKey(recipe)).catch(() => [])) await swarm.docker(["service", "rm", helper]).catch(() => undefined);
    }
    await removeVolumeEventually(this.snapshotStore);
    await this.abra.dispose();
    await this.project.dispose();
  }
}

/** Snapshot helper services working on the app key, finished or not. */
export async function helpersOf(key: string, operation?: string): Promise<string[]> {
  const filters = ["--filter", `label=${HELPER_APP_LABEL}=${key}`, ...(operation ? ["--filter", `label=warmstack.snapshot-helper=${operation}`] : [])];
  const output = await swarm.docker(["service", "ls", ...filters, "--format", "{{.Name}}"]);
  return output.split("\n").filter(Boolean);
}

/**
 * Waits until a take helper of `key` is writing its new tar (the partial file exists, the switch has
 * not happened): the one point where a kill must leave the previous snapshot as it was. A tar of a
 * few hundred MB keeps it there for seconds, even on a loaded machine.
 */
export async function takeHelperWriting(key: string, timeoutMs = 300_000): Promise<{ name: string; container: string }> {
  return waitUntil(
    `a snapshot helper of ${key} to be writing`,
    async () => {
      const [name] = await helpersOf(key, "take");
      if (!name) return { done: false, state: "no take helper yet" };
      const [container] = (await swarm.docker(["ps", "-q", "--filter", `label=com.docker.swarm.service.name=${name}`])).split("\n").filter(Boolean);
      if (!container) return { done: false, state: `${name} has no container yet` };
      const listing = await swarm.docker(["exec", "-e", `APP=${key}`, container, "bash", "-c", 'ls -A "/store/$APP"']).catch(() => "");
      return /\.partial-[0-9a-f]+\.tar/.test(listing) ? { done: true, value: { name, container } } : { done: false, state: listing || "no listing" };
    },
    { timeoutMs, intervalMs: 20 },
  );
}

/** Fills a canonical's volume before its first seed, so its takes and restores last seconds, not milliseconds. */
export async function withBallast(stack: string, volume: string, megabytes: number): Promise<void> {
  const name = `${stack}_${volume}`;
  await swarm.docker(["volume", "create", "--label", `com.docker.stack.namespace=${stack}`, name]);
  await swarm.docker(["run", "--rm", "-v", `${name}:/data`, HELPER_IMAGE, "bash", "-c", `head -c ${megabytes * 1_000_000} /dev/urandom >/data/ballast.bin`], { timeoutMs: 300_000 });
}

/** A removed service's container goes a moment later, and keeps its volumes in use until then. */
export async function removeVolumeEventually(volume: string, host?: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      await swarm.docker(["volume", "rm", volume], { host });
      return;
    } catch (error) {
      if (/no such volume/i.test((error as Error).message) || Date.now() > deadline) return;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }
}

/** Runs a fixed script in a throwaway container with each volume at /v/<volume>, on this CLI's node or the daemon at `host`. */
export async function withVolumes(mounted: readonly string[], script: string, options: { readOnly?: boolean; host?: string } = {}): Promise<string> {
  const mounts = mounted.flatMap((volume) => ["-v", `${volume}:/v/${volume}${options.readOnly ? ":ro" : ""}`]);
  return swarm.docker(["run", "--rm", ...mounts, HELPER_IMAGE, "bash", "-c", `set -euo pipefail\n${script}`], { timeoutMs: 300_000, host: options.host });
}

// Names, modes, types, owners, sizes and link targets of every entry, plus the content of every
// regular file. Directory sizes are left out: they depend on the file system's history, not content.
const TREE_HASH = String.raw`cd /v
{
  find . -mindepth 1 \( -type d -printf '%P %m %y %U:%G\n' \) -o -printf '%P %m %y %U:%G %s %l\n' | sort
  find . -type f -print0 | sort -z | xargs -0 -r sha256sum
} | sha256sum | cut -d ' ' -f 1`;

export async function treeHash(volumes: readonly string[], host?: string): Promise<string> {
  return (await withVolumes(volumes, TREE_HASH, { readOnly: true, host })).trim();
}

/**
 * The store's view of one app key: the meta file `current` names (one take), the sha256 of its tar
 * as read now (so a damaged or half-written one shows), its recorded takenAt, and every entry of the
 * key's directory.
 */
export async function storeState(store: string, key: string, host?: string) {
  const script = String.raw`d="/store/$KEY"
  [ -d "$d" ] || { echo "none"; exit 0; }
  ls -A "$d" | sort | paste -sd ' ' -
  if [ -L "$d/current" ]; then
    meta=$(readlink "$d/current")
    echo "$meta"
    sha256sum "$d/$(echo "$meta" | cut -d . -f 1).tar" | cut -d ' ' -f 1
    sed -n 's/^takenAt //p' "$d/$meta"
  fi`;
  const output = await swarm.docker(["run", "--rm", "-v", `${store}:/store:ro`, "-e", `KEY=${key}`, HELPER_IMAGE, "bash", "-c", script], { host });
  const [entries, current, sha, takenAt] = output.split("\n");
  if (entries === "none") return { entries: [] as string[], current: undefined, sha: undefined, takenAt: undefined };
  return { entries: (entries ?? "").split(" ").filter(Boolean), current, sha, takenAt };
}

/** A store key holding exactly one snapshot, `id`: its lock, `current`, the tar and one take's meta. */
export function assertOneSnapshot(entries: readonly string[], id: string, message = "exactly one snapshot"): void {
  const meta = entries.filter((entry) => entry.endsWith(".meta"));
  assert.equal(meta.length, 1, `${message}: one meta in ${entries.join(" ")}`);
  assert.match(meta[0]!, new RegExp(`^snap-${id}\\.[0-9a-f]{10}\\.meta$`), message);
  assert.deepEqual(entries.filter((entry) => entry !== meta[0]), [".lock", "current", `snap-${id}.tar`], message);
}
