// A run's realm on the shared Keycloak against the raw admin REST sequence, side by side in one run
// on the bed, alternating, with 0 (and, unless --smoke, 10, 50 and 100) other realms present:
// - RunRealm's own steps in this process (look up, import realm + client + user, discovery, password
//   grant, userinfo, delete; the cross-process write lock around each write);
// - the floor: admin token, POST of the same realm representation, password grant, DELETE, by fetch.
//   npm run bench:realms -- [--rounds N] [--present 0,10,50,100] [--smoke] [--json FILE]
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import { fetch, type Dispatcher } from "undici";
import { proxyDispatcher } from "../infra/adapters/proxy-dispatcher";
import { createRunRealm, deleteRunRealm } from "../infra/run-realm";
import { bed, proxyUrl } from "../test/support/bed";
import { sharedKeycloak, SharedKeycloak } from "../test/support/shared-keycloak";
import { booleanFlag, Comparison, numberFlag, report, stringFlag, timed } from "./support";

const RECIPE = "benchrealm";
const FILLER_PREFIX = "benchfill";

function presentFlag(smoke: boolean): number[] {
  if (smoke) return [0];
  const counts = (stringFlag("--present") ?? "0,10,50,100").split(",").map(Number);
  if (counts.some((count) => !Number.isInteger(count) || count < 0 || count > 1000)) throw new Error("--present: whole numbers of realms from 0 to 1000, comma-separated");
  return counts;
}

/** The bare admin REST calls, by the Keycloak's own domain through the proxy (the issuer depends on it). */
class RawKeycloak {
  private readonly dispatcher: Dispatcher = proxyDispatcher(proxyUrl());
  constructor(private readonly keycloak: SharedKeycloak) {}

  private async call(what: string, pathname: string, init: { method: string; headers?: Record<string, string>; body?: string }): Promise<unknown> {
    const response = await fetch(`http://${this.keycloak.domain}${pathname}`, { ...init, dispatcher: this.dispatcher, signal: AbortSignal.timeout(60_000) });
    const text = await response.text();
    if (!response.ok) throw new Error(`${what}: HTTP ${response.status} ${text.slice(0, 300)}`);
    return text ? (JSON.parse(text) as unknown) : undefined;
  }

  async adminToken(): Promise<string> {
    const body = new URLSearchParams({ grant_type: "password", client_id: "admin-cli", username: this.keycloak.adminUser, password: this.keycloak.adminPassword });
    const tokens = (await this.call("admin token", "/realms/master/protocol/openid-connect/token", { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: body.toString() })) as { access_token: string };
    return tokens.access_token;
  }

  async createRealm(token: string, realm: string, secret: string, password: string): Promise<void> {
    const representation = {
      realm,
      enabled: true,
      clients: [{ clientId: RECIPE, enabled: true, protocol: "openid-connect", publicClient: false, clientAuthenticatorType: "client-secret", secret, standardFlowEnabled: true, directAccessGrantsEnabled: true, redirectUris: [], webOrigins: ["+"] }],
      users: [{ username: "tester", enabled: true, email: `tester@${realm}.test`, emailVerified: true, firstName: "Bench", lastName: "Floor", credentials: [{ type: "password", value: password, temporary: false }] }],
    };
    await this.call(`create realm ${realm}`, "/admin/realms", { method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: JSON.stringify(representation) });
  }

  async passwordGrant(realm: string, secret: string, password: string): Promise<void> {
    const body = new URLSearchParams({ grant_type: "password", client_id: RECIPE, client_secret: secret, username: "tester", password, scope: "openid" });
    await this.call(`password grant in ${realm}`, `/realms/${realm}/protocol/openid-connect/token`, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: body.toString() });
  }

  async deleteRealm(token: string, realm: string): Promise<void> {
    await this.call(`delete realm ${realm}`, `/admin/realms/${realm}`, { method: "DELETE", headers: { authorization: `Bearer ${token}` } });
  }

  async realmNames(token: string): Promise<string[]> {
    return ((await this.call("list realms", "/admin/realms?briefRepresentation=true", { method: "GET", headers: { authorization: `Bearer ${token}` } })) as { realm: string }[]).map((entry) => entry.realm);
  }

  close(): Promise<void> {
    return this.dispatcher.close();
  }
}

async function rawSequence(raw: RawKeycloak): Promise<void> {
  const realm = `${FILLER_PREFIX}-floor-${randomBytes(3).toString("hex")}`;
  const secret = randomBytes(24).toString("base64url");
  const password = randomBytes(18).toString("base64url");
  const token = await raw.adminToken();
  await raw.createRealm(token, realm, secret, password);
  await raw.passwordGrant(realm, secret, password);
  await raw.deleteRealm(token, realm);
}

async function runRealmSteps(keycloak: SharedKeycloak, stateDir: string): Promise<void> {
  const runId = randomBytes(3).toString("hex");
  const inputs = { recipe: RECIPE, runId, stack: `run-${RECIPE}-${runId}`, keycloakDomain: keycloak.domain, proxyUrl: proxyUrl(), stateDir };
  const created = await createRunRealm(inputs);
  await deleteRunRealm(created.outs as Parameters<typeof deleteRunRealm>[0]);
}

/** Fills the Keycloak up to `count` bench filler realms (created, or deleted down to the count); a killed bench's floor realms go. */
async function fillTo(raw: RawKeycloak, count: number): Promise<void> {
  const token = await raw.adminToken();
  const names = await raw.realmNames(token);
  const fillers = names.filter((name) => name.startsWith(`${FILLER_PREFIX}-n`));
  const stale = names.filter((name) => name.startsWith(`${FILLER_PREFIX}-floor-`));
  for (const extra of [...stale, ...fillers.slice(count)]) await raw.deleteRealm(token, extra);
  for (let index = fillers.length; index < count; index += 1) {
    await raw.createRealm(await raw.adminToken(), `${FILLER_PREFIX}-n${randomBytes(4).toString("hex")}`, randomBytes(24).toString("base64url"), randomBytes(18).toString("base64url"));
  }
}

async function main(): Promise<void> {
  const smoke = booleanFlag("--smoke");
  const rounds = smoke ? 1 : numberFlag("--rounds", 5, 50);
  bed();
  const keycloak = await sharedKeycloak();
  process.env.WARMSTACK_KEYCLOAK_ADMIN_PASSWORD = keycloak.adminPassword;
  const stateDir = await mkdtemp(path.join(os.tmpdir(), "warmstack-bench-realms-"));
  const raw = new RawKeycloak(keycloak);
  const comparisons: Comparison[] = [];
  try {
    for (const present of presentFlag(smoke)) {
      console.error(`[bench] realms: ${present} other realm(s) present`);
      await fillTo(raw, present);
      const comparison: Comparison = { what: `realm create + verify + delete, ${present} other realms`, samples: [], floorSamples: [], floor: "raw REST: token, POST, grant, DELETE", goal: 1.5 };
      for (let round = 0; round < rounds; round += 1) {
        comparison.floorSamples.push(await timed(() => rawSequence(raw)));
        comparison.samples.push(await timed(() => runRealmSteps(keycloak, stateDir)));
      }
      comparisons.push(comparison);
    }
    await report(`a run's realm against the raw admin REST sequence (${rounds} round(s), alternating)`, comparisons);
  } finally {
    await fillTo(raw, 0).catch((error: unknown) => console.error(`[bench] filler realms left: ${String(error)}`));
    await raw.close();
    await rm(stateDir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : String(error));
  process.exitCode = 1;
});
