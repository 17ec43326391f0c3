import { z } from "zod";
import { domainSchema, nodeNameSchema, runIdSchema, recipeNameSchema, serverNameSchema } from "./naming";
import { isVersion } from "./versions";

/**
 * Stack configuration, validated before any resource is registered. Keys live in Pulumi config
 * under the `warmstack:` namespace (`pulumi config set -s warm warmstack:baseDomain warm.test`);
 * object values are JSON, as Pulumi stores them.
 */
export const CONFIG_NAMESPACE = "warmstack";

export const absolutePathSchema = z.string().refine((value) => value.startsWith("/") && !value.split("/").includes(".."), "must be an absolute path without '..'");
const absolutePath = absolutePathSchema;

export const loopbackUrlSchema = z
  .string()
  .refine((value) => /^http:\/\/(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|localhost)(:\d{1,5})?\/?$/.test(value), {
    message: "must be an http URL on loopback, e.g. http://127.0.0.1:47080",
  });
const loopbackUrl = loopbackUrlSchema;

const healthSchema = z
  .object({
    path: z.string().regex(/^\/[A-Za-z0-9._~\/-]*$/, "must be an absolute URL path, e.g. /health"),
    /** Probe this listener instead of the proxy (the proxy's own health, e.g. Traefik's /ping). */
    baseUrl: loopbackUrl.optional(),
    expectStatus: z.array(z.number().int().min(100).max(599)).nonempty().optional(),
  })
  .strict();

const envKey = z.string().regex(/^[A-Z_][A-Z0-9_]*$/, "env keys are upper case, e.g. WEB_PORT");

const warmAppSchema = z
  .object({
    recipe: recipeNameSchema,
    kind: z.enum(["stateful", "stateless"]),
    /** Default: <app>.<baseDomain> */
    domain: domainSchema.optional(),
    health: healthSchema,
    deployTimeoutSeconds: z.number().int().min(10).max(3600).default(300),
    /** The version a first deploy uses; later upgrades are the gate's. Default: the newest. */
    initialVersion: z.string().optional(),
    env: z.record(envKey, z.string()).default({}),
    /** De-configuring a purged app deletes its volumes and snapshot; otherwise they are kept. */
    purge: z.boolean().default(false),
  })
  .strict();
export type WarmAppConfig = z.infer<typeof warmAppSchema>;

const canonicalSchema = z
  .object({
    /** Advanced only by `warmstack promote` (after a green cold run); must be a released version. */
    knownGood: z.string().refine(isVersion, "must be a recipe version X.Y.Z+UPSTREAM, e.g. 1.0.0+1.0"),
    health: healthSchema,
    deployTimeoutSeconds: z.number().int().min(10).max(3600).default(300),
    /** The swarm node (hostname) to seed it on; default: the runner's own. It stays there. */
    node: nodeNameSchema.optional(),
  })
  .strict();
export type CanonicalConfig = z.infer<typeof canonicalSchema>;

const canonicalsSchema = recipeKeyed(canonicalSchema);

