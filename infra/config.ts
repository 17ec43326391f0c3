import { z } from "zod";
import { domainSchema, hex6Schema, recipeNameSchema, serverNameSchema } from "./naming";
import { isVersion } from "./versions";

/**
 * Stack configuration, validated before any resource is registered. Keys live in Pulumi config
 * under the `warmstack:` namespace (`pulumi config set -s warm warmstack:baseDomain warm.test`);
 * object values are JSON, as Pulumi stores them.
 */
export const CONFIG_NAMESPACE = "warmstack";

const absolutePath = z.string().refine((value) => value.startsWith("/"), "must be an absolute path");

const loopbackUrl = z
  .string()
  .refine((value) => /^http:\/\/(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|localhost)(:\d{1,5})?\/?$/.test(value), {
    message: "must be an http URL on loopback, e.g. http://127.0.0.1:47080",
  });

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
  })
  .strict();
export type CanonicalConfig = z.infer<typeof canonicalSchema>;

// Keys are checked here rather than by z.record's key schema, whose error says only "Invalid key".
const canonicalsSchema = z.record(z.string(), canonicalSchema).superRefine((canonicals, context) => {
  for (const recipe of Object.keys(canonicals)) {
    const checked = recipeNameSchema.safeParse(recipe);
    if (!checked.success) context.addIssue({ code: "custom", path: [recipe], message: checked.error.issues[0]?.message ?? "is not a valid recipe name" });
  }
});

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
  })
  .strict()
  .superRefine((config, context) => {
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
 * WARMSTACK_RETRY=APP[,APP] for a plain `pulumi up -s warm`. `source` names where the list came from.
 */
export function parseWarmRetry(raw: readonly string[], source: string): WarmAppName[] {
  const names = raw.flatMap((value) => value.split(",")).map((value) => value.trim()).filter(Boolean);
  const checked = z.array(z.enum(WARM_APP_NAMES)).safeParse(names);
  if (checked.success) return checked.data;
  const unknown = names.filter((name) => !(WARM_APP_NAMES as readonly string[]).includes(name));
  throw new ConfigError(`${source}: ${unknown.map((name) => JSON.stringify(name)).join(", ")} is not a warm app (one of ${WARM_APP_NAMES.join(", ")})`);
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
    hex: hex6Schema,
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
    /** The recipe declares a single-sign-on dependency on Keycloak. */
    sso: z.boolean().default(false),
    /** The shared live-warm Keycloak's domain; unset or unhealthy → a cold Keycloak in this stack. */
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
  .strict();
export type RunConfig = z.infer<typeof runConfigSchema>;

/**
 * The recipe catalogue: what the runner needs to test each recipe. An operator adds a recipe by
 * adding an entry; the file is YAML (catalogue.yaml in the project directory by default).
 */
const catalogueEntrySchema = z
  .object({
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
  })
  .strict();
export type CatalogueEntry = z.infer<typeof catalogueEntrySchema>;

export const catalogueSchema = z
  .object({
    recipes: z.record(z.string(), catalogueEntrySchema).superRefine((recipes, context) => {
      for (const recipe of Object.keys(recipes)) {
        const checked = recipeNameSchema.safeParse(recipe);
        if (!checked.success) context.addIssue({ code: "custom", path: [recipe], message: checked.error.issues[0]?.message ?? "is not a valid recipe name" });
      }
    }),
  })
  .strict();
export type Catalogue = z.infer<typeof catalogueSchema>;

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
