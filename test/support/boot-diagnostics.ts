import { fetch as undiciFetch } from "undici";
import { proxyDispatcher } from "../../infra/adapters/proxy-dispatcher";
import { docker } from "../../infra/adapters/swarm";
import { bed, proxyUrl } from "./bed";

const BED_PROXY_SERVICE = "bedproxy_app";

async function section(title: string, read: () => Promise<string>): Promise<string> {
  const started = Date.now();
  const text = await read().catch((error: unknown) => `(could not be read: ${error instanceof Error ? error.message : String(error)})`);
  return `--- ${title} (read in ${Date.now() - started} ms)\n${text.trim() || "(empty)"}`;
}

/** What `host` answers through the bed proxy now, from this process, so a stale route shows beside the app's own log. */
async function throughProxy(host: string, path: string): Promise<string> {
  const dispatcher = proxyDispatcher(proxyUrl());
  try {
    const response = await undiciFetch(`http://${host}${path}`, { dispatcher, signal: AbortSignal.timeout(10_000) });
    return `HTTP ${response.status}`;
  } finally {
    await dispatcher.close();
  }
}

/**
 * Why an app did not come up, as far as the bed can tell: its tasks, the tail of its log, its answer
 * through the proxy now, and the proxy's own log. A Keycloak that stayed at HTTP 502 for minutes on a
 * CI machine (and boots in 20 s here, 30 s under full load) left only "502" to go on; these tell a
 * Keycloak that never finished booting from a proxy that routes to a stale address.
 */
export async function bootDiagnostics(stack: string, domain: string): Promise<string> {
  const service = `${stack}_app`;
  const sections = [
    await section(`tasks of ${service}`, () => docker(["service", "ps", "--no-trunc", "--format", "{{.Name}} {{.CurrentState}} {{.Error}}", service])),
    await section(`addresses of ${service}'s tasks`, () => docker(["network", "inspect", bed().proxyNetwork, "--verbose", "--format", `{{range $name, $s := .Services}}{{if eq $name "${service}"}}{{range .Tasks}}{{.Name}} {{.EndpointIP}}; {{end}}{{end}}{{end}}`])),
    await section(`last lines of ${service}`, () => docker(["service", "logs", "--tail", "40", "--timestamps", "--no-task-ids", service])),
    await section(`${domain} through the proxy now`, () => throughProxy(domain, "/realms/master")),
    await section("docker info (its latency is in the title)", () => docker(["info", "--format", "{{.Containers}} containers, {{.ContainersRunning}} running"])),
    await section(`last lines of the bed proxy`, () => docker(["service", "logs", "--tail", "30", "--timestamps", "--no-task-ids", BED_PROXY_SERVICE])),
  ];
  return `diagnostics of ${stack}:\n${sections.join("\n")}`;
}
