import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, mkdir, writeFile } from "node:fs/promises";
import * as path from "node:path";
import { LocalWorkspace, Stack } from "@pulumi/pulumi/automation";
import { withoutCredentials } from "../infra/adapters/url-text";
import { stackKindOf } from "../stacks/stack-names";

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

async function ensureProject(settings: RunnerSettings): Promise<void> {
  await ensureBackendDir(settings.backendUrl);
  await ensurePassphraseFile(settings.passphraseFile);
  if (!existsSync(path.join(settings.projectDir, "Pulumi.yaml"))) {
    throw new Error(`no Pulumi.yaml in ${settings.projectDir} (WARMSTACK_PROJECT_DIR)`);
  }
}

/** What a command that only reads a stack needs of it. */
export type StackReader = Pick<Stack, "name" | "getAllConfig" | "exportStack">;

/**
 * A stack's config and state, read without selecting it: selecting is one more Pulumi CLI process
 * (a third of a second), and a reader must not create the stack either. A stack that does not exist
 * fails its first read, saying so.
 */
export async function readStack(stackName: string, settings: RunnerSettings): Promise<StackReader> {
  stackKindOf(stackName);
  await ensureProject(settings);
  const workspace = await LocalWorkspace.create({ workDir: settings.projectDir, envVars: pulumiEnv(settings) });
  const explained = (error: unknown) => explainStackError(error, stackName, settings);
  return {
    name: stackName,
    getAllConfig: () => workspace.getAllConfig(stackName).catch(explained),
    exportStack: () => workspace.exportStack(stackName).catch(explained),
  };
}

/** The engine's words for a stack that cannot be opened, said in the operator's terms. */
function explainStackError(error: unknown, stackName: string, settings: RunnerSettings): never {
  const backend = withoutCredentials(settings.backendUrl);
  if (/incorrect passphrase/.test(String(error))) {
    // The stack's config file keeps the salt of the passphrase it was created with.
    throw new Error(
      `the passphrase does not match Pulumi.${stackName}.yaml in ${settings.projectDir}: that file belongs to another ` +
        `backend or passphrase (backend ${backend}, passphrase file ${settings.passphraseFile})`,
    );
  }
  if (/no stack named/i.test(String(error))) throw new Error(`there is no ${stackName} stack in backend ${backend}`);
  throw error;
}

/** `extraEnv` reaches the CLI and every process it starts (a run marks its processes that way). */
export async function selectStack(stackName: string, settings: RunnerSettings, extraEnv: Record<string, string> = {}): Promise<Stack> {
  stackKindOf(stackName);
  // The programs and every resource module load only when the engine runs one: a command that only
  // reads state (status, reap's look at the warm stack) starts in a third of the time without them.
  const program = async () => (await import("../stacks/programs")).programFor(stackName)();
  await ensureProject(settings);
  try {
    return await LocalWorkspace.createOrSelectStack(
      { stackName, projectName: "warmstack", program },
      { workDir: settings.projectDir, envVars: { ...pulumiEnv(settings), ...extraEnv } },
    );
  } catch (error) {
    explainStackError(error, stackName, settings);
  }
}
