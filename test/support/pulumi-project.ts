import { copyFile, mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import { execa } from "execa";
import { Coordination, coordinationAt } from "../../infra/adapters/coordination";
import { endProcessesMarked } from "../../runner/processes";
import { bed } from "./bed";

export const REPO_ROOT = path.resolve(__dirname, "..", "..", "..");

export interface ProjectOptions {
  /** A Pulumi backend other than the project's own file backend (a postgres:// one, say). */
  backendUrl?: string;
  /** More environment for the CLI and the runner: a coordination URL, a host id, a database password. */
  env?: Record<string, string>;
  /**
   * Another runner on the same installation: this project's directory (the warm stack's config
   * files included) is that one's, with a state directory of its own.
   */
  sharing?: PulumiProject;
}

/**
 * A throwaway copy of the project directory (Pulumi.yaml plus links to the compiled program and
 * node_modules) with its own file backend and passphrase, so tests never write stack config into
 * the checkout and never share state.
 */
export class PulumiProject {
  /** The recipe catalogue the runner reads on this project (WARMSTACK_CATALOGUE): a fixture's, with its own remotes. */
  catalogue?: string;

  private constructor(
    readonly dir: string,
    readonly stateDir: string,
    private readonly options: ProjectOptions,
  ) {}

  static async create(options: ProjectOptions = {}): Promise<PulumiProject> {
    bed();
    const root = await mkdtemp(path.join(os.tmpdir(), "warmstack-project-"));
    const dir = options.sharing?.dir ?? path.join(root, "project");
    const stateDir = path.join(root, "state");
    await mkdir(path.join(stateDir, "pulumi"), { recursive: true });
    await writeFile(path.join(stateDir, "passphrase"), "test-bed-passphrase-not-a-secret-elsewhere", { mode: 0o600 });
    if (!options.sharing) {
      await mkdir(dir);
      await copyFile(path.join(REPO_ROOT, "Pulumi.yaml"), path.join(dir, "Pulumi.yaml"));
      await copyFile(path.join(REPO_ROOT, "package.json"), path.join(dir, "package.json"));
      await symlink(path.join(REPO_ROOT, "dist"), path.join(dir, "dist"));
      await symlink(path.join(REPO_ROOT, "node_modules"), path.join(dir, "node_modules"));
    }
    return new PulumiProject(dir, stateDir, options);
  }

  get backendUrl(): string {
    return this.options.backendUrl ?? `file://${path.join(this.stateDir, "pulumi")}`;
  }

  /** The coordination backend this project's runner uses (its state directory's files, or the configured PostgreSQL). */
  coordination(): Coordination {
    return coordinationAt(this.stateDir, { ...process.env, ...this.env() });
  }

  /** The environment both the CLI and the runner get: this project's backend and passphrase. */
  env(): Record<string, string> {
    return {
      PULUMI_BACKEND_URL: this.backendUrl,
      PULUMI_CONFIG_PASSPHRASE_FILE: path.join(this.stateDir, "passphrase"),
      PULUMI_SKIP_UPDATE_CHECK: "true",
      PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
      PULUMI_HOME: path.join(this.stateDir, "pulumi-home"),
      WARMSTACK_STATE_DIR: this.stateDir,
      WARMSTACK_PROJECT_DIR: this.dir,
      ...(this.catalogue ? { WARMSTACK_CATALOGUE: this.catalogue } : {}),
      ...this.options.env,
    };
  }

  /** Runs the real pulumi CLI in the project directory; never rejects, the caller checks the exit. */
  async pulumi(args: readonly string[]) {
    const result = await execa("pulumi", [...args, "--non-interactive"], {
      cwd: this.dir,
      env: this.env(),
      reject: false,
      // Longer than a stateful upgrade that fails its health check and rolls back (two deploy
      // timeouts, a snapshot and a restore): killing the CLI mid-rollback would leave the target.
      timeout: 1_200_000,
      all: true,
    });
    return { exitCode: result.exitCode ?? -1, output: String(result.all ?? "") };
  }

  /** Runs the pulumi CLI; throws with the whole output when it exits non-zero. */
  async pulumiOrThrow(args: readonly string[]): Promise<string> {
    const result = await this.pulumi(args);
    if (result.exitCode !== 0) throw new Error(`pulumi ${args.join(" ")} exited ${result.exitCode}:\n${result.output}`);
    return result.output;
  }

  /**
   * Ends whatever the project's engines left running (every process they start inherits its
   * WARMSTACK_PROJECT_DIR, the language host and provider processes too, in groups of their own), then
   * removes the project. Called from `after`, so a failed test ends them as well.
   */
  async dispose(): Promise<void> {
    await endProcessesMarked(`WARMSTACK_PROJECT_DIR=${this.dir}`);
    await rm(path.dirname(this.stateDir), { recursive: true, force: true });
  }
}
