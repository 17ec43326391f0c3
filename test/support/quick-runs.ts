import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import { execa } from "execa";
import { readEnvFile } from "../../infra/adapters/app-env";
import * as swarm from "../../infra/adapters/swarm";
import { runProcesses } from "../../runner/processes";
import { CanonicalStackFixture, helpersOf, storeState, treeHash } from "./canonical-stack";
import { catalogueWithSources } from "./catalogues";
import { REPO_ROOT } from "./pulumi-project";
import { leftovers, NOTHING_LEFT } from "./runs";

/**
 * Shared by the quick-lane suites: what a canonical looks like at its known-good (taken right after
 * the seed, when its volumes are exactly its snapshot), and the check that a quick run — passed,
 * failed, stopped or killed and reaped — put it back to exactly that.
 */
export interface CanonicalBaseline {
  recipe: string;
  knownGood: string;
  volumes: string[];
  /** Tree hash of the volumes at the known-good: the content of the known-good snapshot. */
  tree: string;
  store: Awaited<ReturnType<typeof storeState>>;
  envFile: string;
  envText: string;
  /** The daemon of the node its volumes are on, when that is not this CLI's. */
  host?: string;
}

export async function baselineOf(fixture: CanonicalStackFixture, recipe: string, knownGood: string, host?: string): Promise<CanonicalBaseline> {
  const volumes = await fixture.deployer().volumes(fixture.app(recipe));
  assert.ok(volumes.length > 0, "the seeded canonical has volumes");
  const store = await storeState(fixture.snapshotStore, fixture.snapshotKey(recipe), host);
  assert.ok(store.current, "the seeded canonical has a known-good snapshot");
  const envFile = path.join(fixture.abra.root, "servers", "default", `${fixture.app(recipe).domain}.env`);
  const envText = await readFile(envFile, "utf8");
  assert.equal((await readEnvFile(envFile)).get("TYPE"), `${recipe}:${knownGood}`);
  return { recipe, knownGood, volumes, tree: await treeHash(volumes, host), store, envFile, envText, host };
}

/** The canonical is the known-good again and nothing of any run of the recipe is left. */
export async function assertPutBack(fixture: CanonicalStackFixture, baseline: CanonicalBaseline, stacks: readonly string[] = []): Promise<void> {
  const { recipe } = baseline;
  const canonicalStack = fixture.stack(recipe);
  assert.deepEqual(
    (await swarm.stackServices(canonicalStack)).map((service) => service.name),
    [],
    "the canonical is undeployed (no swarm services of its stack)",
  );
  assert.deepEqual(await swarm.stackContainers(canonicalStack, baseline.host), [], "no containers of the canonical's stack");
  assert.deepEqual(await fixture.deployer().volumes(fixture.app(recipe)), baseline.volumes, "the canonical has exactly its volumes");
  assert.equal(await treeHash(baseline.volumes, baseline.host), baseline.tree, "the canonical's volumes are byte-identical to its known-good snapshot");
  assert.deepEqual(await storeState(fixture.snapshotStore, fixture.snapshotKey(recipe), baseline.host), baseline.store, "the known-good snapshot itself is untouched");
  assert.equal((await readEnvFile(baseline.envFile)).get("TYPE"), `${recipe}:${baseline.knownGood}`, "the env file names the known-good");
  assert.equal(await readFile(baseline.envFile, "utf8"), baseline.envText, "the env file is as the seed left it");
  assert.equal(await fixture.project.coordination().readLease(recipe), null, "the lease is released");
  assert.deepEqual(await helpersOf(fixture.snapshotKey(recipe)), [], "no snapshot helper service of the canonical is left");
  assert.deepEqual(await leftovers(fixture.project, recipe, { baseDomain: fixture.baseDomain }), NOTHING_LEFT);
  for (const stack of stacks) assert.deepEqual(await runProcesses(stack), [], `no process of ${stack} is left`);
}

