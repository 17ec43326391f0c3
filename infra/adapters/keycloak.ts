import KcAdminClient, { NetworkError } from "@keycloak/keycloak-admin-client";
import type { Agent } from "undici";
import { assertDomain, assertRunRealmName } from "../naming";
import { Coordination, coordinationAt } from "./coordination";
import { DeadlineError, waitUntil } from "./health";
import { proxyDispatcher } from "./proxy-dispatcher";

/**
 * Keycloak's admin REST API through the official admin client, for per-run realms on a shared
 * Keycloak. Keycloak is always called by its own domain through the proxy on loopback, because it
 * derives a realm's issuer from the Host it is called by. Admin writes are serialized per Keycloak
 * across processes (parallel realm writes were seen to answer 500 under load) and every call is
 * retried on 5xx and broken connections, within a deadline. Nothing here puts a secret into an error.
 */
export interface KeycloakConnection {
  /** http://<domain> — the domain every client of a realm uses, so issuers match. */
  url: string;
  /** The proxy's web entrypoint on loopback, e.g. http://127.0.0.1:47080. */
  proxyUrl: string;
  adminUser: string;
  adminPassword: string;
}

export interface KeycloakAdminOptions {
  /** Holds locks/keycloak-<domain>.lock, shared by every process that writes to this Keycloak. */
  stateDir: string;
  /** Per HTTP request. Default 60 s. */
  requestTimeoutMs?: number;
  /** Per operation, all retries included. Default 180 s. */
  callDeadlineMs?: number;
  attempts?: number;
  /** How long a write waits for other processes' writes. Default 600 s: tens of runs may queue. */
  lockTimeoutMs?: number;
}

export interface RunRealmSpec {
  realm: string;
  clientId: string;
  clientSecret: string;
  user: { username: string; password: string };
  /** Realm attributes; warmstack records the owning stack and the creation time here. */
  attributes: Record<string, string>;
}

export interface RealmSummary {
  realm: string;
  attributes: Record<string, string>;
}

export interface TokenSet {
  accessToken: string;
  idToken?: string;
  refreshToken?: string;
  expiresIn: number;
  tokenType: string;
}

export interface Discovery {
  issuer: string;
  tokenEndpoint: string;
  authorizationEndpoint: string;
  userinfoEndpoint: string;
  jwksUri: string;
}

/** Status and connection code, for callers that judge the failure (404, 409, ECONNREFUSED …). */
export class KeycloakError extends Error {
  readonly status?: number;
  readonly code?: string;

  constructor(message: string, details: { status?: number; code?: string } = {}) {
    super(message);
    this.name = "KeycloakError";
    this.status = details.status;
    this.code = details.code;
  }

  get retryable(): boolean {
    return (this.status !== undefined && this.status >= 500) || (this.code !== undefined && RETRYABLE_CODES.has(this.code));
  }
}

/** A realm of that name exists and was not created by this call. */
export class RealmExistsError extends KeycloakError {
  constructor(realm: string, domain: string) {
    super(`realm ${realm} already exists on ${domain}`, { status: 409 });
    this.name = "RealmExistsError";
  }
}

// Broken or refused connections and timeouts may heal (a proxy or Keycloak restarting); 4xx never do.
const RETRYABLE_CODES = new Set([
  "ECONNRESET",
  "ECONNREFUSED",
  "EPIPE",
  "ETIMEDOUT",
  "ECONNABORTED",
  "UND_ERR_SOCKET",
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_CLOSED",
  "TIMEOUT",
]);

// A realm import took ~30 s on a loaded 2-core bed: a request gets twice that, an operation with its
// retries three times.
const REQUEST_TIMEOUT_MS = 60_000;
const CALL_DEADLINE_MS = 180_000;

export interface RetryOptions {
  attempts?: number;
  /** First backoff; doubles per attempt, with jitter so parallel runs do not retry in step. */
  baseDelayMs?: number;
  requestTimeoutMs?: number;
  deadlineMs?: number;
}

