import * as pulumi from "@pulumi/pulumi";
import { randomBytes } from "node:crypto";
import * as path from "node:path";
import { KeycloakAdmin } from "./adapters/keycloak";
import { readSecretFile } from "./adapters/secret-files";
import { assertDomain, assertRunId, assertRecipeName, assertRunRealmName, parseRunStackName, runRealmName } from "./naming";
import { inputChecker, lazyProvider, ResourceArgs, TypedResource } from "./provider-support";

/**
 * RunRealm: one CI run's realm `<recipe>-<runId>` on the shared live-warm Keycloak, with a
 * confidential OIDC client and a test user, created in one call and proven usable (a password grant
 * and a matching issuer) before the create returns. The realm's attributes name the owning run stack
 * and its creation time, so the reaper can judge it and a re-run after a crash can adopt it.
 * The Keycloak admin credentials never pass through Pulumi: the provider reads them from its
 * environment (see adminConnection).
 */
export interface RunRealmInputs {
  recipe: string;
  /** The run's id, the last part of its stack's name; the realm is `<recipe>-<runId>`. */
  runId: string;
  /** The run stack that owns the realm, recorded in the realm's attributes. */
  stack: string;
  /** The Keycloak's domain; every client of the realm calls it by this name (the issuer depends on it). */
  keycloakDomain: string;
  /** The proxy's web entrypoint on loopback, through which Keycloak is called. */
  proxyUrl: string;
  /** The state directory that holds the cross-process Keycloak write lock. */
  stateDir: string;
  /**
   * Only for a cold Keycloak this run deployed itself (the cold fallback): its admin password was
   * generated in this stack and lives only in its encrypted state. Default: the shared Keycloak's
   * credentials, which always come from the environment.
   */
  coldAdminPassword?: string;
}

export type RunRealmArgs = ResourceArgs<RunRealmInputs>;

interface RunRealmOutputs extends RunRealmInputs {
  realm: string;
  issuer: string;
  tokenEndpoint: string;
  clientId: string;
  clientSecret: string;
  testUser: string;
  testUserPassword: string;
  createdAt: string;
}

/** Realm attributes the reaper and an adopting create judge a realm by. */
export const STACK_ATTRIBUTE = "warmstack.stack";
export const CREATED_AT_ATTRIBUTE = "warmstack.createdAt";

const TEST_USER = "warmstack-test";

const runRealmProvider = lazyProvider<typeof import("./run-realm"), "RunRealm">("run-realm", "RunRealm");

export class RunRealm extends TypedResource {
  declare public readonly realm: pulumi.Output<string>;
  declare public readonly issuer: pulumi.Output<string>;
  declare public readonly tokenEndpoint: pulumi.Output<string>;
  declare public readonly clientId: pulumi.Output<string>;
  declare public readonly clientSecret: pulumi.Output<string>;
  declare public readonly testUser: pulumi.Output<string>;
  declare public readonly testUserPassword: pulumi.Output<string>;
  declare public readonly createdAt: pulumi.Output<string>;

  constructor(name: string, args: RunRealmArgs, opts?: pulumi.CustomResourceOptions) {
    const outputs = ["realm", "issuer", "tokenEndpoint", "clientId", "clientSecret", "testUser", "testUserPassword", "createdAt"] satisfies (keyof RunRealmOutputs)[];
    super(runRealmProvider, "RunRealm", name, args, { outputs, secretOutputs: ["clientSecret", "testUserPassword", "coldAdminPassword"] }, opts);
  }
}

/**
 * What a run stack exports of its realm for the recipe's tests; the client secret and the test
 * user's password stay secret outputs, which the runner hands to the tests only in their environment.
 */
export function realmOutputs(realm: RunRealm) {
  return {
    realm: realm.realm,
    issuer: realm.issuer,
    tokenEndpoint: realm.tokenEndpoint,
    clientId: realm.clientId,
    clientSecret: realm.clientSecret,
    testUser: realm.testUser,
    testUserPassword: realm.testUserPassword,
  };
}

