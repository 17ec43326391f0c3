import { FileCoordination, ifLockFree } from "../../infra/adapters/coordination";
import { Forge } from "../../infra/adapters/forge";
import { readSecretFile } from "../../infra/adapters/secret-files";
import { loadCatalogue } from "../catalogue";
import { RunnerContext, UsageError } from "../context";
import { Bridge } from "./bridge";
import { startServer } from "./server";

/** `warmstack serve`: the bridge, until SIGTERM or SIGINT; then it stops taking deliveries and lets its runs clean up. */
export interface ServeRequest {
  host: string;
  port: number;
  forgeUrl: string;
  forgeTokenFile: { value: string; from: string };
  webhookSecretFile: { value: string; from: string };
  catalogue: string;
  maxConcurrent: number;
  publicUrl?: string;
}

/** One JSON line per event on stdout, for the journal; never a secret in it. */
function logLine(event: string, fields: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), event, ...fields })}\n`);
}

export async function serve(context: RunnerContext, request: ServeRequest): Promise<void> {
  const token = await readSecretFile(request.forgeTokenFile.value, request.forgeTokenFile.from);
  const webhookSecret = await readSecretFile(request.webhookSecretFile.value, request.webhookSecretFile.from);
  const catalogue = await loadCatalogue(request.catalogue);
  const bridge = new Bridge(context, new Forge({ url: request.forgeUrl, token }), { catalogue, webhookSecret, maxConcurrent: request.maxConcurrent, publicUrl: request.publicUrl, log: logLine });
  // One bridge per state directory: two would run one queue file twice. A bridge that died frees it.
  const served = await ifLockFree(new FileCoordination(context.settings.stateDir), "bridge", "the bridge lock", () => serveUntilStopped(bridge, request, catalogue.file));
  if (!served.ran) throw new UsageError(`another warmstack serve serves the state directory ${context.settings.stateDir} (${served.holder}): one bridge per state directory`);
}

async function serveUntilStopped(bridge: Bridge, request: ServeRequest, catalogueFile: string): Promise<void> {
  await bridge.start();
  const server = await startServer(bridge, { host: request.host, port: request.port, log: logLine });
  logLine("listening", { url: server.url, forge: request.forgeUrl, catalogue: catalogueFile, maxConcurrent: request.maxConcurrent });
  await new Promise<void>((resolve) => {
    const stop = (signal: NodeJS.Signals) => {
      process.off("SIGTERM", stop);
      process.off("SIGINT", stop);
      logLine("stopping", { signal });
      resolve();
    };
    process.on("SIGTERM", stop);
    process.on("SIGINT", stop);
  });
  await server.close();
  await bridge.stop();
}
