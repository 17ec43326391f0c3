import * as pulumi from "@pulumi/pulumi";
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import * as path from "node:path";
import { KeycloakAdmin } from "./adapters/keycloak";
import { assertDomain, assertHex6, assertRecipeName, assertRunRealmName, parseRunStackName, runRealmName } from "./naming";
import { inputChecker } from "./provider-support";

/**
 * RunRealm: one CI run's realm `<recipe>-<hex6>` on the shared live-warm Keycloak, with a
 * confidential OIDC client and a test user, created in one call and proven usable (a password grant
 * and a matching issuer) before the create returns. The realm's attributes name the owning run stack
 * and its creation time, so the reaper can judge it and a re-run after a crash can adopt it.
 * The Keycloak admin credentials never pass through Pulumi: the provider reads them from its
 * environment (see adminConnection).
 */
export interface RunRealmArgs {
  recipe: pulumi.Input<string>;
  hex: pulumi.Input<string>;
  /** The run stack that owns the realm, recorded in the realm's attributes. */
  stack: pulumi.Input<string>;
  /** The shared Keycloak's domain; every client of the realm calls it by this name. */
  keycloakDomain: pulumi.Input<string>;
  /** The proxy's web entrypoint on loopback, through which Keycloak is called. */
  proxyUrl: pulumi.Input<string>;
  /** The state directory that holds the cross-process Keycloak write lock. */
  stateDir: pulumi.Input<string>;
  /** The app under test's domain, allowed as the client's redirect target; without it only direct grants work. */
  appDomain?: pulumi.Input<string>;
  /**
   * Only for a cold Keycloak this run deployed itself (the cold fallback): its admin password was
   * generated in this stack and lives only in its encrypted state. The shared Keycloak's
   * credentials always come from the environment.
   */
  coldAdminPassword?: pulumi.Input<string>;
}

interface RunRealmInputs {
  recipe: string;
  hex: string;
  stack: string;
  keycloakDomain: string;
  proxyUrl: string;
  stateDir: string;
  appDomain?: string;
  coldAdminPassword?: string;
}

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

// The provider's code is stored in state and used again for deletes, possibly by a later version
// of warmstack: the closures only load this module at run time and call its named steps.
function steps(): typeof import("./run-realm") {
  const path = require("node:path");
  // The provider process runs in the directory of the program's main: dist/stacks with
  // Pulumi.yaml's main, the project root for an inline program whose main is the project.
  const besideStacks = path.resolve("../infra/run-realm.js");
  return require(require("node:fs").existsSync(besideStacks) ? besideStacks : path.resolve("dist/infra/run-realm.js"));
}

const runRealmProvider: pulumi.dynamic.ResourceProvider = {
  check: async (_olds: RunRealmInputs, news: RunRealmInputs) => steps().checkRunRealm(news),
  diff: async (_id: string, olds: RunRealmOutputs, news: RunRealmInputs) => steps().diffRunRealm(olds, news),
  create: async (inputs: RunRealmInputs) => steps().createRunRealm(inputs),
  update: async (_id: string, olds: RunRealmOutputs, news: RunRealmInputs) => steps().updateRunRealm(olds, news),
  delete: async (_id: string, props: RunRealmOutputs) => steps().deleteRunRealm(props),
};

export class RunRealm extends pulumi.dynamic.Resource {
  declare public readonly realm: pulumi.Output<string>;
  declare public readonly issuer: pulumi.Output<string>;
  declare public readonly tokenEndpoint: pulumi.Output<string>;
  declare public readonly clientId: pulumi.Output<string>;
  declare public readonly clientSecret: pulumi.Output<string>;
  declare public readonly testUser: pulumi.Output<string>;
  declare public readonly testUserPassword: pulumi.Output<string>;
  declare public readonly createdAt: pulumi.Output<string>;

  constructor(name: string, args: RunRealmArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      runRealmProvider,
      name,
      {
        ...args,
        realm: undefined,
        issuer: undefined,
        tokenEndpoint: undefined,
        clientId: undefined,
        clientSecret: undefined,
        testUser: undefined,
        testUserPassword: undefined,
        createdAt: undefined,
      },
      { ...opts, additionalSecretOutputs: ["clientSecret", "testUserPassword", "coldAdminPassword"] },
    );
  }
}

// The steps below run in the dynamic-provider process.

export async function checkRunRealm(news: RunRealmInputs): Promise<pulumi.dynamic.CheckResult> {
  const { check, failures } = inputChecker();
  check("recipe", () => assertRecipeName(news.recipe));
  check("hex", () => assertHex6(news.hex));
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
  if (news.appDomain !== undefined) check("appDomain", () => assertDomain(news.appDomain, "appDomain"));
  if (failures.length === 0) check("recipe", () => assertRunRealmName(runRealmName(news.recipe, news.hex)));
  return { inputs: news, failures };
}

/** Another realm name, owner or Keycloak is another realm; where the proxy or lock live is not. */
export function diffRunRealm(olds: RunRealmOutputs, news: RunRealmInputs): pulumi.dynamic.DiffResult {
  const replaces = (["recipe", "hex", "stack", "keycloakDomain", "appDomain"] as const).filter((key) => olds[key] !== news[key]);
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
): Promise<KeycloakAdmin> {
  const env = process.env;
  let adminPassword = inputs.coldAdminPassword ?? env.WARMSTACK_KEYCLOAK_ADMIN_PASSWORD;
  const passwordFile = env.WARMSTACK_KEYCLOAK_ADMIN_PASSWORD_FILE;
  if (!adminPassword && passwordFile) {
    try {
      adminPassword = (await readFile(passwordFile, "utf8")).trim();
    } catch (error) {
      throw new Error(`WARMSTACK_KEYCLOAK_ADMIN_PASSWORD_FILE=${passwordFile}: cannot read it (${(error as NodeJS.ErrnoException).code ?? "error"})`);
    }
  }
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
  const realm = assertRunRealmName(runRealmName(inputs.recipe, inputs.hex));
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
        redirectUris: inputs.appDomain ? [`https://${inputs.appDomain}/*`, `http://${inputs.appDomain}/*`] : [],
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
  const realm = assertRunRealmName(props.realm ?? runRealmName(props.recipe, props.hex));
  const keycloak = await adminConnection(props);
  try {
    await keycloak.deleteRealm(realm);
  } finally {
    await keycloak.close();
  }
}