/**
 * Runs attempt until it succeeds, a non-retryable error occurs, the attempts are used up or the
 * deadline passes. Each attempt gets a signal that aborts at its request timeout or the deadline,
 * and is abandoned then even if it ignores the signal.
 */
export async function withRetries<T>(what: string, attempt: (signal: AbortSignal) => Promise<T>, options: RetryOptions = {}): Promise<T> {
  const attempts = options.attempts ?? 4;
  const baseDelayMs = options.baseDelayMs ?? 500;
  const requestTimeoutMs = options.requestTimeoutMs ?? REQUEST_TIMEOUT_MS;
  const deadlineMs = options.deadlineMs ?? CALL_DEADLINE_MS;
  const deadline = Date.now() + deadlineMs;
  let last: KeycloakError | undefined;
  for (let n = 1; n <= attempts; n++) {
    const remaining = deadline - Date.now();
    if (remaining <= 0) break;
    const timeoutMs = Math.min(requestTimeoutMs, remaining);
    const signal = AbortSignal.timeout(timeoutMs);
    try {
      return await abandonOnAbort(attempt(signal), signal);
    } catch (error) {
      last = toKeycloakError(what, error, timeoutMs);
      if (!last.retryable) throw last;
    }
    if (n < attempts) {
      const delay = baseDelayMs * 2 ** (n - 1) * (0.75 + Math.random() / 2);
      await sleep(Math.min(delay, Math.max(0, deadline - Date.now())));
    }
  }
  if (Date.now() >= deadline) throw new DeadlineError(what, deadlineMs, last ? last.message : "<no attempt finished>");
  throw new KeycloakError(`${last!.message} (gave up after ${attempts} attempts)`, { status: last!.status, code: last!.code });
}

function abandonOnAbort<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Names what failed and how — status, Keycloak's error code, socket code — and nothing of the request. */
function toKeycloakError(what: string, error: unknown, timeoutMs: number): KeycloakError {
  if (error instanceof KeycloakError) return error;
  if (error instanceof NetworkError) {
    const status = error.response.status;
    const detail = error.message && !/^(Network response was not OK|Unable to determine)/.test(error.message) ? ` (${clip(error.message)})` : "";
    return new KeycloakError(`${what}: HTTP ${status}${detail}`, { status });
  }
  const named = error as { name?: string; code?: string; message?: string; cause?: { code?: string; message?: string } };
  if (named?.name === "TimeoutError" || named?.name === "AbortError") {
    return new KeycloakError(`${what}: no answer within ${Math.round(timeoutMs / 100) / 10}s`, { code: "TIMEOUT" });
  }
  const code = named?.cause?.code ?? named?.code;
  if (code) return new KeycloakError(`${what}: connection failed (${clip(named.cause?.message ?? named.message ?? code)})`, { code });
  return new KeycloakError(`${what}: ${clip(named?.message ?? String(error))}`);
}

function clip(text: string): string {
  const line = text.replace(/\s+/g, " ").trim();
  return line.length > 200 ? `${line.slice(0, 200)}…` : line;
}

// Admin tokens live 60 s; a token with less than this left is replaced before the next call, so no
// call (with its retries) runs into an expiry.
const TOKEN_MIN_LIFE_MS = 15_000;

export class KeycloakAdmin {
  readonly domain: string;
  private readonly url: string;
  private readonly dispatcher: Agent;
  private readonly client: KcAdminClient;
  private readonly retry: RetryOptions;
  private readonly coordination: Coordination;
  private readonly lockTimeoutMs: number;
  private tokenValidUntil = 0;
  private login: Promise<void> | undefined;

