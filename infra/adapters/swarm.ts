import { execa } from "execa";

/** A docker CLI call that failed; both streams are kept because either may hold the reason. */
export class DockerError extends Error {
  constructor(
    readonly args: readonly string[],
    readonly exitCode: number | undefined,
    readonly stdout: string,
    readonly stderr: string,
    reason?: string,
  ) {
    const output = [stderr.trim(), stdout.trim()].filter(Boolean).join("\n");
    super(`docker ${args.slice(0, 3).join(" ")} failed (${reason ?? `exit ${exitCode}`}): ${output || "<no output>"}`);
    this.name = "DockerError";
  }
}

export interface DockerCallOptions {
  input?: string;
  /** Another daemon than the CLI's own (`-H`): a swarm node's, for what only that node sees (its containers and volumes). */
  host?: string;
  /** Replaces the environment (plus PATH, HOME and DOCKER_*): stack deploy interpolates from it. */
  env?: Record<string, string>;
  cwd?: string;
  timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 120_000;

function dockerBinary(): string {
  return process.env.WARMSTACK_DOCKER ?? "docker";
}

function passthroughEnv(): Record<string, string> {
  const kept: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (value !== undefined && (key === "PATH" || key === "HOME" || key.startsWith("DOCKER_"))) kept[key] = value;
  }
  return kept;
}

export async function docker(args: readonly string[], options: DockerCallOptions = {}): Promise<string> {
  const result = await execa(dockerBinary(), options.host === undefined ? args : ["-H", options.host, ...args], {
    input: options.input,
    cwd: options.cwd,
    env: options.env ? { ...passthroughEnv(), ...options.env } : undefined,
    extendEnv: options.env === undefined,
    timeout: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    reject: false,
    stripFinalNewline: true,
  });
  if (result.exitCode !== 0 || result.timedOut) {
    throw new DockerError(
      args,
      result.exitCode,
      String(result.stdout ?? ""),
      String(result.stderr ?? ""),
      result.timedOut ? `no answer within ${options.timeoutMs ?? DEFAULT_TIMEOUT_MS}ms` : undefined,
    );
  }
  return String(result.stdout ?? "");
}

function lines(output: string): string[] {
  return output.split("\n").map((line) => line.trim()).filter(Boolean);
}

const STACK_LABEL = "com.docker.stack.namespace";

let detachFlagSupported: boolean | undefined;

/** Newer CLIs wait for convergence unless detached; warmstack converges by its own checks. */
async function stackDeployDetachArgs(): Promise<string[]> {
  detachFlagSupported ??= (await docker(["stack", "deploy", "--help"])).includes("--detach");
  return detachFlagSupported ? ["--detach=true"] : [];
}

export interface StackDeployOptions {
  composeFiles: readonly string[];
  /** Interpolation environment for the compose files (the app's env plus STACK_NAME). */
  env: Record<string, string>;
  cwd: string;
  resolveImage: "never" | "changed" | "always";
}

export async function deployStack(stack: string, options: StackDeployOptions): Promise<void> {
  const composeArgs = options.composeFiles.flatMap((file) => ["-c", file]);
  await docker(
    ["stack", "deploy", "--prune", "--resolve-image", options.resolveImage, ...(await stackDeployDetachArgs()), ...composeArgs, stack],
    { env: options.env, cwd: options.cwd, timeoutMs: 300_000 },
  );
}

export async function removeStack(stack: string): Promise<void> {
  await docker(["stack", "rm", stack]);
}

export interface ServiceState {
  id: string;
  name: string;
  labels: Record<string, string>;
  image: string;
  /** undefined for global services */
  replicas: number | undefined;
  /** Swarm's update status: undefined before the first update; "completed", "updating", "paused", "rollback_*" */
  updateState: string | undefined;
  updateMessage: string | undefined;
}

interface ServiceInspect {
  ID: string;
  Spec: {
    Name: string;
    Labels?: Record<string, string>;
    Mode?: { Replicated?: { Replicas?: number } };
    TaskTemplate?: { ContainerSpec?: { Image?: string } };
  };
  UpdateStatus?: { State?: string; Message?: string };
}

export async function stackServices(stack: string): Promise<ServiceState[]> {
  const ids = lines(await docker(["service", "ls", "-q", "--filter", `label=${STACK_LABEL}=${stack}`]));
  if (ids.length === 0) return [];
  const inspected = JSON.parse(await docker(["service", "inspect", ...ids])) as ServiceInspect[];
  return inspected.map((service) => ({
    id: service.ID,
    name: service.Spec.Name,
    labels: service.Spec.Labels ?? {},
    image: service.Spec.TaskTemplate?.ContainerSpec?.Image ?? "",
    replicas: service.Spec.Mode?.Replicated?.Replicas,
    updateState: service.UpdateStatus?.State,
    updateMessage: service.UpdateStatus?.Message,
  }));
}

