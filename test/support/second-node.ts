import { mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import * as path from "node:path";
import { execa } from "execa";
import { FileCoordination } from "../../infra/adapters/coordination";
import { DeadlineError, waitUntil } from "../../infra/adapters/health";
import { processAlive } from "../../infra/adapters/liveness";
import { docker, DockerCallOptions } from "../../infra/adapters/swarm";
import { bed } from "./bed";

/**
 * A second swarm node on this machine (test/bed/node2.sh): a worker with its own dockerd in a
 * network namespace, joined to the host's swarm, with the bed's images. Named volumes are
 * node-local, so tests that pin apps to it inspect that node's volumes and containers through
 * `docker()`, which talks to the second daemon.
 *
 * Test files run in separate processes: the first `secondNode()` brings the node up under a lock
 * file, each process registers as a user, and the last `release()` takes it down again. A process
 * that dies without releasing leaves a user file naming a dead pid, which the next caller drops.
 *
 * While the node is up and active, the scheduler may place any service without a placement
 * constraint on it (it prefers the empty node): suites that use it run alone (`*.exclusive.test.ts`).
 */
export interface SecondNode {
  /** Swarm node ID of the worker, for `node.id==` constraints. */
  nodeId: string;
  hostname: string;
  /** The second daemon's socket, e.g. unix:///run/warmstack-node2/docker.sock */
  dockerHost: string;
  /** The worker's address on the veth pair. */
  address: string;
  /** The node label node2.sh sets, "warmstack.bed=node2" (for `node.labels.warmstack.bed==node2`). */
  label: string;
  /** The docker CLI against the second daemon (its local volumes, containers, images). */
  docker(args: readonly string[], options?: DockerCallOptions): Promise<string>;
  /** Done with the node: the last user of all test processes takes it down (node2.sh down). */
  release(): Promise<ReleaseResult>;
}

export interface ReleaseResult {
  /** True when this release took the node down. */
  tornDown: boolean;
  /** Pids of the other live processes that still use it (then it stays up). */
  otherUsers: number[];
}

interface NodeState {
  nodeId: string;
  hostname: string;
  dockerHost: string;
  address: string;
  label: string;
}

// Compiled to dist/test/support: the repository is three levels up.
export const NODE2_SCRIPT = path.resolve(__dirname, "..", "..", "..", "test", "bed", "node2.sh");
/** Written by node2.sh up. */
export const NODE2_STATE_FILE = "/run/warmstack-node2/node2.json";
const LOCK_TIMEOUT_MS = 900_000;
const SCRIPT_TIMEOUT_MS = 600_000;
const READY_TIMEOUT_MS = 60_000;

function home(): string {
  return path.join(bed().cache, "node2");
}

function usersDir(): string {
  return path.join(home(), "users");
}

/** One holder at a time across test processes; a dead holder's lock is taken over. */
function withLock<T>(body: () => Promise<T>): Promise<T> {
  return new FileCoordination(home()).withLock("second-node", { what: "the second node", timeoutMs: LOCK_TIMEOUT_MS }, body);
}

/** Live users (pids) of the node, after dropping the files of dead ones. */
async function liveUsers(): Promise<number[]> {
  await mkdir(usersDir(), { recursive: true });
  const live: number[] = [];
  for (const name of await readdir(usersDir())) {
    const pid = Number(name);
    if (Number.isInteger(pid) && pid > 0 && processAlive(pid)) live.push(pid);
    else await rm(path.join(usersDir(), name), { force: true });
  }
  return live;
}

async function runScript(command: "up" | "down"): Promise<string> {
  const result = await execa("bash", [NODE2_SCRIPT, command], {
    all: true,
    reject: false,
    timeout: SCRIPT_TIMEOUT_MS,
    env: { WARMSTACK_BED_CACHE: bed().cache, WARMSTACK_BED_NODE2_AVAILABILITY: "active" },
  });
  const output = String(result.all ?? "");
  if (result.timedOut) {
    throw new DeadlineError(`test/bed/node2.sh ${command}`, SCRIPT_TIMEOUT_MS, output.split("\n").slice(-15).join("\n"));
  }
  if (result.exitCode !== 0) throw new Error(`test/bed/node2.sh ${command} failed (exit ${result.exitCode}):\n${output}`);
  return output;
}

async function readState(): Promise<NodeState> {
  const state = JSON.parse(await readFile(NODE2_STATE_FILE, "utf8")) as Partial<NodeState>;
  for (const key of ["nodeId", "hostname", "dockerHost", "address", "label"] as const) {
    if (typeof state[key] !== "string" || !state[key]) throw new Error(`${NODE2_STATE_FILE}: no ${key}`);
  }
  return state as NodeState;
}

/** Reports "ready active" when the host's swarm has the node ready for tasks. */
export async function nodeState(nodeId: string): Promise<string> {
  try {
    return (await docker(["node", "inspect", nodeId, "--format", "{{.Status.State}} {{.Spec.Availability}}"])).trim();
  } catch (error) {
    return `not in the host's swarm (${(error as Error).message.split("\n")[0]})`;
  }
}

async function waitReady(nodeId: string): Promise<void> {
  await waitUntil(
    `the second node ${nodeId} to be ready and active in the host's swarm`,
    async () => {
      const state = await nodeState(nodeId);
      return state === "ready active" ? { done: true, value: undefined } : { done: false, state };
    },
    { timeoutMs: READY_TIMEOUT_MS, intervalMs: 500 },
  );
}

let acquired = 0;
let current: NodeState | undefined;

function handle(state: NodeState): SecondNode {
  let released = false;
  return {
    ...state,
    docker: (args, options) => docker(args, { ...options, host: state.dockerHost }),
    release: async () => {
      if (released) return { tornDown: false, otherUsers: [] };
      released = true;
      return releaseOne();
    },
  };
}

/** Brings the second node up (or joins the processes that use it) and returns it. */
export async function secondNode(): Promise<SecondNode> {
  return withLock(async () => {
    await liveUsers();
    // Once per process, and again if the node went away meanwhile (left the swarm, was taken down).
    if (!current || (await nodeState(current.nodeId)) !== "ready active") {
      await runScript("up");
      current = await readState();
    }
    await writeFile(path.join(usersDir(), String(process.pid)), `${new Date().toISOString()}\n`);
    acquired += 1;
    await waitReady(current.nodeId);
    return handle(current);
  });
}

async function releaseOne(): Promise<ReleaseResult> {
  return withLock(async () => {
    acquired = Math.max(0, acquired - 1);
    if (acquired > 0) return { tornDown: false, otherUsers: [process.pid] };
    await rm(path.join(usersDir(), String(process.pid)), { force: true });
    const others = (await liveUsers()).filter((pid) => pid !== process.pid);
    if (others.length > 0) return { tornDown: false, otherUsers: others };
    await runScript("down");
    current = undefined;
    return { tornDown: true, otherUsers: [] };
  });
}

/**
 * The worker leaves the swarm on its own (`docker swarm leave` on it), as a node that went away:
 * the host's swarm keeps listing it, down. Its daemon and volumes stay until release().
 */
export async function leaveSwarm(node: SecondNode, timeoutMs = 60_000): Promise<void> {
  await node.docker(["swarm", "leave", "--force"]);
  await waitUntil(
    `the host's swarm to see the second node ${node.nodeId} down`,
    async () => {
      const state = await nodeState(node.nodeId);
      return state.startsWith("down ") ? { done: true, value: undefined } : { done: false, state };
    },
    { timeoutMs, intervalMs: 500 },
  );
}
