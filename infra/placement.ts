import type { SwarmNode } from "./adapters/nodes";

/**
 * Whether an app pinned to a node can run now: the swarm places tasks only on a ready, active node,
 * and a pinned app's volumes are nowhere else. `why` says what the swarm says of the node.
 */
export function nodeUsable(node: SwarmNode | undefined): { usable: true } | { usable: false; why: string } {
  if (!node) return { usable: false, why: "has left the swarm" };
  if (node.state !== "ready") return { usable: false, why: `is ${node.state}` };
  if (node.availability !== "active") return { usable: false, why: `is ${node.state} but its availability is ${node.availability}` };
  return { usable: true };
}