export interface TaskState {
  id: string;
  name: string;
  image: string;
  desiredState: string;
  /** e.g. "Running 5 seconds ago", "Failed 2 seconds ago" */
  currentState: string;
  error: string;
}

export async function serviceTasks(serviceId: string): Promise<TaskState[]> {
  const output = await docker(["service", "ps", "--no-trunc", "--format", "{{json .}}", serviceId]);
  return lines(output).map((line) => {
    const task = JSON.parse(line) as Record<string, string>;
    return {
      id: task.ID ?? "",
      name: task.Name ?? "",
      image: task.Image ?? "",
      desiredState: task.DesiredState ?? "",
      currentState: task.CurrentState ?? "",
      // docker quotes the error inside the JSON value
      error: (task.Error ?? "").replace(/^"(.*)"$/, "$1"),
    };
  });
}

const ENDED_DESIRED_STATES = new Set(["Shutdown", "Remove", "Complete"]);

/**
 * True when Swarm means to run a task of the service; false once it gave up restarting it. A task
 * waiting out the restart delay is meant to run but wants "Ready", which docker's desired-state
 * filter does not match, so the states are read and judged here.
 */
export async function serviceHasLiveTask(serviceId: string): Promise<boolean> {
  const desired = lines(await docker(["service", "ps", "--format", "{{.DesiredState}}", serviceId]));
  return desired.some((state) => !ENDED_DESIRED_STATES.has(state));
}

/** Schedules a fresh task with the same spec: the only way back for a service Swarm gave up on. */
export async function restartService(serviceId: string): Promise<void> {
  await docker(["service", "update", "--force", "--detach=true", serviceId]);
}

/** A stack's containers on one node: this CLI's own, or the daemon at `host`. */
export async function stackContainers(stack: string, host?: string): Promise<string[]> {
  return lines(await docker(["ps", "-aq", "--no-trunc", "--filter", `label=${STACK_LABEL}=${stack}`], { host }));
}

/**
 * The containers of removed services on one node, stopped and removed now rather than when Swarm
 * gets to them: its agent waits a fixed gossip delay before it stops a task on an overlay network,
 * and removes a container seconds after it has exited. `docker stop` is the stop Swarm sends (the
 * service's stop signal, then SIGKILL once the container's stop grace period is over), so no app's
 * data is cut short. A container Swarm removed meanwhile is no error.
 */
export async function stopRemovedServiceContainers(containers: readonly string[], host: string | undefined, timeoutMs: number): Promise<void> {
  if (containers.length === 0) return;
  const unlessGone = (error: unknown) => {
    if (!(error instanceof DockerError) || !/No such container|is already in progress/i.test(error.message)) throw error;
  };
  await docker(["stop", ...containers], { host, timeoutMs }).catch(unlessGone);
  await docker(["rm", ...containers], { host }).catch(unlessGone);
}

export async function stackNetworks(stack: string): Promise<string[]> {
  return lines(await docker(["network", "ls", "-q", "--filter", `label=${STACK_LABEL}=${stack}`]));
}

/** Volumes are node-local: a stack's on this CLI's node, or on the daemon at `host`. */
export async function stackVolumes(stack: string, host?: string): Promise<string[]> {
  return lines(await docker(["volume", "ls", "-q", "--filter", `label=${STACK_LABEL}=${stack}`], { host }));
}

export async function volumeExists(name: string, host?: string): Promise<boolean> {
  try {
    await docker(["volume", "inspect", name], { host });
    return true;
  } catch (error) {
    if (error instanceof DockerError && /no such volume/i.test(error.stderr)) return false;
    throw error;
  }
}

/** A named volume that a stack's deploy adopts as its own (and the stack's removal finds by its label). */
export async function createStackVolume(stack: string, name: string, host?: string): Promise<void> {
  await docker(["volume", "create", "--label", `${STACK_LABEL}=${stack}`, name], { host });
}

export async function removeVolume(name: string, host?: string): Promise<void> {
  await docker(["volume", "rm", name], { host });
}

export async function createSecret(name: string, value: string, labels: Record<string, string>): Promise<void> {
  const labelArgs = Object.entries(labels).flatMap(([key, label]) => ["--label", `${key}=${label}`]);
  await docker(["secret", "create", ...labelArgs, name, "-"], { input: value });
}

export async function secretsWithLabel(label: string, value: string): Promise<string[]> {
  return lines(await docker(["secret", "ls", "--filter", `label=${label}=${value}`, "--format", "{{.Name}}"]));
}

export async function removeSecret(name: string): Promise<void> {
  await docker(["secret", "rm", name]);
}

export async function swarmIsActive(): Promise<boolean> {
  return (await docker(["info", "--format", "{{.Swarm.LocalNodeState}}"])).trim() === "active";
}
