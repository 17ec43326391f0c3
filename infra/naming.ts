// Every name that reaches a shell, a path, a domain, a Swarm object or a Keycloak realm is built and
// checked here, so a hostile or sloppy value (a PR-controlled recipe name, a typo in config) is refused
// before it can become `../`, a shell word, or the Keycloak `master` realm.
import { z } from "zod";

export class NameError extends Error {
  readonly field: string;
  readonly value: unknown;

  constructor(field: string, value: unknown, problem: string) {
    super(`${field}: ${describe(value)} ${problem}`);
    this.name = "NameError";
    this.field = field;
    this.value = value;
  }
}

// Values may be long or carry control characters; keep the message one readable line.
function describe(value: unknown): string {
  if (typeof value !== "string") return `(a ${value === null ? "null" : typeof value})`;
  const shown = value.length > 80 ? `${value.slice(0, 80)}…` : value;
  return JSON.stringify(shown);
}

interface Rule {
  test(value: string): boolean;
  /** Completes "<field>: "<value>" …". */
  problem: string;
}

// One predicate feeds both the zod schema and the assert function, so config validation and code
// paths can never disagree about what a valid name is.
function schemaOf(rule: Rule) {
  return z.string().refine((v) => rule.test(v), { error: rule.problem });
}

function check(rule: Rule, value: unknown, field: string): string {
  if (typeof value !== "string" || !rule.test(value)) throw new NameError(field, value, rule.problem);
  return value;
}

const RECIPE_SOURCE = "[a-z][a-z0-9]*(?:-[a-z0-9]+)*";
const RECIPE_MAX = 32;
const RECIPE_PATTERN = new RegExp(`^${RECIPE_SOURCE}$`);
const LABEL_PATTERN = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const DOMAIN_MAX = 253;
const RUN_ID_PATTERN = /^[0-9a-f]{6}$/;
const RUN_STACK_PATTERN = new RegExp(`^run-(${RECIPE_SOURCE})-([0-9a-f]{6})$`);
const RUN_REALM_PATTERN = new RegExp(`^(${RECIPE_SOURCE})-[0-9a-f]{6}$`);
// Swarm stack names as Co-op Cloud derives them from domains (dots become underscores).
const STACK_PATTERN = /^[a-z0-9](?:[a-z0-9_-]*[a-z0-9])?$/;
const SECRET_PATTERN = /^[a-z][a-z0-9_]{0,31}$/;
const SECRET_VERSION_PATTERN = /^v[0-9]+$/;
const VOLUME_PATTERN = /^[a-z0-9][a-z0-9_.-]*$/;

// Swarm refuses config and secret names over 64 characters.
const SWARM_NAME_MAX = 64;
// A stack name must leave room for `_<secret>_<version>` inside those 64 characters.
const STACK_MAX = 50;
// Docker keeps each volume in a directory named after it; 255 is the file-name limit.
const VOLUME_NAME_MAX = 255;

function isLabels(value: string, minLabels: number): boolean {
  if (value.length > DOMAIN_MAX) return false;
  const labels = value.split(".");
  return labels.length >= minLabels && labels.every((l) => LABEL_PATTERN.test(l));
}

const recipeRule: Rule = {
  test: (v) => v.length <= RECIPE_MAX && RECIPE_PATTERN.test(v),
  problem:
    "is not a valid recipe name (lowercase letters, digits and single hyphens, 1–32 chars, starting with a letter)",
};

const domainRule: Rule = {
  test: (v) => isLabels(v, 2),
  problem:
    "is not a valid domain (lowercase DNS name with at least two labels of letters, digits and inner hyphens, no trailing dot, at most 253 chars)",
};

const serverNameRule: Rule = {
  test: (v) => isLabels(v, 1),
  problem:
    "is not a valid server name (a lowercase DNS label such as `default`, or a lowercase domain, no trailing dot)",
};

// A swarm node's hostname as `docker node ls` shows it; it reaches placement constraints and argv.
const NODE_NAME_PATTERN = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

const nodeNameRule: Rule = {
  test: (v) => v.length <= DOMAIN_MAX && NODE_NAME_PATTERN.test(v),
  problem: "is not a swarm node hostname (letters, digits, inner hyphens and dots, at most 253 chars)",
};

const runIdRule: Rule = {
  test: (v) => RUN_ID_PATTERN.test(v),
  problem: "is not a run id (exactly 6 lowercase hex digits)",
};

const runStackRule: Rule = {
  test: (v) => parseRunStackName(v) !== null,
  problem: "is not a run stack name (run-<recipe>-<6 lowercase hex digits>)",
};

const stackRule: Rule = {
  test: (v) => v.length <= STACK_MAX && STACK_PATTERN.test(v),
  problem: `is not a valid stack name (lowercase letters, digits, '_' and '-', at most ${STACK_MAX} chars)`,
};

const secretRule: Rule = {
  test: (v) => SECRET_PATTERN.test(v),
  problem: "is not a valid secret name (lowercase letter, then lowercase letters, digits or '_', 1–32 chars)",
};

const secretVersionRule: Rule = {
  test: (v) => SECRET_VERSION_PATTERN.test(v),
  problem: "is not a valid secret version (v followed by digits, e.g. v1)",
};

const volumeRule: Rule = {
  test: (v) => VOLUME_PATTERN.test(v),
  problem: "is not a valid volume name (lowercase letters, digits, '_', '.' and '-', starting with a letter or digit)",
};