export const warmConfigSchema = z
  .object({
    baseDomain: domainSchema,
    server: serverNameSchema.default("default"),
    deployer: z.literal("stack", { message: "only the stack deployer is available (abra cannot be installed here)" }).default("stack"),
    abraDir: absolutePath,
    proxyUrl: loopbackUrl,
    dnsrrEndpoints: z.boolean().default(true),
    alertDir: absolutePath,
    alertWebhook: z.url({ protocol: /^https?$/, message: "must be an http(s) URL" }).optional(),
    snapshotStore: z.string().regex(/^[a-z0-9][a-z0-9_.-]*$/, "must be a docker volume name").default("warmstack_snapshots"),
    snapshotHelperImage: z.string().min(1).default("warmstack/base:bookworm"),
    /** The live-warm apps: the shared Keycloak and the Traefik proxy. */
    apps: z
      .object({ keycloak: warmAppSchema.optional(), traefik: warmAppSchema.optional() } satisfies Record<WarmAppName, unknown>)
      .strict()
      .default({}),
    /** The enrolled recipes: recipe → its canonical (data-warm copy at warm-<recipe>.<baseDomain>). */
    canonicals: canonicalsSchema.default({}),
    /** The runner's state directory (WARMSTACK_STATE_DIR): quick runs lease canonicals under its leases/. */
    stateDir: absolutePath.optional(),
    /** How long a promote or de-enrol waits for a quick run to give its canonical back. */
    leaseWaitSeconds: z.coerce.number().int().min(0).max(86_400).default(1800),
    /**
     * The shared Keycloak's canary, set by the runner from the recipe catalogue before every
     * operation: the SSO recipes that run against a copy of it before it moves, and how to start
     * their runs. Unset: the Keycloak moves on health alone.
     */
    canary: z
      .object({
        recipes: z.array(recipeNameSchema).nonempty("must name a recipe"),
        runCommand: z.array(z.string().min(1)).nonempty("must name a program"),
        catalogue: absolutePath,
        runTimeoutSeconds: z.coerce.number().int().min(60).max(14_400).optional(),
      })
      .strict()
      .optional(),
  })
  .strict()
  .superRefine((config, context) => {
    if (config.canary !== undefined && config.stateDir === undefined) {
      context.addIssue({ code: "custom", path: ["stateDir"], message: "is required with a canary: its runs register under <stateDir> (warmstack sets it to WARMSTACK_STATE_DIR)" });
    }
    if (Object.keys(config.canonicals).length > 0 && config.stateDir === undefined) {
      context.addIssue({
        code: "custom",
        path: ["stateDir"],
        message: "is required while canonicals are enrolled: quick runs lease them under <stateDir>/leases, and a change must wait for them (warmstack sets it to WARMSTACK_STATE_DIR)",
      });
    }
  });
export type WarmConfig = z.infer<typeof warmConfigSchema>;

export const WARM_APP_NAMES = ["keycloak", "traefik"] as const;
export type WarmAppName = (typeof WARM_APP_NAMES)[number];

/**
 * The warm apps whose failed upgrade may be tried again in this run: `warmstack up --retry APP`, or
 * WARMSTACK_RETRY=APP[,APP] for a plain `pulumi up -s warm`. Names may repeat and be comma-separated.
 */
export const warmRetrySchema = z
  .array(z.string())
  .transform((raw) => raw.flatMap((value) => value.split(",")).map((value) => value.trim()).filter(Boolean))
  .superRefine((names, context) => {
    const unknown = names.filter((name) => !(WARM_APP_NAMES as readonly string[]).includes(name));
    if (unknown.length > 0) context.addIssue({ code: "custom", message: `${unknown.map((name) => JSON.stringify(name)).join(", ")} is not a warm app (one of ${WARM_APP_NAMES.join(", ")})` });
  })
  .transform((names) => names as WarmAppName[]);

/** `source` names where the list came from, for the error. */
export function parseWarmRetry(raw: readonly string[], source: string): WarmAppName[] {
  const checked = warmRetrySchema.safeParse(raw);
  if (checked.success) return checked.data;
  throw new ConfigError(`${source}: ${checked.error.issues[0]?.message ?? "is invalid"}`);
}

const deployerSettingsSchema = z
  .object({ deployer: z.literal("stack"), abraDir: absolutePath, server: serverNameSchema, proxyUrl: loopbackUrl, dnsrrEndpoints: z.boolean() })
  .strict();

/** What it takes to look at a warm app on the swarm, as the warm stack's state records it. */
export const warmAppLocatorSchema = z.object({
  recipe: recipeNameSchema,
  domain: domainSchema,
  deployerSettings: deployerSettingsSchema,
  health: healthSchema,
});

/**
 * What a quick run needs to borrow a canonical and to put it back: the runner copies it from the warm
 * stack's state into the run config, and the lease carries it so a dead run's canonical can be
 * restored without reading any stack.
 */
export const leasedCanonicalSchema = z
  .object({
    domain: domainSchema,
    knownGood: z.string().refine(isVersion, "must be a recipe version X.Y.Z+UPSTREAM"),
    snapshotStore: z.string().regex(/^[a-z0-9][a-z0-9_.-]*$/, "must be a docker volume name"),
    helperImage: z.string().min(1),
    deployerSettings: deployerSettingsSchema,
    health: healthSchema,
    deployTimeoutMs: z.number().int().positive(),
    /** The swarm node its volumes and snapshot are on; absent for a canonical seeded before pinning. */
    node: nodeNameSchema.optional(),
  })
  .strict();
export type LeasedCanonical = z.infer<typeof leasedCanonicalSchema>;

