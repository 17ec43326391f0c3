import { assertNodeName } from "../naming";
import { docker } from "./swarm";

/**
 * The swarm's nodes as the manager this runner talks to sees them, and how to reach the daemon of
 * one of them: named volumes and containers are seen only by their own node's daemon, so the
 * volumes of an app pinned to another node are listed and removed through that node's endpoint,
 * which the operator gives in WARMSTACK_NODE_DOCKER_HOSTS.
 */
export interface SwarmNode {
  id: string;
  hostname: string;
  /** ready, down, unknown, disconnected */
  state: string;
  /** active, pause, drain */
  availability: string;
  /** The node the docker CLI talks to. */
  self: boolean;
}

/** A pinned app's node, resolved: its ID for helper constraints, its daemon when it is not this CLI's. */
export interface NodeRef {
  hostname: string;
  id: string;
  /** Absent for the node the docker CLI talks to. */
  dockerHost?: string;
}

export const NODE_DOCKER_HOSTS_ENV = "WARMSTACK_NODE_DOCKER_HOSTS";
const DOCKER_ENDPOINT = /^(unix:\/\/\/[A-Za-z0-9._\/-]+|ssh:\/\/[A-Za-z0-9._@-]+(:[0-9]{1,5})?|tcp:\/\/[A-Za-z0-9.-]+:[0-9]{1,5})$/;

/** `hostname=endpoint,hostname=endpoint`: each node's Docker endpoint (unix://, ssh:// or tcp://). */
export function parseNodeDockerHosts(text: string | undefined): Map<string, string> {
  const hosts = new Map<string, string>();
  for (const entry of (text ?? "").split(",").map((part) => part.trim()).filter(Boolean)) {
    const separator = entry.indexOf("=");
    const name = separator === -1 ? entry : entry.slice(0, separator);
    const endpoint = separator === -1 ? "" : entry.slice(separator + 1);
    try {
      assertNodeName(name, NODE_DOCKER_HOSTS_ENV);
    } catch (error) {
      throw new Error(`${NODE_DOCKER_HOSTS_ENV}: ${(error as Error).message} (entries are hostname=endpoint)`);
    }
    if (!DOCKER_ENDPOINT.test(endpoint)) throw new Error(`${NODE_DOCKER_HOSTS_ENV}: the endpoint of node ${name} must be unix:///path, ssh://[user@]host[:port] or tcp://host:port`);
    if (hosts.has(name)) throw new Error(`${NODE_DOCKER_HOSTS_ENV}: node ${name} is named twice`);
    hosts.set(name, endpoint);
  }
  return hosts;
}

interface NodeRow {
  ID: string;
  Hostname: string;
  Status: string;
  Availability: string;
  Self: boolean | string;
}

export async function swarmNodes(): Promise<SwarmNode[]> {
  const output = await docker(["node", "ls", "--format", "{{json .}}"]);
  return output
    .split("\n")
    .filter(Boolean)
    .map((line) => JSON.parse(line) as NodeRow)
    .map((row) => ({ id: row.ID, hostname: row.Hostname, state: row.Status.toLowerCase(), availability: row.Availability.toLowerCase(), self: row.Self === true || row.Self === "true" }));
}

export async function localNode(): Promise<SwarmNode> {
  const self = (await swarmNodes()).find((node) => node.self);
  if (!self) throw new Error("the docker CLI's own node is not in the swarm's node list: is this a swarm manager?");
  return self;
}

/** A node that is not in the swarm (any more): whatever it held, volumes and snapshots, is not either. */
export class NodeGoneError extends Error {
  constructor(
    readonly hostname: string,
    known: readonly string[],
  ) {
    super(`swarm node ${hostname} is not in the swarm (its nodes: ${known.join(", ")})`);
    this.name = "NodeGoneError";
  }
}

/** The node an app is pinned to, for its snapshot helpers (ID) and its volumes (endpoint). */
export async function resolveNode(hostname: string, env: NodeJS.ProcessEnv = process.env): Promise<NodeRef> {
  const nodes = await swarmNodes();
  const node = nodes.find((candidate) => candidate.hostname === hostname);
  if (!node) throw new NodeGoneError(hostname, nodes.map((candidate) => candidate.hostname));
  if (node.self) return { hostname, id: node.id };
  const dockerHost = parseNodeDockerHosts(env[NODE_DOCKER_HOSTS_ENV]).get(hostname);
  if (!dockerHost) throw new Error(`swarm node ${hostname} holds this app's volumes, and ${NODE_DOCKER_HOSTS_ENV} names no Docker endpoint for it (hostname=unix:///…|ssh://…|tcp://…)`);
  return { hostname, id: node.id, dockerHost };
}
