// Where each swarm node's Docker daemon is reached, as the operator names it: parsed apart from the
// adapter that dials them, so the runner validates its environment without loading a process library.
import { assertNodeName } from "./naming";

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
