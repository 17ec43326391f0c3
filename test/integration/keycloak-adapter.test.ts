import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import * as http from "node:http";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { execa } from "execa";
import { KeycloakAdmin, KeycloakError, withRetries } from "../../infra/adapters/keycloak";
import { NameError } from "../../infra/naming";
import { proxyUrl } from "../support/bed";
import { viaProxy } from "../support/http";
import { SharedKeycloak, sharedKeycloak } from "../support/shared-keycloak";
import { freePort } from "../support/warm-stack";

const RECIPE = "adapter-test";
const ADAPTER_MODULE = path.join(__dirname, "..", "..", "infra", "adapters", "keycloak.js");

function hex6(): string {
  return randomBytes(3).toString("hex");
}

function secret(): string {
  return randomBytes(18).toString("base64url");
}

function lockFile(stateDir: string, domain: string): string {
  return path.join(stateDir, "locks", `keycloak-${domain}.lock`);
}

describe("the Keycloak adapter on the shared Keycloak", () => {
  let keycloak: SharedKeycloak;
  let stateDir: string;
  let admin: KeycloakAdmin;
  const created = new Set<string>();

  function connect(options: { proxyUrl?: string; lockTimeoutMs?: number; callDeadlineMs?: number } = {}): KeycloakAdmin {
    return new KeycloakAdmin(
      { url: `http://${keycloak.domain}`, proxyUrl: options.proxyUrl ?? proxyUrl(), adminUser: keycloak.adminUser, adminPassword: keycloak.adminPassword },
      { stateDir, lockTimeoutMs: options.lockTimeoutMs, callDeadlineMs: options.callDeadlineMs },
    );
  }

  async function newRealm() {
    const hex = hex6();
    const spec = {
      realm: `${RECIPE}-${hex}`,
      clientId: RECIPE,
      clientSecret: secret(),
      user: { username: "warmstack-test", password: secret() },
      attributes: { "warmstack.stack": `run-${RECIPE}-${hex}`, "warmstack.createdAt": new Date().toISOString() },
    };
    created.add(spec.realm);
    await admin.createRunRealm(spec);
    return spec;
  }

  before(async () => {
    keycloak = await sharedKeycloak();
    stateDir = await mkdtemp(path.join(os.tmpdir(), "warmstack-kc-adapter-"));
    admin = connect();
  });

  after(async () => {
    for (const realm of created) await admin.deleteRealm(realm);
    await admin.close();
    await rm(stateDir, { recursive: true, force: true });
  });

  it("creates realm, client and user in one call; the password grant works; delete, then delete again is done", { timeout: 300_000 }, async () => {
    const spec = await newRealm();
    const listed = (await admin.listRealms()).find((entry) => entry.realm === spec.realm);
    assert.equal(listed?.attributes["warmstack.stack"], spec.attributes["warmstack.stack"]);
    assert.equal(listed?.attributes["warmstack.createdAt"], spec.attributes["warmstack.createdAt"]);

    const tokens = await admin.passwordGrant(spec.realm, spec.clientId, spec.clientSecret, spec.user.username, spec.user.password);
    assert.equal(tokens.tokenType, "Bearer");
    assert.equal((await admin.userinfo(spec.realm, tokens.accessToken)).preferred_username, spec.user.username);
    assert.equal((await admin.discovery(spec.realm)).issuer, `http://${keycloak.domain}/realms/${spec.realm}`);
    await assert.rejects(admin.passwordGrant(spec.realm, spec.clientId, spec.clientSecret, spec.user.username, "wrong-password"), (error: KeycloakError) => {
      assert.match(error.message, /HTTP 40\d \(invalid_grant: Invalid user credentials\)/);
      for (const value of [spec.clientSecret, spec.user.password, "wrong-password"]) assert.ok(!error.message.includes(value), "no secret in an error");
      return true;
    });

    assert.equal(await admin.deleteRealm(spec.realm), "deleted");
    assert.equal(await admin.realmExists(spec.realm), false);
    assert.equal(await admin.deleteRealm(spec.realm), "absent", "404 counts as done");
    assert.equal(existsSync(lockFile(stateDir, keycloak.domain)), false, "the write lock is released");
  });

  it("refuses a second realm of the same name that is not this call's", { timeout: 300_000 }, async () => {
    const spec = await newRealm();
    await assert.rejects(
      admin.createRunRealm({ ...spec, attributes: { "warmstack.stack": "run-adapter-test-000000", "warmstack.createdAt": new Date().toISOString() } }),
      { name: "RealmExistsError", message: `realm ${spec.realm} already exists on ${keycloak.domain}` },
    );
    assert.equal(await admin.deleteRealm(spec.realm), "deleted");
  });

  it("rejects a token of realm A at realm B", { timeout: 300_000 }, async () => {
    const [a, b] = [await newRealm(), await newRealm()];
    const tokenA = await admin.passwordGrant(a.realm, a.clientId, a.clientSecret, a.user.username, a.user.password);
    await assert.rejects(admin.userinfo(b.realm, tokenA.accessToken), (error: KeycloakError) => {
      assert.equal(error.status, 401);
      return true;
    });
    await assert.rejects(admin.passwordGrant(b.realm, b.clientId, a.clientSecret, b.user.username, b.user.password), { status: 401 });
    for (const spec of [a, b]) await admin.deleteRealm(spec.realm);
  });

  it("8 processes create, verify and delete realms at once: 0 errors, 0 leftovers", { timeout: 900_000 }, async () => {
    // Each child is a separate process, so only the lock file serializes their writes.
    const script = `
      const { randomBytes } = require("node:crypto");
      const { KeycloakAdmin } = require(process.env.CYCLE_MODULE);
      const config = JSON.parse(process.env.CYCLE_CONFIG);
      (async () => {
        const started = Date.now();
        const kc = new KeycloakAdmin(
          { url: config.url, proxyUrl: config.proxyUrl, adminUser: config.adminUser, adminPassword: process.env.CYCLE_ADMIN_PASSWORD },
          { stateDir: config.stateDir },
        );
        const spec = {
          realm: config.realm, clientId: "adapter-test", clientSecret: randomBytes(18).toString("base64url"),
          user: { username: "warmstack-test", password: randomBytes(18).toString("base64url") },
          attributes: { "warmstack.stack": config.stack, "warmstack.createdAt": new Date().toISOString() },
        };
        await kc.createRunRealm(spec);
        await kc.passwordGrant(spec.realm, spec.clientId, spec.clientSecret, spec.user.username, spec.user.password);
        const issuer = (await kc.discovery(spec.realm)).issuer;
        if (issuer !== config.url + "/realms/" + spec.realm) throw new Error("issuer " + issuer);
        const deleted = await kc.deleteRealm(spec.realm);
        if (deleted !== "deleted") throw new Error("delete said " + deleted);
        await kc.close();
        process.stdout.write(JSON.stringify({ realm: spec.realm, ms: Date.now() - started }));
      })().catch((error) => { process.stderr.write(String(error && error.message)); process.exit(1); });
    `;
    const realms = Array.from({ length: 8 }, () => `${RECIPE}-${hex6()}`);
    realms.forEach((realm) => created.add(realm));
    const started = Date.now();
    const children = await Promise.all(
      realms.map((realm) =>
        execa(process.execPath, ["-e", script], {
          reject: false,
          timeout: 840_000,
          env: {
            CYCLE_MODULE: ADAPTER_MODULE,
            CYCLE_ADMIN_PASSWORD: keycloak.adminPassword,
            CYCLE_CONFIG: JSON.stringify({
              url: `http://${keycloak.domain}`,
              proxyUrl: proxyUrl(),
              adminUser: keycloak.adminUser,
              stateDir,
              realm,
              stack: `run-${realm}`,
            }),
          },
        }),
      ),
    );
    const failures = children.filter((child) => child.exitCode !== 0).map((child) => `exit ${child.exitCode}: ${child.stderr}`);
    assert.deepEqual(failures, [], "0 errors");
    const timings = children.map((child) => (JSON.parse(child.stdout) as { ms: number }).ms);
    const names = new Set((await admin.listRealms()).map((entry) => entry.realm));
    assert.deepEqual(realms.filter((realm) => names.has(realm)), [], "0 leftovers");
    assert.equal(existsSync(lockFile(stateDir, keycloak.domain)), false, "the write lock is released");
    console.log(`8 cycles in ${Date.now() - started} ms; per process ${Math.min(...timings)}–${Math.max(...timings)} ms`);
  });

  it("refuses master and names outside the run pattern before any request; master is untouched", { timeout: 120_000 }, async () => {
    const spec = {
      clientId: RECIPE,
      clientSecret: secret(),
      user: { username: "warmstack-test", password: secret() },
      attributes: {},
    };
    for (const realm of ["master", "Sso-App-abc123", "sso-app", "sso-app-abc123/../master", "sso-app-ABC123"]) {
      await assert.rejects(admin.deleteRealm(realm), NameError, realm);
      await assert.rejects(admin.createRunRealm({ ...spec, realm }), NameError, realm);
      await assert.rejects(admin.resetRunCredentials(realm, { clientId: RECIPE, clientSecret: "x", username: "admin", password: "x" }), NameError, realm);
    }
    await assert.rejects(admin.deleteRealm("master"), /realm: "master" is Keycloak's admin realm and is never a run realm/);
    assert.equal((await viaProxy(keycloak.domain, "/realms/master")).status, 200);
  });

  it("fails within its deadline with a clear error when Keycloak cannot be reached", { timeout: 60_000 }, async () => {
    // A port that was free a moment ago: nothing listens on it.
    const port = await freePort();
    const unreachable = connect({ proxyUrl: `http://127.0.0.1:${port}`, callDeadlineMs: 5000 });
    try {
      await assert.rejects(unreachable.listRealms(), (error: KeycloakError) => {
        assert.ok(error.message.startsWith(`list realms on ${keycloak.domain}: admin login as ${keycloak.adminUser}: connection failed`), error.message);
        assert.ok(error.message.includes(`ECONNREFUSED 127.0.0.1:${port}`), error.message);
        assert.doesNotMatch(error.message, new RegExp(keycloak.adminPassword));
        return true;
      });
      await assert.rejects(unreachable.deleteRealm(`${RECIPE}-${hex6()}`), /ECONNREFUSED/);
      assert.equal(existsSync(lockFile(stateDir, keycloak.domain)), false, "a failed write releases the lock");
    } finally {
      await unreachable.close();
    }
  });

  it("takes over a write lock whose owner died on this host; waits for a live or foreign one and names it", { timeout: 120_000 }, async () => {
    const file = lockFile(stateDir, keycloak.domain);
    await mkdir(path.dirname(file), { recursive: true });
    const dead = spawnSync(process.execPath, ["-e", ""]);
    await writeFile(file, JSON.stringify({ pid: dead.pid, host: os.hostname(), since: "2026-01-01T00:00:00.000Z" }), { flag: "wx" });
    assert.equal(await admin.deleteRealm(`${RECIPE}-${hex6()}`), "absent");
    assert.equal(existsSync(file), false, "the dead owner's lock was taken over and the new one released");

    const impatient = connect({ lockTimeoutMs: 1500 });
    try {
      for (const holder of [
        { pid: process.pid, host: os.hostname(), since: new Date().toISOString() },
        { pid: dead.pid, host: "another-runner", since: new Date().toISOString() },
      ]) {
        const held = JSON.stringify(holder);
        await writeFile(file, held, { flag: "wx" });
        await assert.rejects(
          impatient.deleteRealm(`${RECIPE}-${hex6()}`),
          new RegExp(`timed out after 2s waiting for the Keycloak write lock of .*held by pid ${holder.pid} on ${holder.host} since ${holder.since}`),
        );
        assert.equal(await readFile(file, "utf8"), held, "a live or foreign lock is left alone");
        await rm(file);
      }
    } finally {
      await impatient.close();
    }
  });
});

/**
 * A stand-in on loopback for what the real Keycloak cannot be made to do on demand: answer 503, or
 * hand out an admin token that is about to expire.
 */
describe("the Keycloak adapter against a loopback stand-in", () => {
  let stateDir: string;

  before(async () => {
    stateDir = await mkdtemp(path.join(os.tmpdir(), "warmstack-kc-standin-"));
  });

  after(async () => {
    await rm(stateDir, { recursive: true, force: true });
  });

  async function standIn(handler: (request: http.IncomingMessage, response: http.ServerResponse) => void) {
    const server = http.createServer(handler);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as net.AddressInfo).port;
    const admin = new KeycloakAdmin({ url: "http://kc-standin.warm.test", proxyUrl: `http://127.0.0.1:${port}`, adminUser: "admin", adminPassword: "standin-password" }, { stateDir });
    return {
      admin,
      async close() {
        await admin.close();
        await new Promise((resolve) => server.close(resolve));
      },
    };
  }

  function json(response: http.ServerResponse, status: number, body: unknown) {
    response.writeHead(status, { "content-type": "application/json" });
    response.end(JSON.stringify(body));
  }

  function token(lifetimeSeconds: number): string {
    const part = (value: object) => Buffer.from(JSON.stringify(value)).toString("base64url");
    return `${part({ alg: "none" })}.${part({ exp: Math.floor(Date.now() / 1000) + lifetimeSeconds })}.sig`;
  }

  it("retries a 503 and then succeeds; gives up on a 5xx after its attempts; never retries a 4xx", { timeout: 60_000 }, async () => {
    let calls = 0;
    const hosts = new Set<string | undefined>();
    const discovery = (realm: string) => ({
      issuer: `http://kc-standin.warm.test/realms/${realm}`,
      token_endpoint: "t",
      authorization_endpoint: "a",
      userinfo_endpoint: "u",
      jwks_uri: "j",
    });
    const server = await standIn((request, response) => {
      calls += 1;
      hosts.add(request.headers.host);
      if (request.url?.startsWith("/realms/flaky-abc123/") && calls <= 2) return json(response, 503, { error: "unavailable" });
      if (request.url?.startsWith("/realms/flaky-abc123/")) return json(response, 200, discovery("flaky-abc123"));
      if (request.url?.startsWith("/realms/down-abc123/")) return json(response, 502, {});
      return json(response, 404, { error: "Realm does not exist" });
    });
    try {
      assert.equal((await server.admin.discovery("flaky-abc123")).issuer, "http://kc-standin.warm.test/realms/flaky-abc123");
      assert.equal(calls, 3);

      calls = 0;
      await assert.rejects(server.admin.discovery("down-abc123"), /discovery document of realm down-abc123 on kc-standin\.warm\.test: HTTP 502 \(gave up after 4 attempts\)/);
      assert.equal(calls, 4);

      calls = 0;
      await assert.rejects(server.admin.discovery("gone-abc123"), { status: 404 });
      assert.equal(calls, 1);

      let attempts = 0;
      const value = await withRetries("a flaky step", async () => {
        attempts += 1;
        if (attempts < 3) throw new KeycloakError("a flaky step: HTTP 500", { status: 500 });
        return "done";
      });
      assert.equal(value, "done");
      assert.equal(attempts, 3);
      assert.deepEqual([...hosts], ["kc-standin.warm.test"], "every request names the Keycloak's domain");
    } finally {
      await server.close();
    }
  });

  it("logs in once for many calls and again only when the token has less than 15 s left", { timeout: 60_000 }, async () => {
    let logins = 0;
    // The first token is born with less than the 15 s margin left; the second has an hour: no waiting needed.
    const lifetimes = [14, 3600];
    const server = await standIn((request, response) => {
      if (request.url === "/realms/master/protocol/openid-connect/token") {
        logins += 1;
        const lifetime = lifetimes[Math.min(logins - 1, lifetimes.length - 1)]!;
        return json(response, 200, { access_token: token(lifetime), refresh_token: token(1800), expires_in: lifetime, token_type: "Bearer" });
      }
      if (request.url?.startsWith("/admin/realms")) return json(response, 200, [{ realm: "master", attributes: {} }]);
      return json(response, 404, {});
    });
    try {
      await server.admin.listRealms();
      assert.equal(logins, 1);
      await Promise.all([server.admin.listRealms(), server.admin.listRealms()]);
      assert.equal(logins, 2, "one shared re-login for two calls, the token being about to expire");
      for (let n = 0; n < 3; n++) await server.admin.listRealms();
      assert.equal(logins, 2, "one login for many calls while the token has time left");
    } finally {
      await server.close();
    }
  });

});