// The steps below run in the dynamic-provider process.

export async function checkRunRealm(news: RunRealmInputs): Promise<pulumi.dynamic.CheckResult> {
  const { check, failures } = inputChecker();
  check("recipe", () => assertRecipeName(news.recipe));
  check("runId", () => assertRunId(news.runId));
  check("stack", () => {
    if (parseRunStackName(news.stack) === null) throw new Error(`stack: ${JSON.stringify(news.stack)} is not a run stack name (run-<recipe>-<6 lowercase hex digits>)`);
  });
  check("keycloakDomain", () => assertDomain(news.keycloakDomain, "keycloakDomain"));
  check("proxyUrl", () => {
    const url = URL.canParse(String(news.proxyUrl)) ? new URL(news.proxyUrl) : null;
    if (url?.protocol !== "http:" || !/^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|localhost)$/.test(url.hostname)) {
      throw new Error(`proxyUrl: ${JSON.stringify(news.proxyUrl)} must be an http URL on loopback`);
    }
  });
  check("stateDir", () => {
    if (typeof news.stateDir !== "string" || !path.isAbsolute(news.stateDir)) throw new Error(`stateDir: ${JSON.stringify(news.stateDir)} must be an absolute path`);
  });
  if (failures.length === 0) check("recipe", () => assertRunRealmName(runRealmName(news.recipe, news.runId)));
  return { inputs: news, failures };
}

/** Another realm name, owner or Keycloak is another realm; where the proxy or lock live is not. */
export function diffRunRealm(olds: RunRealmOutputs, news: RunRealmInputs): pulumi.dynamic.DiffResult {
  const replaces = (["recipe", "runId", "stack", "keycloakDomain"] as const).filter((key) => olds[key] !== news[key]);
  const changed = olds.proxyUrl !== news.proxyUrl || olds.stateDir !== news.stateDir;
  // The realm name is the same for old and new: delete the old one first.
  return { changes: replaces.length > 0 || changed, replaces, deleteBeforeReplace: true };
}

export function updateRunRealm(olds: RunRealmOutputs, news: RunRealmInputs): pulumi.dynamic.UpdateResult {
  return { outs: { ...olds, proxyUrl: news.proxyUrl, stateDir: news.stateDir } };
}

/**
 * The admin credentials, from the environment of the process running the provider (the runner or
 * `pulumi`): WARMSTACK_KEYCLOAK_ADMIN_USER (default admin) and WARMSTACK_KEYCLOAK_ADMIN_PASSWORD or
 * a file named by WARMSTACK_KEYCLOAK_ADMIN_PASSWORD_FILE.
 */
export async function adminConnection(
  inputs: Pick<RunRealmInputs, "keycloakDomain" | "proxyUrl" | "stateDir" | "coldAdminPassword">,
  /** The runner's in-process callers (the reaper) hand over the warm stack's own; providers read the environment. */
  givenPassword?: string,
): Promise<KeycloakAdmin> {
  const env = process.env;
  let adminPassword = inputs.coldAdminPassword ?? givenPassword ?? env.WARMSTACK_KEYCLOAK_ADMIN_PASSWORD;
  const passwordFile = env.WARMSTACK_KEYCLOAK_ADMIN_PASSWORD_FILE;
  if (!adminPassword && passwordFile) adminPassword = await readSecretFile(passwordFile, "WARMSTACK_KEYCLOAK_ADMIN_PASSWORD_FILE");
  if (!adminPassword) {
    throw new Error(
      `no Keycloak admin password for ${inputs.keycloakDomain}: set WARMSTACK_KEYCLOAK_ADMIN_PASSWORD_FILE (a file holding it) or WARMSTACK_KEYCLOAK_ADMIN_PASSWORD in the environment of the runner or pulumi`,
    );
  }
  return new KeycloakAdmin(
    { url: `http://${inputs.keycloakDomain}`, proxyUrl: inputs.proxyUrl, adminUser: env.WARMSTACK_KEYCLOAK_ADMIN_USER || "admin", adminPassword },
    { stateDir: inputs.stateDir },
  );
}

