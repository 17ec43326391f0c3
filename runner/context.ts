import * as os from "node:os";
import * as path from "node:path";
import { z } from "zod";
import { NODE_DOCKER_HOSTS_ENV, parseNodeDockerHosts } from "../infra/node-hosts";
import { absolutePathSchema, loopbackUrlSchema } from "../infra/config";
import { domainSchema } from "../infra/naming";
import { Progress } from "./progress";
import type { RunnerSettings } from "./workspace";

/**
 * Everything a command needs from the world it runs in, built once by the CLI: the settings, the
 * defaults of every option (each in this one place), the environment, where output goes. Each
 * value remembers where it came from, so an error names the variable or flag that was wrong.
 */
export interface Sourced<T> {
  value: T;
  /** The flag or environment variable that set it, or "default". */
  from: string;
}

export interface RunnerDefaults {
  /** The proxy's web entrypoint on loopback, through which apps and Keycloak are reached. */
  proxyUrl: Sourced<string>;
  /** The warm stack's ABRA_DIR (recipe checkouts and app env files). */
  abraDir: Sourced<string>;
  baseDomain: Sourced<string>;
  /** The port of the warm Traefik's web entrypoint, beside the proxy's. */
  warmProxyPort: Sourced<string>;
  keycloakInitialVersion: Sourced<string>;
  traefikInitialVersion: Sourced<string>;
  catalogue: Sourced<string>;
  /** The shared Keycloak, when the operator names it; else the warm stack's. */
  keycloakDomain?: Sourced<string>;
  /** Deadline of each clone or fetch of a recipe's remote. */
  gitTimeoutSeconds: Sourced<string>;
  /** A git-credential-store file for private remotes; git reads it, nothing else does. */
  gitCredentialsFile?: Sourced<string>;
}

export interface RunnerContext {
  env: NodeJS.ProcessEnv;
  settings: RunnerSettings;
  /** Where each setting came from, by setting name. */
  settingSources: Record<keyof RunnerSettings, string>;
  defaults: RunnerDefaults;
  /** The command's report (text or --json); progress goes to stderr. */
  write(text: string): void;
  progress(quiet: boolean): Progress;
}

/** A bad environment variable or flag: the message names it, and the CLI prints it without a trace. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** The bare default port of the proxy; the warm Traefik listens on the next one. */
export const DEFAULT_PROXY_PORT = 47080;
const DEFAULT_BASE_DOMAIN = "warm.test";
const DEFAULT_KEYCLOAK_VERSION = "1.1.0+26.7.3";
const DEFAULT_TRAEFIK_VERSION = "1.0.0+3.6.12";

const absolutePath = absolutePathSchema;
const loopbackUrl = loopbackUrlSchema;
const port = z.string().regex(/^[1-9][0-9]{0,4}$/, "must be a port number");
const anything = z.string().min(1, "must not be empty");

/** The environment variable when it is set and not empty, else the default; checked either way. */
function sourced<T extends string>(env: NodeJS.ProcessEnv, variable: string, schema: z.ZodType<T>, fallback: string, problems: string[]): Sourced<T> {
  const given = env[variable];
  const from = given ? variable : "default";
  const checked = schema.safeParse(given || fallback);
  if (!checked.success) problems.push(`${from === "default" ? `the default of ${variable}` : variable}: ${checked.error.issues[0]?.message ?? "is invalid"}`);
  return { value: (checked.success ? checked.data : fallback) as T, from };
}

/** The checkout this runner was compiled from: dist/runner/ → the project root. */
export function defaultProjectDir(): string {
  return path.resolve(__dirname, "..", "..");
}

function defaultStateDir(): string {
  return process.getuid?.() === 0 ? "/var/lib/warmstack" : path.join(os.homedir(), ".local", "state", "warmstack");
}

export function createContext(env: NodeJS.ProcessEnv = process.env, write: (text: string) => void = (text) => process.stdout.write(text)): RunnerContext {
  const problems: string[] = [];
  const stateDir = sourced(env, "WARMSTACK_STATE_DIR", absolutePath, defaultStateDir(), problems);
  const projectDir = sourced(env, "WARMSTACK_PROJECT_DIR", absolutePath, defaultProjectDir(), problems);
  const backendUrl = sourced(env, "PULUMI_BACKEND_URL", anything, `file://${path.join(stateDir.value, "pulumi")}`, problems);
  const passphraseFile = sourced(env, "PULUMI_CONFIG_PASSPHRASE_FILE", absolutePath, path.join(stateDir.value, "passphrase"), problems);
  const defaults: RunnerDefaults = {
    proxyUrl: sourced(env, "WARMSTACK_PROXY_URL", loopbackUrl, `http://127.0.0.1:${DEFAULT_PROXY_PORT}`, problems),
    abraDir: sourced(env, "WARMSTACK_ABRA_DIR", absolutePath, path.join(stateDir.value, "abra"), problems),
    baseDomain: sourced(env, "WARMSTACK_BASE_DOMAIN", domainSchema, DEFAULT_BASE_DOMAIN, problems),
    warmProxyPort: sourced(env, "WARMSTACK_WARM_PROXY_PORT", port, String(DEFAULT_PROXY_PORT + 1), problems),
    keycloakInitialVersion: sourced(env, "WARMSTACK_KEYCLOAK_INITIAL_VERSION", anything, DEFAULT_KEYCLOAK_VERSION, problems),
    traefikInitialVersion: sourced(env, "WARMSTACK_TRAEFIK_INITIAL_VERSION", anything, DEFAULT_TRAEFIK_VERSION, problems),
    catalogue: sourced(env, "WARMSTACK_CATALOGUE", anything, path.join(projectDir.value, "catalogue.yaml"), problems),
    gitTimeoutSeconds: sourced(env, "WARMSTACK_GIT_TIMEOUT_SECONDS", z.string().regex(/^[1-9][0-9]{0,4}$/, "must be a whole number of seconds"), "120", problems),
  };
  if (env.WARMSTACK_KEYCLOAK_DOMAIN) defaults.keycloakDomain = sourced(env, "WARMSTACK_KEYCLOAK_DOMAIN", domainSchema, "", problems);
  if (env.WARMSTACK_GIT_CREDENTIALS_FILE) defaults.gitCredentialsFile = sourced(env, "WARMSTACK_GIT_CREDENTIALS_FILE", absolutePath, "", problems);
  // Read where it is used (by the providers too); checked here so a typo stops the runner up front.
  try {
    parseNodeDockerHosts(env[NODE_DOCKER_HOSTS_ENV]);
  } catch (error) {
    problems.push((error as Error).message);
  }
  if (problems.length > 0) throw new UsageError(problems.join("; "));
  return {
    env,
    settings: { projectDir: projectDir.value, stateDir: stateDir.value, backendUrl: backendUrl.value, passphraseFile: passphraseFile.value },
    settingSources: { projectDir: projectDir.from, stateDir: stateDir.from, backendUrl: backendUrl.from, passphraseFile: passphraseFile.from },
    defaults,
    write,
    progress: (quiet) => new Progress(quiet),
  };
}