  constructor(
    private readonly connection: KeycloakConnection,
    options: KeycloakAdminOptions,
  ) {
    const url = new URL(connection.url);
    if (url.protocol !== "http:" || url.pathname !== "/" || url.port !== "" || url.search !== "") {
      throw new Error(`Keycloak URL ${connection.url}: must be http://<domain>, the domain Keycloak is reached by through the proxy`);
    }
    this.domain = assertDomain(url.hostname, "keycloak domain");
    this.url = `http://${this.domain}`;
    this.dispatcher = proxyDispatcher(connection.proxyUrl);
    const requestTimeoutMs = options.requestTimeoutMs ?? REQUEST_TIMEOUT_MS;
    this.retry = { attempts: options.attempts, requestTimeoutMs, deadlineMs: options.callDeadlineMs ?? CALL_DEADLINE_MS };
    this.client = new KcAdminClient({
      baseUrl: this.url,
      realmName: "master",
      timeout: requestTimeoutMs,
      requestOptions: { dispatcher: this.dispatcher } as RequestInit,
    });
    this.coordination = coordinationAt(options.stateDir);
    this.lockTimeoutMs = options.lockTimeoutMs ?? 600_000;
  }

  /** Closes the proxy connections; the process may otherwise stay alive on idle keep-alive sockets. */
  async close(): Promise<void> {
    await this.dispatcher.close();
  }

  /** Realm, confidential client and test user in one import, so a run never sees half a realm. */
  async createRunRealm(spec: RunRealmSpec): Promise<void> {
    const realm = assertRunRealmName(spec.realm);
    const representation = {
      realm,
      enabled: true,
      attributes: spec.attributes,
      clients: [
        {
          clientId: spec.clientId,
          enabled: true,
          protocol: "openid-connect",
          publicClient: false,
          clientAuthenticatorType: "client-secret",
          secret: spec.clientSecret,
          standardFlowEnabled: true,
          directAccessGrantsEnabled: true,
          // Runs test with direct grants; no browser is ever sent back anywhere.
          redirectUris: [],
          webOrigins: ["+"],
        },
      ],
      users: [
        {
          username: spec.user.username,
          enabled: true,
          // Keycloak's user profile refuses logins of users without these ("account not fully set up").
          email: `${spec.user.username}@${realm}.test`,
          emailVerified: true,
          firstName: "Warmstack",
          lastName: "Test",
          credentials: [{ type: "password", value: spec.user.password, temporary: false }],
        },
      ],
    };
    const what = `create realm ${realm} on ${this.domain}`;
    // An attempt that timed out or got a 5xx may still commit on the server: a retry first looks
    // whether it did, and a retry that collides with it (409, or 400 "Database operation failed"
    // while the first transaction is open) waits to see it appear. The attributes include the
    // creation time, so a realm carrying exactly them is this call's own.
    const ours = (found: { attributes?: Record<string, unknown> } | undefined | null) =>
      !!found && Object.entries(spec.attributes).every(([key, value]) => found.attributes?.[key] === value);
    let attempts = 0;
    try {
      await this.write(what, async (client) => {
        attempts += 1;
        if (attempts > 1 && ours(await client.realms.findOne({ realm }))) return;
        await client.realms.create(representation);
      });
    } catch (error) {
      const collided = error instanceof KeycloakError && (error.status === 409 || (error.status === 400 && attempts > 1));
      if (!collided) throw error;
      const appeared = await waitUntil(
        `realm ${realm} from an earlier attempt to appear on ${this.domain}`,
        async () => {
          const found = await this.findRealm(realm);
          if (found === null) return attempts > 1 ? { done: false, state: "absent" } : { done: true, value: false };
          return { done: true, value: ours(found) };
        },
        { timeoutMs: this.retry.deadlineMs ?? CALL_DEADLINE_MS, intervalMs: 2000 },
      );
      if (!appeared) throw new RealmExistsError(realm, this.domain);
    }
  }

