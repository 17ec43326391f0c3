import { NODE_DOCKER_HOSTS_ENV, parseNodeDockerHosts } from "../node-hosts";
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
