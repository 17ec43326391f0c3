import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, mkdir, writeFile } from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import { LocalWorkspace, Stack } from "@pulumi/pulumi/automation";
import { programFor } from "../stacks/programs";

/**
 * Automation API wiring. The runner drives the same programs `stacks/index.ts` exports, inline, in
 * the project directory and on the same backend, so `pulumi up -s warm` there and `warmstack up`
 * operate the very same stack and state.
 */
export interface RunnerSettings {
  /** Directory with Pulumi.yaml (and the stack config files Pulumi.<stack>.yaml). */
  projectDir: string;
  stateDir: string;
  backendUrl: string;
  /** Names the passphrase file, never the passphrase: it must not reach logs or reports. */
  passphraseFile: string;
}

/** The checkout this runner was compiled from: dist/runner/ → the project root. */
export function defaultProjectDir(): string {
  return path.resolve(__dirname, "..", "..");
}

export function runnerSettings(env: NodeJS.ProcessEnv = process.env): RunnerSettings {
  const stateDir =
    env.WARMSTACK_STATE_DIR ??
    (process.getuid?.() === 0 ? "/var/lib/warmstack" : path.join(os.homedir(), ".local", "state", "warmstack"));
  return {
    projectDir: env.WARMSTACK_PROJECT_DIR ?? defaultProjectDir(),
    stateDir,
    backendUrl: env.PULUMI_BACKEND_URL ?? `file://${path.join(stateDir, "pulumi")}`,
    passphraseFile: env.PULUMI_CONFIG_PASSPHRASE_FILE ?? path.join(stateDir, "passphrase"),
  };
}

/** The local default keeps a generated passphrase in a 0600 file; operators may point elsewhere. */
async function ensurePassphraseFile(file: string): Promise<void> {
  if (process.env.PULUMI_CONFIG_PASSPHRASE !== undefined || existsSync(file)) return;
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  await writeFile(file, randomBytes(32).toString("base64url"), { mode: 0o600, flag: "wx" });
  await chmod(file, 0o600);
}

/** Whether the backend holds the stack, without creating it. */
export async function stackExists(stackName: string, settings: RunnerSettings): Promise<boolean> {
  await ensureBackendDir(settings.backendUrl);
  await ensurePassphraseFile(settings.passphraseFile);
  const workspace = await LocalWorkspace.create({ workDir: settings.projectDir, envVars: pulumiEnv(settings) });
  // A backend may qualify names as <org>/<project>/<stack>; the stack's own name is the last part.
  return (await workspace.listStacks()).some((summary) => summary.name.split("/").at(-1) === stackName);
}

async function ensureBackendDir(backendUrl: string): Promise<void> {
  if (backendUrl.startsWith("file://")) await mkdir(backendUrl.slice("file://".length), { recursive: true });
}

export function pulumiEnv(settings: RunnerSettings): Record<string, string> {
  const env: Record<string, string> = {
    PULUMI_BACKEND_URL: settings.backendUrl,
    PULUMI_SKIP_UPDATE_CHECK: "true",
    PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
  };
  if (process.env.PULUMI_CONFIG_PASSPHRASE === undefined) env.PULUMI_CONFIG_PASSPHRASE_FILE = settings.passphraseFile;
  return env;
}

/** `extraEnv` reaches the CLI and every process it starts (a run marks its processes that way). */
export async function selectStack(stackName: string, settings: RunnerSettings, extraEnv: Record<string, string> = {}): Promise<Stack> {
  const program = programFor(stackName);
  await ensureBackendDir(settings.backendUrl);
  await ensurePassphraseFile(settings.passphraseFile);
  if (!existsSync(path.join(settings.projectDir, "Pulumi.yaml"))) {
    throw new Error(`no Pulumi.yaml in ${settings.projectDir} (WARMSTACK_PROJECT_DIR)`);
  }
  try {
    return await LocalWorkspace.createOrSelectStack(
      { stackName, projectName: "warmstack", program },
      { workDir: settings.projectDir, envVars: { ...pulumiEnv(settings), ...extraEnv } },
    );
  } catch (error) {
    if (/incorrect passphrase/.test(String(error))) {
      // The stack's config file keeps the salt of the passphrase it was created with.
      throw new Error(
        `the passphrase does not match Pulumi.${stackName}.yaml in ${settings.projectDir}: that file belongs to another ` +
          `backend or passphrase (backend ${settings.backendUrl}, passphrase file ${settings.passphraseFile})`,
      );
    }
    throw error;
  }
}