  /** "absent" when there was nothing to delete: for a delete, 404 is success. */
  async deleteRealm(name: string): Promise<"deleted" | "absent"> {
    const realm = assertRunRealmName(name);
    let attempts = 0;
    try {
      await this.write(`delete realm ${realm} on ${this.domain}`, async (client) => {
        attempts += 1;
        await client.realms.del({ realm });
      });
      return "deleted";
    } catch (error) {
      if (!(error instanceof KeycloakError)) throw error;
      if (error.status === 404) return attempts > 1 ? "deleted" : "absent";
      // A retry may collide with an earlier attempt that went on deleting on the server.
      if (attempts > 1 && !(await this.realmExists(realm))) return "deleted";
      throw error;
    }
  }

  /** Gives the run's client and test user new secrets, for a create that adopts its own realm. */
  async resetRunCredentials(name: string, credentials: { clientId: string; clientSecret: string; username: string; password: string }): Promise<void> {
    const realm = assertRunRealmName(name);
    await this.write(`reset the run credentials of realm ${realm} on ${this.domain}`, async (client) => {
      const [app] = await client.clients.find({ realm, clientId: credentials.clientId });
      if (!app?.id) throw new KeycloakError(`realm ${realm} on ${this.domain} has no client ${credentials.clientId}`);
      await client.clients.update({ realm, id: app.id }, { ...app, secret: credentials.clientSecret });
      const [user] = await client.users.find({ realm, username: credentials.username, exact: true });
      if (!user?.id) throw new KeycloakError(`realm ${realm} on ${this.domain} has no user ${credentials.username}`);
      await client.users.resetPassword({ realm, id: user.id, credential: { type: "password", value: credentials.password, temporary: false } });
    });
  }

  async listRealms(): Promise<RealmSummary[]> {
    const realms = await this.call(`list realms on ${this.domain}`, (client) => client.realms.find());
    return realms.map((realm) => ({ realm: realm.realm ?? "", attributes: stringAttributes(realm.attributes) }));
  }

  async findRealm(realm: string): Promise<RealmSummary | null> {
    try {
      const found = await this.call(`read realm ${realm} on ${this.domain}`, (client) => client.realms.findOne({ realm }));
      return found ? { realm: found.realm ?? realm, attributes: stringAttributes(found.attributes) } : null;
    } catch (error) {
      if (error instanceof KeycloakError && error.status === 404) return null;
      throw error;
    }
  }

  async realmExists(realm: string): Promise<boolean> {
    return (await this.findRealm(realm)) !== null;
  }