/** A Canonical's inputs or state (as the warm stack records it), read as what a lease carries. */
export function parseLeasedCanonical(canonical: Record<string, unknown>) {
  const snapshot = canonical.snapshot as { store?: unknown; helperImage?: unknown } | undefined;
  return leasedCanonicalSchema.safeParse({
    domain: canonical.domain,
    knownGood: canonical.knownGood,
    snapshotStore: snapshot?.store,
    helperImage: snapshot?.helperImage,
    deployerSettings: canonical.deployerSettings,
    health: canonical.health,
    deployTimeoutMs: canonical.deployTimeoutMs,
    node: canonical.pinnedNode,
  });
}

/** The app under test, as the recipe catalogue describes it. */
const runAppSchema = z
  .object({
    health: healthSchema,
    ready: healthSchema.optional(),
    deployTimeoutSeconds: z.number().int().min(10).max(3600),
  })
  .strict();

export const runConfigSchema = z
  .object({
    recipe: recipeNameSchema,
    /** The run's id, the last part of the run stack's name. */
    runId: runIdSchema,
    ref: z
      .string()
      .regex(/^([0-9a-f]{7,40})?$/, "must be a commit hash (7–40 hex digits) or empty for the latest version")
      .default(""),
    pr: z.coerce.number().int().positive().optional(),
    mode: z.enum(["cold", "quick"]).default("cold"),
    baseDomain: domainSchema,
    server: serverNameSchema.default("default"),
    abraDir: absolutePath,
    proxyUrl: loopbackUrl,
    dnsrrEndpoints: z.boolean().default(true),
    /** Holds the cross-process Keycloak write lock. */
    stateDir: absolutePath,
    /**
     * The recipe's single-sign-on path, as the runner chose it before the up: none (no SSO
     * dependency), a realm on the shared Keycloak, or a cold Keycloak of the run's own.
     */
    sso: z.enum(["none", "warm-keycloak", "cold-keycloak"]).default("none"),
    /** Why the run deploys its own Keycloak (sso cold-keycloak), as the runner found the shared one. */
    ssoFallback: z.string().optional(),
    /** The shared live-warm Keycloak's domain; required for sso warm-keycloak. */
    keycloakDomain: domainSchema.optional(),
    /** Version of the cold Keycloak fallback; default: the keycloak recipe's newest release. */
    coldKeycloakVersion: z.string().default(""),
    /** The app under test; unset, the stack holds only what the recipe borrows (its realm). */
    app: runAppSchema.optional(),
    /** The quick lane's canonical (mode quick); without it a quick run goes to the cold lane. */
    canonical: leasedCanonicalSchema.optional(),
    /** Where the app's lane and deploys are recorded as they happen, for the results of a failed up. */
    progressFile: absolutePath.optional(),
    /** How long a quick run waits for the canonical's lease before it falls back to the cold lane. */
    leaseTimeoutSeconds: z.coerce.number().int().min(0).max(86_400).default(600),
  })
  .strict()
  .superRefine((config, context) => {
    if (config.sso === "warm-keycloak" && config.keycloakDomain === undefined) {
      context.addIssue({ code: "custom", path: ["keycloakDomain"], message: "is required when warmstack:sso is warm-keycloak" });
    }
  });
export type RunConfig = z.infer<typeof runConfigSchema>;

/**
 * A recipe's git remote: an http(s), ssh or git URL, or an absolute path. Credentials never sit in
 * it (they would reach argv, logs and results): they come from git's credential helper or
 * WARMSTACK_GIT_CREDENTIALS_FILE.
 */
export const recipeSourceSchema = z
  .string()
  .refine((value) => /^(https?|ssh|git):\/\/[^\s]+$/.test(value) || /^\/[^\s]*$/.test(value), "must be an http(s), ssh or git URL, or an absolute path")
  .refine((value) => !/^[a-z]+:\/\/[^/@]*:[^/@]*@/.test(value), "must not carry a password: git's credential helper or WARMSTACK_GIT_CREDENTIALS_FILE gives it");

/** Co-op Cloud's own remote of a recipe, the default source. */
export function coopCloudSource(recipe: string): string {
  return `https://git.coopcloud.tech/coop-cloud/${recipe}.git`;
}

/**
 * The recipe catalogue: what the runner needs to test each recipe. An operator adds a recipe by
 * adding an entry; the file is YAML (catalogue.yaml in the project directory by default).
 */
