import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs/promises";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { AlertRecord, listAlerts, postWebhook, raiseAlert, writeAlert } from "../../infra/adapters/alerts";

const RECORD: AlertRecord = {
  app: "keycloak",
  from: "10.1.0+26.5.6",
  to: "10.2.0+26.7.3",
  outcome: "rolled-back",
  severity: "warning",
  reason: "upgrade failed: /health/ready answered 503",
  time: "2026-01-02T03:04:05.678Z",
};

async function tempDir(): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), "warmstack-alerts-"));
}

describe("alert files", () => {
  let root: string;

  before(async () => {
    root = await tempDir();
  });

  after(async () => {
    await fs.rm(root, { recursive: true, force: true });
  });

  it("writes one private JSON file per event, in a private directory it creates", async () => {
    const dir = path.join(root, "new", "alerts");
    const { path: file, record } = await writeAlert(dir, RECORD);
    assert.deepEqual(record, RECORD);
    assert.equal(path.dirname(file), dir);
    assert.match(path.basename(file), /^2026-01-02T03-04-05\.678Z-keycloak-rolled-back-[0-9a-f]{4}\.json$/);
    assert.equal((await fs.stat(file)).mode & 0o777, 0o600);
    assert.equal((await fs.stat(dir)).mode & 0o777, 0o700);
    assert.deepEqual(JSON.parse(await fs.readFile(file, "utf8")), RECORD);
    assert.deepEqual(await fs.readdir(dir), [path.basename(file)], "no temporary file is left");
  });

  it("stamps the time when none is given, and refuses a record it could not list back", async () => {
    const dir = path.join(root, "stamp");
    const before = Date.now();
    const { record } = await writeAlert(dir, { app: "traefik", from: null, to: "3.6.12", outcome: "upgraded", severity: "info", reason: "healthy" });
    assert.ok(Date.parse(record.time) >= before && Date.parse(record.time) <= Date.now());
    await assert.rejects(writeAlert(dir, { ...RECORD, app: "../escape" }), /alert record: app/);
    await assert.rejects(writeAlert(dir, { ...RECORD, outcome: "exploded" as AlertRecord["outcome"] }), /alert record: outcome/);
    await assert.rejects(writeAlert(dir, { ...RECORD, time: "yesterday" }), /alert record: time/);
    assert.equal((await fs.readdir(dir)).length, 1);
  });

  it("lists newest first, honours since and limit, and skips files that are not alert records", async () => {
    const dir = path.join(root, "list");
    const times = ["2026-03-01T10:00:00.000Z", "2026-03-03T10:00:00.000Z", "2026-03-02T10:00:00.000Z"];
    for (const time of times) await writeAlert(dir, { ...RECORD, time });
    await fs.writeFile(path.join(dir, "broken.json"), "{ not json");
    await fs.writeFile(path.join(dir, "other.json"), JSON.stringify({ hello: "world" }));
    await fs.writeFile(path.join(dir, "wrong-outcome.json"), JSON.stringify({ ...RECORD, outcome: "exploded" }));
    await fs.writeFile(path.join(dir, "notes.txt"), "not an alert");
    await fs.mkdir(path.join(dir, "subdir.json"));

    const all = await listAlerts(dir);
    assert.deepEqual(
      all.map((alert) => alert.time),
      ["2026-03-03T10:00:00.000Z", "2026-03-02T10:00:00.000Z", "2026-03-01T10:00:00.000Z"],
    );
    assert.deepEqual(all[0], { ...RECORD, time: "2026-03-03T10:00:00.000Z" });
    assert.deepEqual(
      (await listAlerts(dir, { since: new Date("2026-03-02T00:00:00Z") })).map((alert) => alert.time),
      ["2026-03-03T10:00:00.000Z", "2026-03-02T10:00:00.000Z"],
    );
    assert.deepEqual((await listAlerts(dir, { limit: 1 })).map((alert) => alert.time), ["2026-03-03T10:00:00.000Z"]);
    assert.deepEqual(await listAlerts(path.join(root, "never-written")), []);
  });
});

interface Server {
  url: string;
  requests: Array<{ method: string; body: string; contentType: string | undefined }>;
  close(): Promise<void>;
}

