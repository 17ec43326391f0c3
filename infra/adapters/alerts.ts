// Alerts: one JSON file per event (the durable record, read back by `warmstack status`), then an
// optional webhook POST.
//
// No secrets go into alerts (invariant 7): a record carries an app name, versions, an outcome and a
// reason, and callers must never put a password, token or client secret into any of them. The files
// are private (0600 in a 0700 directory) all the same, and the webhook URL itself — which may carry a
// token — is never echoed back in an error.
import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import * as fs from "node:fs/promises";
import * as path from "node:path";

export const ALERT_OUTCOMES = ["upgraded", "rolled-back", "rollback-failed", "held", "deploy-failed", "restarted", "fetch-failed", "canary-failed", "warning"] as const;
export const ALERT_SEVERITIES = ["info", "warning", "critical"] as const;

export interface AlertRecord {
  app: string;
  from: string | null;
  to: string | null;
  outcome: (typeof ALERT_OUTCOMES)[number];
  severity: (typeof ALERT_SEVERITIES)[number];
  reason: string;
  /** ISO time */
  time: string;
}

export type AlertInput = Omit<AlertRecord, "time"> & { time?: string };

export interface WebhookOptions {
  /** Per attempt; default 5000. */
  timeoutMs?: number;
  /** Default 3. */
  attempts?: number;
  /** Pause between attempts; default 500. */
  backoffMs?: number;
}

export interface WebhookResult {
  delivered: boolean;
  attempts: number;
  lastError?: string;
}

// The app name becomes part of a file name.
const APP_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/;

function isVersion(value: unknown): value is string | null {
  return value === null || typeof value === "string";
}

/** The record's problem, or undefined when it is a valid alert record. */
function problemOf(record: Partial<Record<keyof AlertRecord, unknown>>): string | undefined {
  if (typeof record.app !== "string" || !APP_PATTERN.test(record.app)) return "app: must be letters, digits, '_', '.' or '-' (at most 100)";
  if (!isVersion(record.from)) return "from: must be a version or null";
  if (!isVersion(record.to)) return "to: must be a version or null";
  if (!ALERT_OUTCOMES.includes(record.outcome as AlertRecord["outcome"])) return `outcome: must be one of ${ALERT_OUTCOMES.join(", ")}`;
  if (!ALERT_SEVERITIES.includes(record.severity as AlertRecord["severity"])) return `severity: must be one of ${ALERT_SEVERITIES.join(", ")}`;
  if (typeof record.reason !== "string") return "reason: must be a string";
  if (typeof record.time !== "string" || Number.isNaN(Date.parse(record.time))) return "time: must be an ISO time";
  return undefined;
}

/** Writes one alert file atomically (temporary file, fsync, rename); the directory is created 0700. */
export async function writeAlert(dir: string, input: AlertInput): Promise<{ path: string; record: AlertRecord }> {
  const given = input.time ?? new Date().toISOString();
  const parsed = Date.parse(given);
  const record: AlertRecord = {
    app: input.app,
    from: input.from,
    to: input.to,
    outcome: input.outcome,
    severity: input.severity,
    reason: input.reason,
    time: Number.isNaN(parsed) ? given : new Date(parsed).toISOString(),
  };
  const problem = problemOf(record);
  if (problem) throw new Error(`alert record: ${problem}`);

  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  // ISO times in UTC with fixed width sort as text; ':' is kept out of file names for portability.
  const name = `${record.time.replace(/:/g, "-")}-${record.app}-${record.outcome}-${randomBytes(2).toString("hex")}.json`;
  const target = path.join(dir, name);
  const tmp = path.join(dir, `.${name}.${randomBytes(4).toString("hex")}.tmp`);
  const handle = await fs.open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  try {
    await handle.writeFile(`${JSON.stringify(record, null, 2)}\n`);
    // The mode given to open() passes through the umask; the record must end up exactly 0600.
    await handle.chmod(0o600);
    await handle.sync();
  } catch (error) {
    await handle.close();
    await fs.rm(tmp, { force: true });
    throw error;
  }
  await handle.close();
  await fs.rename(tmp, target);
  return { path: target, record };
}

/** Alerts newest first. Files that are not alert records are skipped: they must not break `status`. */
export async function listAlerts(dir: string, options: { since?: Date; limit?: number } = {}): Promise<AlertRecord[]> {
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw error;
  }
  const records: AlertRecord[] = [];
  for (const name of names) {
    if (!name.endsWith(".json") || name.startsWith(".")) continue;
    let record: unknown;
    try {
      record = JSON.parse(await fs.readFile(path.join(dir, name), "utf8"));
    } catch {
      continue;
    }
    if (typeof record !== "object" || record === null || problemOf(record as AlertRecord)) continue;
    const alert = record as AlertRecord;
    if (options.since && Date.parse(alert.time) < options.since.getTime()) continue;
    records.push({ app: alert.app, from: alert.from, to: alert.to, outcome: alert.outcome, severity: alert.severity, reason: alert.reason, time: alert.time });
  }
  records.sort((a, b) => Date.parse(b.time) - Date.parse(a.time));
  return options.limit === undefined ? records : records.slice(0, Math.max(0, options.limit));
}

// Error text without the URL: fetch's own messages are generic, their causes name host and port only.
function describeFailure(error: unknown): string {
  if (error instanceof Error) {
    if (error.name === "TimeoutError") return "no answer within the attempt's timeout";
    const cause = (error as Error & { cause?: { code?: string; message?: string } }).cause;
    return cause?.code ?? cause?.message ?? error.message;
  }
  return String(error);
}

/**
 * POSTs the record as JSON. 2xx is delivered; 5xx and network errors are retried; any other status is
 * final. Never throws; takes at most attempts × (timeoutMs + backoffMs).
 */
export async function postWebhook(url: string, record: AlertRecord, options: WebhookOptions = {}): Promise<WebhookResult> {
  const timeoutMs = options.timeoutMs ?? 5000;
  const attempts = Math.max(1, options.attempts ?? 3);
  const backoffMs = options.backoffMs ?? 500;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return { delivered: false, attempts: 0, lastError: "the webhook URL is not a valid URL" };
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    return { delivered: false, attempts: 0, lastError: `the webhook URL scheme "${parsed.protocol.replace(/:$/, "")}" is not http or https` };
  }
  const body = JSON.stringify(record);
  let lastError = "";
  for (let attempt = 1; attempt <= attempts; attempt++) {
    if (attempt > 1) await new Promise((resolve) => setTimeout(resolve, backoffMs));
    let retry: boolean;
    try {
      const response = await fetch(parsed, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
        // A redirect would resend the record to a URL nobody configured.
        redirect: "manual",
        signal: AbortSignal.timeout(timeoutMs),
      });
      await response.body?.cancel().catch(() => undefined);
      if (response.status >= 200 && response.status < 300) return { delivered: true, attempts: attempt };
      lastError = `HTTP ${response.status}`;
      retry = response.status >= 500;
    } catch (error) {
      lastError = describeFailure(error);
      retry = true;
    }
    if (!retry) return { delivered: false, attempts: attempt, lastError };
  }
  return { delivered: false, attempts, lastError };
}

/** Writes the alert file first (the durable record), then tries the webhook if one is configured. */
export async function raiseAlert(
  dir: string,
  input: AlertInput,
  webhookUrl?: string,
  options?: WebhookOptions,
): Promise<{ path: string; record: AlertRecord; webhook?: WebhookResult }> {
  const written = await writeAlert(dir, input);
  if (!webhookUrl) return written;
  return { ...written, webhook: await postWebhook(webhookUrl, written.record, options) };
}