  /** Resource-owner password grant at the realm's token endpoint, by the Keycloak's own domain. */
  async passwordGrant(realm: string, clientId: string, clientSecret: string, username: string, password: string): Promise<TokenSet> {
    const body = new URLSearchParams({ grant_type: "password", client_id: clientId, client_secret: clientSecret, username, password, scope: "openid" });
    const tokens = (await this.fetchJson(`password grant for ${username} in realm ${realm} on ${this.domain}`, `/realms/${encodeURIComponent(realm)}/protocol/openid-connect/token`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: body.toString(),
    })) as Record<string, unknown>;
    if (typeof tokens.access_token !== "string") throw new KeycloakError(`password grant in realm ${realm} on ${this.domain}: the answer holds no access token`);
    return {
      accessToken: tokens.access_token,
      idToken: typeof tokens.id_token === "string" ? tokens.id_token : undefined,
      refreshToken: typeof tokens.refresh_token === "string" ? tokens.refresh_token : undefined,
      expiresIn: Number(tokens.expires_in),
      tokenType: String(tokens.token_type),
    };
  }

  /** The realm's OpenID discovery document, as a client on the Keycloak's domain sees it. */
  async discovery(realm: string): Promise<Discovery> {
    const what = `discovery document of realm ${realm} on ${this.domain}`;
    const doc = (await this.fetchJson(what, `/realms/${encodeURIComponent(realm)}/.well-known/openid-configuration`, { method: "GET" })) as Record<string, unknown>;
    const field = (key: string) => {
      if (typeof doc[key] !== "string") throw new KeycloakError(`${what}: no ${key}`);
      return doc[key] as string;
    };
    return {
      issuer: field("issuer"),
      tokenEndpoint: field("token_endpoint"),
      authorizationEndpoint: field("authorization_endpoint"),
      userinfoEndpoint: field("userinfo_endpoint"),
      jwksUri: field("jwks_uri"),
    };
  }

  /** The claims the realm's userinfo endpoint gives for an access token; a foreign token gets 401. */
  async userinfo(realm: string, accessToken: string): Promise<Record<string, unknown>> {
    return (await this.fetchJson(`userinfo in realm ${realm} on ${this.domain}`, `/realms/${encodeURIComponent(realm)}/protocol/openid-connect/userinfo`, {
      method: "GET",
      headers: { authorization: `Bearer ${accessToken}` },
    })) as Record<string, unknown>;
  }

  private async fetchJson(what: string, urlPath: string, init: { method: string; headers?: Record<string, string>; body?: string }): Promise<unknown> {
    return withRetries(
      what,
      async (signal) => {
        const response = await fetch(`${this.url}${urlPath}`, { ...init, signal, dispatcher: this.dispatcher } as RequestInit);
        const text = await response.text();
        if (!response.ok) throw new KeycloakError(`${what}: HTTP ${response.status}${oauthError(text)}`, { status: response.status });
        try {
          return JSON.parse(text) as unknown;
        } catch {
          throw new KeycloakError(`${what}: the answer is not JSON (content-type ${response.headers.get("content-type") ?? "none"})`);
        }
      },
      this.retry,
    );
  }

  private call<T>(what: string, operation: (client: KcAdminClient) => Promise<T>): Promise<T> {
    return withRetries(
      what,
      async () => {
        await this.ensureToken(what);
        return operation(this.client);
      },
      this.retry,
    );
  }

  private write<T>(what: string, operation: (client: KcAdminClient) => Promise<T>): Promise<T> {
    return this.coordination.withLock(`keycloak-${this.domain}`, { what: `the Keycloak write lock of ${this.domain}`, timeoutMs: this.lockTimeoutMs }, () => this.call(what, operation));
  }

  /** One login shared by concurrent calls; a new one only when the token is about to expire. */
  private async ensureToken(what: string): Promise<void> {
    if (this.tokenValidUntil - Date.now() > TOKEN_MIN_LIFE_MS) return;
    this.login ??= this.client
      .auth({ grantType: "password", clientId: "admin-cli", username: this.connection.adminUser, password: this.connection.adminPassword })
      .then(() => {
        this.tokenValidUntil = tokenExpiry(this.client.accessToken);
      })
      .finally(() => {
        this.login = undefined;
      });
    try {
      await this.login;
    } catch (error) {
      const failed = toKeycloakError(`admin login as ${this.connection.adminUser}`, error, this.retry.requestTimeoutMs ?? 0);
      throw new KeycloakError(`${what}: ${failed.message}`, { status: failed.status, code: failed.code });
    }
  }
}

/** The token's exp in ms; 0 (renew before every call) when it carries none. */
function tokenExpiry(token: string | undefined): number {
  try {
    const payload = JSON.parse(Buffer.from(token?.split(".")[1] ?? "", "base64url").toString("utf8")) as { exp?: unknown };
    return typeof payload.exp === "number" ? payload.exp * 1000 : 0;
  } catch {
    return 0;
  }
}

function stringAttributes(attributes: Record<string, unknown> | undefined): Record<string, string> {
  return Object.fromEntries(Object.entries(attributes ?? {}).filter((entry): entry is [string, string] => typeof entry[1] === "string"));
}

/** OAuth errors are codes and fixed sentences (invalid_grant, "Invalid user credentials"), never the request. */
function oauthError(text: string): string {
  try {
    const body = JSON.parse(text) as { error?: unknown; error_description?: unknown };
    const parts = [body.error, body.error_description].filter((part): part is string => typeof part === "string");
    return parts.length > 0 ? ` (${clip(parts.join(": "))})` : "";
  } catch {
    return "";
  }
}