const catalogueEntrySchema = z
  .object({
    /** The recipe's git remote: PR heads and new release tags are fetched from it. Default: Co-op Cloud's. */
    source: recipeSourceSchema.optional(),
    test: z
      .object({
        /** Program and arguments, run without a shell; a relative program path is the catalogue directory's. */
        command: z.array(z.string().min(1, "must not be empty")).nonempty("must name a program"),
        timeoutSeconds: z.number().int().min(1).max(7200).default(600),
      })
      .strict(),
    health: healthSchema,
    ready: healthSchema.optional(),
    deployTimeoutSeconds: z.number().int().min(10).max(3600).default(300),
    /** The recipe needs a single-sign-on realm on Keycloak. */
    sso: z.boolean().default(false),
    /** Quick runs may borrow the recipe's canonical, and a green cold run on its latest promotes it. */
    canonical: z.boolean().default(false),
    /** Before the shared Keycloak moves, the recipe runs against a copy of it at the new version (an SSO recipe only). */
    canary: z.boolean().default(false),
  })
  .strict()
  .superRefine((entry, context) => {
    if (entry.canary && !entry.sso) {
      context.addIssue({ code: "custom", path: ["canary"], message: "a canary runs against a copy of the shared Keycloak: only an SSO recipe (sso: true) can be one" });
    }
  });
export type CatalogueEntry = z.infer<typeof catalogueEntrySchema>;

/** Keys are checked here rather than by z.record's key schema, whose error says only "Invalid key". */
function recipeKeyed<S extends z.ZodType>(value: S) {
  return z.record(z.string(), value).superRefine((recipes, context) => {
    for (const recipe of Object.keys(recipes)) {
      const checked = recipeNameSchema.safeParse(recipe);
      if (!checked.success) context.addIssue({ code: "custom", path: [recipe], message: checked.error.issues[0]?.message ?? "is not a valid recipe name" });
    }
  });
}

export const catalogueSchema = z
  .object({
    recipes: recipeKeyed(catalogueEntrySchema),
    /** Where recipes deployed here but not tested (the warm apps') come from. Default: Co-op Cloud's remotes. */
    sources: recipeKeyed(recipeSourceSchema).default({}),
  })
  .strict();
export type Catalogue = z.infer<typeof catalogueSchema>;

/** The remote the catalogue names for a recipe (its entry's, else its sources'), if it names one. */
export function catalogueSourceOf(catalogue: Catalogue, recipe: string): string | undefined {
  return catalogue.recipes[recipe]?.source ?? catalogue.sources[recipe];
}

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/**
 * Pulumi hands config over as strings; objects, arrays and booleans arrive as JSON. Numbers stay
 * strings: an all-digit run id such as 752380 is a name, and numeric fields coerce for themselves.
 */
function decodeConfigValue(raw: string): unknown {
  if (raw === "true" || raw === "false") return raw === "true";
  if (/^[[{]/.test(raw)) {
    try {
      return JSON.parse(raw);
    } catch {
      return raw;
    }
  }
  return raw;
}

/** Picks this project's keys out of Pulumi's flat `namespace:key` map. */
export function namespacedConfig(all: Record<string, string>): Record<string, unknown> {
  const values: Record<string, unknown> = {};
  for (const [fullKey, raw] of Object.entries(all)) {
    const separator = fullKey.indexOf(":");
    if (fullKey.slice(0, separator) === CONFIG_NAMESPACE) values[fullKey.slice(separator + 1)] = decodeConfigValue(raw);
  }
  return values;
}

/** Parses config with a schema; the error lists every bad field by its full config key. */
export function parseConfig<S extends z.ZodType>(schema: S, values: unknown, what: string): z.infer<S> {
  const result = schema.safeParse(values);
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => {
    const prefix = issue.path.join(".");
    const keys = issue.code === "unrecognized_keys" ? issue.keys.map((key) => (prefix ? `${prefix}.${key}` : key)) : [prefix];
    const field = keys.map((key) => `${CONFIG_NAMESPACE}:${key}`).join(", ");
    return `  ${field}: ${issue.code === "unrecognized_keys" ? "unknown key" : issue.message}`;
  });
  throw new ConfigError(`${what} config is invalid:\n${problems.join("\n")}`);
}