function newSecret(bytes: number): string {
  return randomBytes(bytes).toString("base64url");
}

export async function createRunRealm(inputs: RunRealmInputs): Promise<pulumi.dynamic.CreateResult> {
  const realm = assertRunRealmName(runRealmName(inputs.recipe, inputs.runId));
  const clientId = inputs.recipe;
  const clientSecret = newSecret(24);
  const testUserPassword = newSecret(18);
  const keycloak = await adminConnection(inputs);
  try {
    const existing = await keycloak.findRealm(realm);
    let createdAt: string;
    if (existing === null) {
      createdAt = new Date().toISOString();
      await keycloak.createRunRealm({
        realm,
        clientId,
        clientSecret,
        user: { username: TEST_USER, password: testUserPassword },
        attributes: { [STACK_ATTRIBUTE]: inputs.stack, [CREATED_AT_ATTRIBUTE]: createdAt },
      });
    } else if (existing.attributes[STACK_ATTRIBUTE] === inputs.stack) {
      // A create this stack lost track of (a killed run whose provider finished unobserved): adopt
      // it, with new secrets, since the old ones were never recorded anywhere.
      createdAt = existing.attributes[CREATED_AT_ATTRIBUTE] ?? new Date().toISOString();
      await keycloak.resetRunCredentials(realm, { clientId, clientSecret, username: TEST_USER, password: testUserPassword });
    } else {
      const owner = existing.attributes[STACK_ATTRIBUTE];
      throw new Error(
        `realm ${realm} already exists on ${inputs.keycloakDomain} and is not stack ${inputs.stack}'s (${owner ? `it belongs to ${owner}` : "it carries no warmstack owner"}); refusing to adopt it`,
      );
    }
    const { issuer, tokenEndpoint } = await verifyOrDelete(keycloak, realm, inputs, clientId, clientSecret, testUserPassword);
    const outs: RunRealmOutputs = { ...inputs, realm, issuer, tokenEndpoint, clientId, clientSecret, testUser: TEST_USER, testUserPassword, createdAt };
    return { id: `${inputs.keycloakDomain}/${realm}`, outs };
  } finally {
    await keycloak.close();
  }
}

/** A realm a run cannot use is deleted at once: a failed create must leave nothing behind. */
async function verifyOrDelete(keycloak: KeycloakAdmin, realm: string, inputs: RunRealmInputs, clientId: string, clientSecret: string, password: string) {
  try {
    const expectedIssuer = `http://${inputs.keycloakDomain}/realms/${realm}`;
    const discovery = await keycloak.discovery(realm);
    if (discovery.issuer !== expectedIssuer) {
      throw new Error(`its discovery document names the issuer ${discovery.issuer}, not ${expectedIssuer}`);
    }
    const tokens = await keycloak.passwordGrant(realm, clientId, clientSecret, TEST_USER, password);
    const claims = await keycloak.userinfo(realm, tokens.accessToken);
    if (claims.preferred_username !== TEST_USER) throw new Error(`its userinfo names ${String(claims.preferred_username)}, not ${TEST_USER}`);
    return discovery;
  } catch (error) {
    const reason = (error as Error).message;
    try {
      await keycloak.deleteRealm(realm);
    } catch (deleteError) {
      throw new Error(`realm ${realm} failed verification (${reason}) and deleting it failed too (${(deleteError as Error).message}); warmstack reap removes it`);
    }
    throw new Error(`realm ${realm} failed verification and was deleted: ${reason}`);
  }
}

export async function deleteRunRealm(props: RunRealmOutputs): Promise<void> {
  const realm = assertRunRealmName(props.realm);
  const keycloak = await adminConnection(props);
  try {
    await keycloak.deleteRealm(realm);
  } finally {
    await keycloak.close();
  }
}
