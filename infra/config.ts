import { z } from "zod";
import { domainSchema, hex6Schema, recipeNameSchema, serverNameSchema } from "./naming";

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

export const warmConfigSchema = z
  .object({
    baseDomain: domainSchema,
    server: serverNameSchema.default("default"),
    deployer: z.enum(["stack", "abra"]).default("stack"),
    abraDir: absolutePath,
    proxyUrl: loopbackUrl,
    dnsrrEndpoints: z.boolean().default(true),
  })
  .strict();
export type WarmConfig = z.infer<typeof warmConfigSchema>;

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
  })
  .strict();
export type RunConfig = z.infer<typeof runConfigSchema>;

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/** Pulumi hands config over as strings; objects, arrays, numbers and booleans arrive as JSON. */
function decodeConfigValue(raw: string): unknown {
  if (/^[[{]/.test(raw) || raw === "true" || raw === "false" || /^-?\d+(\.\d+)?$/.test(raw)) {
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
    const keys = issue.code === "unrecognized_keys" ? issue.keys : [issue.path.join(".")];
    const field = keys.map((key) => `${CONFIG_NAMESPACE}:${key}`).join(", ");
    return `  ${field}: ${issue.code === "unrecognized_keys" ? "unknown key" : issue.message}`;
  });
  throw new ConfigError(`${what} config is invalid:\n${problems.join("\n")}`);
}
