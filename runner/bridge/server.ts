import Fastify from "fastify";
import { ForgeError } from "../../infra/adapters/forge";
import type { Bridge } from "./bridge";

/**
 * The bridge's HTTP side: webhook deliveries in, health and the runs out. Bodies are read raw (the
 * signature is over the exact bytes) and bounded; anything larger is refused with 413 before it is read
 * to the end.
 */
export const MAX_BODY_BYTES = 1024 * 1024;

export interface ServerOptions {
  host: string;
  port: number;
  log: (event: string, fields: Record<string, unknown>) => void;
}

export async function startServer(bridge: Bridge, options: ServerOptions): Promise<{ url: string; close(): Promise<void> }> {
  const app = Fastify({ logger: false, bodyLimit: MAX_BODY_BYTES });
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("*", { parseAs: "buffer" }, (_request, body, done) => done(null, body));
  app.setErrorHandler((caught, request, reply) => {
    const error = caught instanceof Error ? caught : new Error(String(caught));
    const status = (error as { statusCode?: number }).statusCode;
    if (status !== undefined && status < 500) return reply.code(status).send({ error: error.message });
    // The forge did not answer our questions: it is told to deliver again later.
    const code = error instanceof ForgeError ? 502 : 500;
    options.log("request-failed", { path: request.url, status: code, error: error.message });
    return reply.code(code).send({ error: code === 502 ? `the forge could not be asked: ${error.message}` : "internal error" });
  });
  app.get("/healthz", async () => ({ ok: true }));
  app.get("/runs", async () => bridge.view());
  app.post("/webhook", async (request, reply) => {
    const headers = Object.fromEntries(Object.entries(request.headers).map(([name, value]) => [name.toLowerCase(), Array.isArray(value) ? value[0] : value]));
    const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
    const answer = await bridge.delivery(headers, body);
    return reply.code(answer.status).send(answer.body);
  });
  const url = await app.listen({ host: options.host, port: options.port });
  return { url, close: () => app.close() };
}