export const recipeNameSchema = schemaOf(recipeRule);
export const domainSchema = schemaOf(domainRule);
export const serverNameSchema = schemaOf(serverNameRule);
export const runIdSchema = schemaOf(runIdRule);
export const nodeNameSchema = schemaOf(nodeNameRule);
export const runStackNameSchema = schemaOf(runStackRule);

export function assertRecipeName(value: unknown, field = "recipe"): string {
  return check(recipeRule, value, field);
}

export function assertDomain(value: unknown, field = "domain"): string {
  return check(domainRule, value, field);
}

export function assertServerName(value: unknown, field = "server"): string {
  return check(serverNameRule, value, field);
}

export function assertNodeName(value: unknown, field = "node"): string {
  return check(nodeNameRule, value, field);
}

export function assertRunId(value: unknown, field = "runId"): string {
  return check(runIdRule, value, field);
}

export function assertStackName(value: unknown, field = "stack"): string {
  return check(stackRule, value, field);
}

export function runStackName(recipe: string, runId: string): string {
  return `run-${assertRecipeName(recipe)}-${assertRunId(runId)}`;
}

/** Null for anything that is not a run stack, so the reaper can never mistake `warm` for one. */
export function parseRunStackName(name: string): { recipe: string; runId: string } | null {
  if (typeof name !== "string") return null;
  // The recipe may itself contain hyphens and hex-like parts: the run id is always the last 6 chars.
  const m = RUN_STACK_PATTERN.exec(name);
  if (m === null || m[1].length > RECIPE_MAX) return null;
  return { recipe: m[1], runId: m[2] };
}

/** Co-op Cloud's stack name for an app: its domain with `.` → `_`. */
export function stackNameForDomain(domain: string): string {
  const stack = assertDomain(domain).replace(/\./g, "_");
  if (stack.length > STACK_MAX) {
    throw new NameError(
      "domain",
      domain,
      `gives a stack name of ${stack.length} chars, over ${STACK_MAX}: Swarm caps <stack>_<secret>_<version> names at ${SWARM_NAME_MAX}`,
    );
  }
  return stack;
}

/** Per-run domain `<recipe[:4]>-<runId>.<base>`, short so derived Swarm names stay under their cap. */
export function runDomain(recipe: string, runId: string, baseDomain: string): string {
  // A recipe like `ab-cd` would give `ab-` and so `ab--<runId>`; drop the dangling hyphen.
  const prefix = assertRecipeName(recipe).slice(0, 4).replace(/-+$/, "");
  return assertDomain(`${prefix}-${assertRunId(runId)}.${assertDomain(baseDomain, "baseDomain")}`);
}

export function canonicalDomain(recipe: string, baseDomain: string): string {
  return assertDomain(`warm-${assertRecipeName(recipe)}.${assertDomain(baseDomain, "baseDomain")}`);
}

export function runRealmName(recipe: string, runId: string): string {
  return `${assertRecipeName(recipe)}-${assertRunId(runId)}`;
}

/**
 * Guards every realm write and delete: only names a run could have created pass, and `master` (the
 * realm that holds Keycloak's own admin) is named explicitly so the refusal is unmistakable.
 */
export function assertRunRealmName(name: unknown, field = "realm"): string {
  if (name === "master") {
    throw new NameError(field, name, "is Keycloak's admin realm and is never a run realm");
  }
  if (typeof name === "string") {
    const m = RUN_REALM_PATTERN.exec(name);
    if (m !== null && m[1].length <= RECIPE_MAX) return name;
  }
  throw new NameError(field, name, "is not a run realm name (<recipe>-<6 lowercase hex digits>)");
}

/** Swarm secret name `<stack>_<secret>_<version>`, as Co-op Cloud names them. */
export function secretName(stack: string, secret: string, version: string): string {
  const name = `${assertStackName(stack)}_${check(secretRule, secret, "secret")}_${check(
    secretVersionRule,
    version,
    "secretVersion",
  )}`;
  if (name.length > SWARM_NAME_MAX) {
    throw new NameError("secret", name, `is ${name.length} chars, over Swarm's cap of ${SWARM_NAME_MAX}`);
  }
  return name;
}

/** Docker's name for a stack's named volume: `<stack>_<volume>`. */
export function volumeName(stack: string, volume: string): string {
  const name = `${assertStackName(stack)}_${check(volumeRule, volume, "volume")}`;
  if (name.length > VOLUME_NAME_MAX) {
    throw new NameError("volume", name, `is ${name.length} chars, over ${VOLUME_NAME_MAX}`);
  }
  return name;
}

/**
 * The env key and value marking the apps the warm stack created (warm apps and canonicals), so a
 * create that a crash left unobserved is adopted, and nobody else's app ever is.
 */
export const WARM_OWNER_KEY = "WARMSTACK_OWNER";
export const WARM_OWNER_MARK = "warmstack/warm";

/**
 * The env key naming the swarm node (hostname) an app with data is pinned to: named volumes are
 * node-local, so every deploy of it is placed there, and its volumes and snapshots are handled there.
 */
export const PINNED_NODE_KEY = "WARMSTACK_NODE";

/**
 * The holder a canonical's lease names while the warm stack changes that canonical (promote,
 * de-enrol); quick runs name their run stack, which can never be this.
 */
export const WARM_LEASE_HOLDER = "warm";