/** A local webhook receiver; respond decides each answer by the request's number (1-based). */
async function webhookServer(respond: (n: number, response: http.ServerResponse) => void): Promise<Server> {
  const requests: Server["requests"] = [];
  const server = http.createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      requests.push({ method: request.method ?? "", body: Buffer.concat(chunks).toString("utf8"), contentType: request.headers["content-type"] });
      respond(requests.length, response);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hook/token-path`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

const status = (code: number) => (_n: number, response: http.ServerResponse) => response.writeHead(code).end();
const FAST = { timeoutMs: 1000, backoffMs: 20 };

describe("the alert webhook", () => {
  it("delivers on 200 in one attempt, posting the record as JSON", async () => {
    const server = await webhookServer(status(200));
    try {
      assert.deepEqual(await postWebhook(server.url, RECORD, FAST), { delivered: true, attempts: 1 });
      assert.equal(server.requests.length, 1);
      assert.equal(server.requests[0]!.method, "POST");
      assert.equal(server.requests[0]!.contentType, "application/json");
      assert.deepEqual(JSON.parse(server.requests[0]!.body), RECORD);
    } finally {
      await server.close();
    }
  });

  it("retries a 500 and delivers on the second attempt", async () => {
    const server = await webhookServer((n, response) => response.writeHead(n === 1 ? 500 : 200).end());
    try {
      assert.deepEqual(await postWebhook(server.url, RECORD, FAST), { delivered: true, attempts: 2 });
      assert.equal(server.requests.length, 2);
    } finally {
      await server.close();
    }
  });

  it("gives up after three 500s without throwing", async () => {
    const server = await webhookServer(status(500));
    try {
      assert.deepEqual(await postWebhook(server.url, RECORD, FAST), { delivered: false, attempts: 3, lastError: "HTTP 500" });
      assert.equal(server.requests.length, 3);
    } finally {
      await server.close();
    }
  });

  it("does not retry a 400", async () => {
    const server = await webhookServer(status(400));
    try {
      assert.deepEqual(await postWebhook(server.url, RECORD, FAST), { delivered: false, attempts: 1, lastError: "HTTP 400" });
      assert.equal(server.requests.length, 1);
    } finally {
      await server.close();
    }
  });

  it("retries a refused connection and reports it", async () => {
    const server = await webhookServer(status(200));
    const url = server.url;
    await server.close();
    const result = await postWebhook(url, RECORD, FAST);
    assert.equal(result.delivered, false);
    assert.equal(result.attempts, 3);
    assert.match(result.lastError ?? "", /ECONNREFUSED/);
  });

  it("gives up on a server that never answers within attempts × (timeout + backoff)", async () => {
    const server = await webhookServer(() => undefined);
    const options = { timeoutMs: 300, attempts: 3, backoffMs: 50 };
    try {
      const started = Date.now();
      const result = await postWebhook(server.url, RECORD, options);
      const elapsed = Date.now() - started;
      assert.equal(result.delivered, false);
      assert.equal(result.attempts, 3);
      assert.match(result.lastError ?? "", /no answer/);
      assert.equal(server.requests.length, 3);
      assert.ok(elapsed >= 3 * 300, `each attempt waited its timeout (${elapsed} ms)`);
      assert.ok(elapsed < 3 * (300 + 50) + 500, `bounded: ${elapsed} ms`);
    } finally {
      await server.close();
    }
  });

  it("refuses a URL that is not http or https, and never names the URL", async () => {
    for (const url of ["ftp://alerts.example/hook?token=s3cret", "file:///etc/passwd"]) {
      const result = await postWebhook(url, RECORD, FAST);
      assert.equal(result.delivered, false);
      assert.equal(result.attempts, 0);
      assert.match(result.lastError ?? "", /scheme "(ftp|file)" is not http or https/);
      assert.doesNotMatch(result.lastError ?? "", /s3cret|passwd/);
    }
    assert.deepEqual(await postWebhook("not a url at all", RECORD, FAST), { delivered: false, attempts: 0, lastError: "the webhook URL is not a valid URL" });
  });

  it("writes the alert file before the webhook, even when the webhook hangs", async () => {
    const dir = await tempDir();
    const server = await webhookServer(() => undefined);
    try {
      const pending = raiseAlert(dir, RECORD, server.url, { timeoutMs: 500, attempts: 2, backoffMs: 10 });
      while (server.requests.length === 0) await new Promise((resolve) => setTimeout(resolve, 10));
      assert.deepEqual(await listAlerts(dir), [RECORD], "the file is there while the webhook hangs");
      const { path: file, webhook } = await pending;
      assert.deepEqual(webhook && { delivered: webhook.delivered, attempts: webhook.attempts }, { delivered: false, attempts: 2 });
      assert.deepEqual(JSON.parse(await fs.readFile(file, "utf8")), RECORD);
      assert.deepEqual(await listAlerts(dir), [RECORD]);
      const withoutHook = await raiseAlert(dir, { ...RECORD, outcome: "held" });
      assert.equal(withoutHook.webhook, undefined);
    } finally {
      await server.close();
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});
