import { mkdir, readFile, unlink, writeFile } from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import { ConcurrentUpdateError, Stack } from "@pulumi/pulumi/automation";
import { Command } from "commander";
import { z } from "zod";
import { waitUntil } from "../../infra/adapters/health";
import { readLease } from "../../infra/adapters/leases";
import { releasedVersions } from "../../infra/adapters/recipes";
import { recipeNameSchema, WARM_LEASE_HOLDER } from "../../infra/naming";
import { compareVersions, isVersion, parseVersion } from "../../infra/versions";
import { Progress } from "../progress";
import { applyWarmDefaults } from "../warm-defaults";
import { canonicalUrn, warmConfig, warmResources } from "../warm-state";
import { runnerSettings, selectStack } from "../workspace";

/**
 * `warmstack promote`: make a newer release the known-good of an enrolled recipe's canonical. The
 * new version is set in the warm stack's config and an `up` targeted at that canonical seeds it; if
 * that fails, the canonical has kept its known-good and snapshot (the resource guarantees it) and the
 * config is put back, so config and state agree again.
 */
const requestSchema = z.object({
  recipe: recipeNameSchema,
  version: z.string().refine(isVersion, { error: "is not a recipe version (X.Y.Z+UPSTREAM, e.g. 1.0.1+1.0)" }),
  lockTimeoutSeconds: z.coerce.number().int().min(1).max(86_400),
});
export type PromoteRequest = z.infer<typeof requestSchema>;

export interface PromoteResult {
  ok: boolean;
  recipe: string;
  version: string;
  /** The known-good before the promote (null when the canonical was not seeded yet). */
  from: string | null;
  /** The known-good now. */
  knownGood: string | null;
  /** False when the version already was the known-good: nothing ran. */
  changed: boolean;
  snapshotId?: string;
  snapshotBytes?: number;
  seededAt?: string;
  error?: string;
  /** The canonical was promoted, but the same `up` failed elsewhere in the warm program. */
  warning?: string;
  elapsedMs: number;
}

/** A promote refused before anything changed. */
export class PromoteError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PromoteError";
  }
}

export interface PromotionFacts {
  recipe: string;
  version: string;
  enrolled: readonly string[];
  released: readonly string[];
  /** The canonical's known-good now: its state's, or the config's before its first seed. */
  knownGood: string;
}

/** "promote" to go ahead, "current" when the version already is the known-good; throws when refused. */
export function checkPromotion(facts: PromotionFacts): "promote" | "current" {
  if (!facts.enrolled.includes(facts.recipe)) {
    const enrolled = facts.enrolled.length > 0 ? facts.enrolled.join(", ") : "none";
    throw new PromoteError(`recipe ${facts.recipe} is not enrolled in the warm stack (enrolled: ${enrolled}); enrol it under warmstack:canonicals first`);
  }
  if (!facts.released.includes(facts.version)) {
    const released = facts.released.length > 0 ? facts.released.join(", ") : "none";
    throw new PromoteError(`${facts.version} is not a released version of ${facts.recipe} (released: ${released})`);
  }
  const order = compareVersions(parseVersion(facts.version), parseVersion(facts.knownGood));
  if (order < 0) {
    throw new PromoteError(`${facts.version} is older than ${facts.recipe}'s known-good ${facts.knownGood}: the known-good only moves forward`);
  }
  return order === 0 ? "current" : "promote";
}

const CONFIG_KEY = "warmstack:canonicals";
const LOCK_RETRY_MS = 3000;

/**
 * Serializes the read-modify-write of the canonicals config between runners on this machine: Pulumi
 * locks the stack only while an operation runs, not its config file. The lock file names its owner,
 * and the lock of a dead owner on this host is taken over.
 */
