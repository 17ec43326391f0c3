import { randomBytes } from "node:crypto";
import * as path from "node:path";
import { execa } from "execa";
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

  static async create(enrolments: readonly Enrolment[], options: { snapshotStore?: string; extraConfig?: Record<string, string> } = {}) {
    const project = await PulumiProject.create();
    const recipes = enrolments.map((enrolment) => enrolment.recipe);
    const abra = await AbraDir.create(recipes);
    for (const enrolment of enrolments) await abra.keepOnlyTags(enrolment.recipe, enrolment.tags);
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
        { knownGood: enrolment.knownGood, health: { path: "/health" }, deployTimeoutSeconds: enrolment.deployTimeoutSeconds ?? 60 },
      ]),
    );
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
  runner(args: readonly string[]) {
    return execa("node", [path.join(REPO_ROOT, "dist", "runner", "cli.js"), ...args], {
      env: this.project.env(),
      reject: false,
      timeout: 600_000,
    });
  }

  async outputs(): Promise<Record<string, unknown>> {
    return JSON.parse(await this.cli(["stack", "output", "-s", "warm", "--json"])) as Record<string, unknown>;
  }

  /** The Canonical resource's outputs as the state holds them (undefined when it is not in state). */
  async canonical(recipe: string): Promise<CanonicalState | undefined> {
    const exported = JSON.parse(await this.cli(["stack", "export", "-s", "warm"])) as {
      deployment: { resources?: { urn: string; outputs?: Record<string, unknown> }[] };
    };
    const resource = exported.deployment.resources?.find((entry) => entry.urn.endsWith(`::canonical-${recipe}`));
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

/** A removed service's container goes a moment later, and keeps its volumes in use until then. */
export async function removeVolumeEventually(volume: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      await swarm.docker(["volume", "rm", volume]);
      return;
    } catch (error) {
      if (/no such volume/i.test((error as Error).message) || Date.now() > deadline) return;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }
}

/** Runs a fixed script in a throwaway container with each volume at /v/<volume>. */
export async function withVolumes(mounted: readonly string[], script: string, options: { readOnly?: boolean } = {}): Promise<string> {
  const mounts = mounted.flatMap((volume) => ["-v", `${volume}:/v/${volume}${options.readOnly ? ":ro" : ""}`]);
  return swarm.docker(["run", "--rm", ...mounts, HELPER_IMAGE, "bash", "-c", `set -euo pipefail\n${script}`], { timeoutMs: 300_000 });
}

// Names, modes, types, owners, sizes and link targets of every entry, plus the content of every
// regular file. Directory sizes are left out: they depend on the file system's history, not content.
const TREE_HASH = String.raw`cd /v
{
  find . -mindepth 1 \( -type d -printf '%P %m %y %U:%G\n' \) -o -printf '%P %m %y %U:%G %s %l\n' | sort
  find . -type f -print0 | sort -z | xargs -0 -r sha256sum
} | sha256sum | cut -d ' ' -f 1`;

export async function treeHash(volumes: readonly string[]): Promise<string> {
  return (await withVolumes(volumes, TREE_HASH, { readOnly: true })).trim();
}

/**
 * The store's view of one app key: the snapshot `current` names, the sha256 of that tar as read
 * now (so a damaged or half-written one shows), its recorded takenAt, and every entry of the key's
 * directory.
 */
export async function storeState(store: string, key: string) {
  const script = String.raw`d="/store/$KEY"
  [ -d "$d" ] || { echo "none"; exit 0; }
  ls -A "$d" | sort | paste -sd ' ' -
  if [ -L "$d/current" ]; then
    snap=$(readlink "$d/current")
    echo "$snap"
    sha256sum "$d/$snap" | cut -d ' ' -f 1
    sed -n 's/^takenAt //p' "$d/$(basename "$snap" .tar).meta"
  fi`;
  const output = await swarm.docker(["run", "--rm", "-v", `${store}:/store:ro`, "-e", `KEY=${key}`, HELPER_IMAGE, "bash", "-c", script]);
  const [entries, current, sha, takenAt] = output.split("\n");
  if (entries === "none") return { entries: [] as string[], current: undefined, sha: undefined, takenAt: undefined };
  return { entries: (entries ?? "").split(" ").filter(Boolean), current, sha, takenAt };
}
