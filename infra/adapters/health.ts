import * as http from "node:http";

/** Raised when a bounded wait runs out; carries the last state seen so the operator sees why. */
export class DeadlineError extends Error {
  constructor(
    readonly what: string,
    readonly timeoutMs: number,
    readonly lastState: string,
  ) {
    super(`timed out after ${Math.round(timeoutMs / 1000)}s waiting for ${what}; last state: ${lastState}`);
    this.name = "DeadlineError";
  }
}

/**
 * done=true ends the wait with value; otherwise state says what was seen, for the timeout error.
 * A check throws to fail the wait at once (a rolled-back update will not recover by waiting).
 */
export interface Check<T> {
  (): Promise<{ done: true; value: T } | { done: false; state: string }>;
}

export interface WaitOptions {
  timeoutMs: number;
  intervalMs?: number;
  signal?: AbortSignal;
}

export async function waitUntil<T>(what: string, check: Check<T>, options: WaitOptions): Promise<T> {
  const deadline = Date.now() + options.timeoutMs;
  const intervalMs = options.intervalMs ?? 1000;
  let lastState = "<not checked yet>";
  for (;;) {
    options.signal?.throwIfAborted();
    const result = await check();
    if (result.done) return result.value;
    lastState = result.state;
    if (Date.now() >= deadline) throw new DeadlineError(what, options.timeoutMs, lastState);
    await new Promise((resolve) => setTimeout(resolve, Math.min(intervalMs, Math.max(0, deadline - Date.now()))));
  }
}

export interface HttpProbe {
  /** Base URL of the listener to call, e.g. the proxy on loopback: http://127.0.0.1:47080 */
  baseUrl: string;
  path: string;
  /** Host header, so the proxy routes to the app's domain. */
  host?: string;
  /** Statuses that count as healthy; default: 200–399. */
  expectStatus?: readonly number[];
  timeoutMs?: number;
}

export interface ProbeResult {
  ok: boolean;
  /** Human-readable outcome, e.g. "HTTP 503" or "ECONNREFUSED". */
  detail: string;
  status?: number;
  body?: string;
}

const LOOPBACK = /^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|localhost|\[::1\])$/;

/** Probes one HTTP path once. Only loopback listeners are probed: apps are reached through the proxy. */
export function probeHttp(probe: HttpProbe): Promise<ProbeResult> {
  const url = new URL(probe.path, probe.baseUrl);
  if (!LOOPBACK.test(url.hostname)) {
    throw new Error(`health probe: ${url.hostname} is not a loopback address; probes go through the local proxy`);
  }
  const timeoutMs = probe.timeoutMs ?? 5000;
  return new Promise((resolve) => {
    const request = http.request(
      url,
      { method: "GET", headers: probe.host ? { Host: probe.host } : {}, timeout: timeoutMs },
      (response) => {
        const chunks: Buffer[] = [];
        let size = 0;
        response.on("data", (chunk: Buffer) => {
          if (size < 64 * 1024) chunks.push(chunk);
          size += chunk.length;
        });
        response.on("end", () => {
          const status = response.statusCode ?? 0;
          const ok = probe.expectStatus ? probe.expectStatus.includes(status) : status >= 200 && status < 400;
          resolve({ ok, status, detail: `HTTP ${status}`, body: Buffer.concat(chunks).toString("utf8") });
        });
        response.on("error", (error) => resolve({ ok: false, detail: error.message }));
      },
    );
    request.on("timeout", () => request.destroy(new Error(`no answer within ${timeoutMs}ms`)));
    request.on("error", (error: NodeJS.ErrnoException) => resolve({ ok: false, detail: error.code ?? error.message }));
    request.end();
  });
}

export async function waitHttpHealthy(what: string, probe: HttpProbe, options: WaitOptions): Promise<ProbeResult> {
  return waitUntil(
    what,
    async () => {
      const result = await probeHttp(probe);
      return result.ok ? { done: true, value: result } : { done: false, state: `${probe.path}: ${result.detail}` };
    },
    options,
  );
}