async function withConfigLock<T>(stateDir: string, timeoutMs: number, work: () => Promise<T>): Promise<T> {
  const file = path.join(stateDir, "locks", "warm-config.lock");
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const owner = { pid: process.pid, host: os.hostname(), since: new Date().toISOString(), command: "warmstack promote" };
  await waitUntil(
    `the warm stack's config lock ${file}`,
    async () => {
      try {
        await writeFile(file, `${JSON.stringify(owner)}\n`, { flag: "wx", mode: 0o600 });
        return { done: true, value: undefined };
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      }
      const holder = await readFile(file, "utf8").then((text) => JSON.parse(text) as typeof owner, () => undefined);
      if (holder?.host === owner.host && !isAlive(holder.pid)) {
        await unlink(file).catch(() => undefined);
        return { done: false, state: `took over the lock of pid ${holder.pid}, which is gone` };
      }
      return { done: false, state: holder ? `held by pid ${holder.pid} on ${holder.host} since ${holder.since}` : "held (owner unreadable)" };
    },
    { timeoutMs, intervalMs: 200 },
  );
  try {
    return await work();
  } finally {
    await unlink(file).catch(() => undefined);
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

interface CanonicalOutputs {
  knownGood?: string;
  snapshotId?: string;
  snapshotBytes?: number;
  seededAt?: string;
}

async function canonicalState(stack: Stack, recipe: string): Promise<CanonicalOutputs | undefined> {
  const urn = canonicalUrn(stack, recipe);
  return (await warmResources(stack)).find((resource) => resource.urn === urn)?.outputs as CanonicalOutputs | undefined;
}

/** Sets one canonical's knownGood in the config, leaving every other key as the operator wrote it. */
async function setKnownGood(stack: Stack, recipe: string, version: string): Promise<void> {
  const raw = (await stack.getAllConfig())[CONFIG_KEY]?.value;
  const canonicals = JSON.parse(raw ?? "{}") as Record<string, Record<string, unknown>>;
  const entry = canonicals[recipe];
  if (!entry) throw new PromoteError(`recipe ${recipe} is no longer enrolled in ${CONFIG_KEY}`);
  entry.knownGood = version;
  await stack.setConfig(CONFIG_KEY, { value: JSON.stringify(canonicals) });
}

function isLocked(error: unknown): boolean {
  return error instanceof ConcurrentUpdateError || /the stack is currently locked/.test(String((error as Error)?.message ?? error));
}

/** The engine's own words: the first error diagnostic other than the generic "update failed". */
function reasonOf(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  const diagnostics = [...text.matchAll(/^\s*error: (.+)$/gm)].map((match) => match[1]!.trim()).filter((line) => line !== "update failed");
  return diagnostics[0] ?? text.split("\n").find((line) => line.trim())?.trim() ?? "the engine failed";
}

/** The lock line(s) of a "currently locked" error: which lock file, which owner. */
function lockOf(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  const lines = text.split("\n").map((line) => line.trim());
  const start = lines.findIndex((line) => /currently locked/.test(line));
  return lines.slice(start, start + 3).filter(Boolean).join(" ");
}

/** `up` targeted at the canonical; a locked stack is retried until the deadline. */
async function upCanonical(stack: Stack, recipe: string, lockDeadline: number, progress: Progress, lockTimeoutSeconds: number): Promise<void> {
  const options = { target: [canonicalUrn(stack, recipe)], onOutput: progress.engineOutput("warm") };
  for (;;) {
    try {
      await stack.up(options);
      return;
    } catch (error) {
      if (!isLocked(error)) throw error;
      if (Date.now() >= lockDeadline) {
        throw new Error(`the warm stack stayed locked for more than ${lockTimeoutSeconds}s (${lockOf(error)})`);
      }
      progress.say("the warm stack is locked by another operation; waiting for it");
      await new Promise((resolve) => setTimeout(resolve, Math.min(LOCK_RETRY_MS, Math.max(0, lockDeadline - Date.now()))));
    }
  }
}

/**
 * A quick run borrowing the canonical must put it back before the canonical may change under it. A
 * lease the warm stack holds is not waited for here: the up queues on the stack's lock behind the
 * change that holds it, or adopts it when a killed up left it.
 */
async function waitUntilNotLeased(stateDir: string, recipe: string, deadline: number, progress: Progress): Promise<void> {
  let said = false;
  await waitUntil(
    `the quick run on canonical ${recipe} to end`,
    async () => {
      const lease = await readLease(stateDir, recipe);
      if (lease === null || lease.stack === WARM_LEASE_HOLDER) return { done: true, value: undefined };
      if (!said) progress.say(`canonical ${recipe} is lent to ${lease.stack}; waiting for it to be put back`);
      said = true;
      return { done: false, state: `leased by ${lease.stack} since ${lease.takenAt}` };
    },
    { timeoutMs: Math.max(0, deadline - Date.now()), intervalMs: 1000 },
  );
}

export async function promote(request: PromoteRequest, progress: Progress): Promise<PromoteResult> {
  const { recipe, version } = request;
  const lockTimeoutMs = request.lockTimeoutSeconds * 1000;
  const lockDeadline = Date.now() + lockTimeoutMs;
  const settings = runnerSettings();
  const stack = await selectStack("warm", settings);
  const result = (fields: Partial<PromoteResult> & Pick<PromoteResult, "ok" | "from" | "knownGood" | "changed">): PromoteResult => ({
    recipe,
    version,
    ...fields,
    elapsedMs: progress.elapsedMs(),
  });

  const from = await withConfigLock(settings.stateDir, lockTimeoutMs, async () => {
    await applyWarmDefaults(stack, settings);
    const config = await warmConfig(stack);
    const enrolled = Object.keys(config.canonicals);
    const configured = config.canonicals[recipe];
    const state = await canonicalState(stack, recipe);
    const knownGood = state?.knownGood ?? configured?.knownGood ?? version;
    const released = configured ? (await releasedVersions(path.join(config.abraDir, "recipes", recipe))).versions.map((entry) => entry.raw) : [];
    const decision = checkPromotion({ recipe, version, enrolled, released, knownGood });
    if (decision === "current" && configured?.knownGood === version && state !== undefined) return { knownGood, configured: version, skip: true };
    await setKnownGood(stack, recipe, version);
    return { knownGood: state?.knownGood ?? null, configured: configured?.knownGood, skip: false };
  });
  if (from.skip) {
    progress.say(`${version} already is ${recipe}'s known-good: nothing to do`);
    return result({ ok: true, from: from.knownGood, knownGood: from.knownGood, changed: false });
  }

  progress.say(`promote ${recipe}: ${from.knownGood ?? "(not seeded)"} → ${version}`);
  try {
    await waitUntilNotLeased(settings.stateDir, recipe, lockDeadline, progress);
    await upCanonical(stack, recipe, lockDeadline, progress, request.lockTimeoutSeconds);
  } catch (error) {
    const reason = reasonOf(error);
    const landed = await canonicalState(stack, recipe);
    if (landed?.knownGood === version) {
      // The canonical was promoted and something else in the program failed: the config is right.
      return result({ ok: true, from: from.knownGood, knownGood: version, changed: true, ...snapshotOf(landed), warning: `the up reported a failure elsewhere: ${reason}` });
    }
    await withConfigLock(settings.stateDir, lockTimeoutMs, async () => {
      // Back to what the state holds (or, before the first seed, the config held), unless someone
      // has set another version meanwhile.
      const configured = (await warmConfig(stack)).canonicals[recipe];
      if (configured?.knownGood !== version) return;
      const knownGood = (await canonicalState(stack, recipe))?.knownGood ?? from.configured;
      if (knownGood) await setKnownGood(stack, recipe, knownGood);
    });
    const state = await canonicalState(stack, recipe);
    return result({ ok: false, from: from.knownGood, knownGood: state?.knownGood ?? null, changed: false, error: reason });
  }
  const state = await canonicalState(stack, recipe);
  return result({
    ok: state?.knownGood === version,
    from: from.knownGood,
    knownGood: state?.knownGood ?? null,
    changed: true,
    ...snapshotOf(state),
    error: state?.knownGood === version ? undefined : `the up succeeded but the state names ${state?.knownGood ?? "no known-good"}`,
  });
}

function snapshotOf(state: CanonicalOutputs | undefined) {
  return { snapshotId: state?.snapshotId, snapshotBytes: state?.snapshotBytes, seededAt: state?.seededAt };
}

export function renderPromote(result: PromoteResult): string {
  const seconds = (result.elapsedMs / 1000).toFixed(1);
  if (!result.ok) {
    return `promote ${result.recipe} to ${result.version}: FAILED in ${seconds}s; the known-good stays ${result.knownGood ?? "(none)"}\n  reason: ${result.error}\n`;
  }
  if (!result.changed) return `promote ${result.recipe}: ${result.version} already is the known-good; nothing changed\n`;
  return (
    `promote ${result.recipe}: known-good ${result.from ?? "(none)"} → ${result.knownGood} in ${seconds}s\n` +
    `  snapshot ${result.snapshotId} (${result.snapshotBytes} bytes, taken ${result.seededAt})\n` +
    (result.warning ? `  warning: ${result.warning}\n` : "")
  );
}

export function registerPromote(program: Command): void {
  program
    .command("promote")
    .description("make a newer release the known-good of an enrolled recipe's canonical (an `up` of the warm stack targeted at it)")
    .requiredOption("--recipe <recipe>", "an enrolled recipe")
    .requiredOption("--version <version>", "a released version, not older than the current known-good")
    .option("--lock-timeout <seconds>", "how long to queue on the warm stack's lock", "900")
    .option("--json", "print a machine-readable result on stdout")
    .action(async (options: { recipe: string; version: string; lockTimeout: string; json?: boolean }) => {
      const parsed = requestSchema.safeParse({ recipe: options.recipe, version: options.version, lockTimeoutSeconds: options.lockTimeout });
      if (!parsed.success) {
        const names: Record<string, string> = { recipe: "--recipe", version: "--version", lockTimeoutSeconds: "--lock-timeout" };
        throw new PromoteError(parsed.error.issues.map((issue) => `${names[String(issue.path[0])] ?? issue.path.join(".")}: ${issue.message}`).join("; "));
      }
      const progress = new Progress(Boolean(options.json));
      let outcome: PromoteResult;
      try {
        outcome = await promote(parsed.data, progress);
      } catch (error) {
        if (!options.json) throw error;
        const message = error instanceof Error ? error.message : String(error);
        outcome = { ok: false, recipe: parsed.data.recipe, version: parsed.data.version, from: null, knownGood: null, changed: false, error: message, elapsedMs: progress.elapsedMs() };
      }
      process.stdout.write(options.json ? `${JSON.stringify(outcome, null, 2)}\n` : renderPromote(outcome));
      if (!outcome.ok) process.exitCode = 1;
    });
}
