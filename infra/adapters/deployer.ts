/**
 * How an app version reaches the swarm. Both implementations follow Co-op Cloud's conventions (one
 * env file per app under $ABRA_DIR/servers/<server>/, stack name = domain with "." → "_", version
 * label `coop-cloud.<stack>.version`), so an operator can switch deployers on one server.
 */
import type { ProbeResult } from "./health";

export interface AppRef {
  recipe: string;
  domain: string;
}

export interface NewAppOptions {
  /** Version whose .env.sample seeds the app's env file; default: the latest released version. */
  version?: string;
  /** Extra env keys, set after the sample's. */
  env?: Record<string, string>;
  /** Secret values by name; secrets the recipe declares and that are missing here are generated. */
  secrets?: Record<string, string>;
}

export interface NewAppResult {
  envPath: string;
  /** Every secret the app was given, generated ones included: the caller stores them as secrets. */
  secrets: Record<string, string>;
}

export interface HealthSpec {
  /** Path answered through the proxy under the app's domain, e.g. /health */
  path: string;
  /** Listener to probe; default: the deployer's proxy URL. */
  baseUrl?: string;
  expectStatus?: readonly number[];
}

export interface DeployOptions {
  /** A released version (X.Y.Z+UPSTREAM) or a commit of the recipe repository. */
  ref: string;
  health: HealthSpec;
  ready?: HealthSpec;
  timeoutMs: number;
  /** Redeploying the version already running must be asked for explicitly. */
  force?: boolean;
  /** Values for this deploy only, over the env file's; never written to it (a borrowed app keeps its file). */
  env?: Record<string, string>;
}

export interface DeployResult {
  version: string;
  stack: string;
  elapsedMs: number;
}

export interface Deployer {
  /** The recipe's checkout ($ABRA_DIR/recipes/<recipe>). */
  recipeDir(recipe: string): string;
  newApp(app: AppRef, options?: NewAppOptions): Promise<NewAppResult>;
  deploy(app: AppRef, options: DeployOptions): Promise<DeployResult>;
  /** Returns only when the stack's services, containers and networks are gone; volumes stay. */
  undeploy(app: AppRef, options?: { timeoutMs?: number }): Promise<void>;
  /** Removes an undeployed app: env file, secrets and, when asked, its volumes. */
  remove(app: AppRef, options: { volumes: boolean }): Promise<void>;
  /** The version running now, read from the live swarm (null when not deployed). */
  currentVersion(app: AppRef): Promise<string | null>;
  /** One probe of the app's health, as a deploy checks it (through the proxy unless the spec names a listener). */
  probeHealth(app: AppRef, health: HealthSpec): Promise<ProbeResult>;
  /** The app's env file as key/values; null when the app does not exist. */
  appEnv(app: AppRef): Promise<Record<string, string> | null>;
  /** The version named by the env file's TYPE (what the next deploy without a ref would use). */
  envVersion(app: AppRef): Promise<string | null>;
  /** Reset the env file's TYPE to a version without deploying (restoring a canonical). */
  setEnvVersion(app: AppRef, version: string): Promise<void>;
  /**
   * Restarts the app's services that Swarm stopped trying to run (a dockerd restart uses up a
   * restart attempt each time); returns their names. The version and spec stay as they are.
   */
  revive(app: AppRef): Promise<string[]>;
  /** The stack's volumes as Swarm names them, on the node that holds them. */
  volumes(app: AppRef): Promise<string[]>;
  /** Removes one of the app's volumes, on the node that holds them. */
  removeVolume(app: AppRef, volume: string): Promise<void>;
  /** The swarm node (hostname) the app is pinned to, where its volumes are; undefined when unpinned. */
  pinnedNode(app: AppRef): Promise<string | undefined>;
  /** Pins an existing app to a node: every later deploy is placed there, its volumes handled there. */
  pinToNode(app: AppRef, node: string): Promise<void>;
}