/** The engine prints the run stack's outputs at the end of its `up`; the runner passes them through. */
export function leaseWaitMs(output: string, stack: string): number {
  const match = new RegExp(`${stack}: +leaseWaitMs *: *(\\d+)`).exec(output);
  assert.ok(match, `the up of ${stack} printed leaseWaitMs:\n${output}`);
  return Number(match[1]);
}

/** The commit a tag of the warm stack's recipe checkout points at: a "PR head". */
export async function commitOf(fixture: CanonicalStackFixture, recipe: string, tag: string): Promise<string> {
  const { stdout } = await execa("git", ["-C", fixture.abra.recipeDir(recipe), "rev-parse", `${tag}^{commit}`]);
  assert.match(stdout, /^[0-9a-f]{40}$/);
  return stdout;
}

export interface CatalogueOverride {
  /** Program and arguments of the recipe's test command (absolute paths: they run in the catalogue's directory). */
  test?: string[];
  testTimeoutSeconds?: number;
  deployTimeoutSeconds?: number;
}

/** A copy of the repository's catalogue with one recipe's entry changed, in a temp dir of its own. */
export class TestCatalogue {
  private constructor(
    readonly dir: string,
    readonly file: string,
  ) {}

  static async create(recipe: string, override: CatalogueOverride): Promise<TestCatalogue> {
    const dir = await mkdtemp(path.join(os.tmpdir(), "warmstack-catalogue-"));
    const file = await catalogueWithSources(dir, {}, (recipes) => {
      const entry = recipes[recipe];
      assert.ok(entry, `${recipe} is in the repository's catalogue`);
      if (override.test) entry.test.command = override.test;
      if (override.testTimeoutSeconds) entry.test.timeoutSeconds = override.testTimeoutSeconds;
      if (override.deployTimeoutSeconds) entry.deployTimeoutSeconds = override.deployTimeoutSeconds;
    });
    return new TestCatalogue(dir, file);
  }

  /** The repository's check of the recipe, by absolute path. */
  static check(recipe: string): string {
    return path.join(REPO_ROOT, "test", "fixtures", "checks", `${recipe}.sh`);
  }

  async dispose(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** Collects a child's stderr and resolves when it matches, rejecting if the child ends first. */
export class OutputWatch {
  text = "";
  private waiters: { pattern: RegExp; resolve: (match: RegExpExecArray) => void; reject: (error: Error) => void }[] = [];
  private ended = false;

  constructor(stream: NodeJS.ReadableStream, done: Promise<unknown>) {
    stream.on("data", (chunk: Buffer | string) => {
      this.text += chunk.toString();
      for (const waiter of [...this.waiters]) {
        const match = waiter.pattern.exec(this.text);
        if (match) {
          this.waiters = this.waiters.filter((w) => w !== waiter);
          waiter.resolve(match);
        }
      }
    });
    const end = () => {
      this.ended = true;
      for (const waiter of this.waiters) waiter.reject(new Error(`the runner ended before its output showed ${waiter.pattern}:\n${this.text}`));
      this.waiters = [];
    };
    done.then(end, end);
  }

  waitFor(pattern: RegExp, timeoutMs = 300_000): Promise<RegExpExecArray> {
    const now = pattern.exec(this.text);
    if (now) return Promise.resolve(now);
    if (this.ended) return Promise.reject(new Error(`the runner ended before its output showed ${pattern}:\n${this.text}`));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.pattern !== pattern);
        reject(new Error(`no ${pattern} in the runner's output within ${timeoutMs / 1000}s:\n${this.text}`));
      }, timeoutMs);
      this.waiters.push({
        pattern,
        resolve: (match) => {
          clearTimeout(timer);
          resolve(match);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      });
    });
  }
}

/** Polls until the check returns a value, or fails naming what it waited for. */
export async function eventually<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 120_000, intervalMs = 150): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000}s waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
