import * as path from "node:path";
import { Stack } from "@pulumi/pulumi/automation";
import { waitUntil } from "../infra/adapters/health";
import { coordinationAt } from "../infra/adapters/coordination";
import { releasedVersions } from "../infra/adapters/recipes";
import { WARM_LEASE_HOLDER } from "../infra/naming";
import { compareVersions, parseVersion } from "../infra/versions";
import type { RunnerContext } from "./context";
import { engineFailure } from "./engine-errors";
import { Progress } from "./progress";
import { prepareWarmStack } from "./warm-defaults";
import { recoverWarmStack } from "./warm-recovery";
import { canonicalUrn, warmConfig, warmResources } from "./warm-state";
import { selectStack } from "./workspace";
import { warmOperationMark } from "./processes";

/**
 * Promote: make a newer release the known-good of an enrolled recipe's canonical. The
 * new version is set in the warm stack's config and an `up` targeted at that canonical seeds it; if
 * that fails, the canonical has kept its known-good and snapshot (the resource guarantees it) and the
 * config is put back, so config and state agree again.
 */
export interface PromoteRequest {
  recipe: string;
  version: string;
  /** How long to queue on the warm stack's lock and on a quick run that has the canonical. */
  lockTimeoutSeconds: number;
}

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
 * Serializes the read-modify-write of the canonicals config between runners: Pulumi locks the stack
 * only while an operation runs, not its config.
 */
function withConfigLock<T>(stateDir: string, timeoutMs: number, work: () => Promise<T>): Promise<T> {
  return coordinationAt(stateDir).withLock("warm-config", { what: "the warm stack's config lock", timeoutMs }, work);
}

interface CanonicalOutputs {
  knownGood?: string;
  snapshotId?: string;
  snapshotBytes?: number;
  seededAt?: string;
}

async function canonicalState(stack: Stack, recipe: string): Promise<CanonicalOutputs | undefined> {
  return (await warmResources(stack)).find((resource) => resource.type === "Canonical" && resource.name === recipe)?.outputs as CanonicalOutputs | undefined;
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

/** `up` targeted at the canonical; a locked stack is retried until the deadline. */
async function upCanonical(stack: Stack, recipe: string, lockDeadline: number, progress: Progress, lockTimeoutSeconds: number): Promise<void> {
  const options = { target: [canonicalUrn(stack, recipe)], onOutput: progress.engineOutput("warm") };
  for (;;) {
    try {
      await stack.up(options);
      return;
    } catch (error) {
      const failure = engineFailure(error);
      if (failure.kind !== "locked") throw error;
      if (Date.now() >= lockDeadline) {
        throw new Error(`the warm stack stayed locked for more than ${lockTimeoutSeconds}s (${failure.reason})`);
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
      const lease = await coordinationAt(stateDir).readLease(recipe);
      if (lease === null || lease.stack === WARM_LEASE_HOLDER) return { done: true, value: undefined };
      if (!said) progress.say(`canonical ${recipe} is lent to ${lease.stack}; waiting for it to be put back`);
      said = true;
      return { done: false, state: `leased by ${lease.stack} since ${lease.takenAt}` };
    },
    { timeoutMs: Math.max(0, deadline - Date.now()), intervalMs: 1000 },
  );
}

export async function promote(context: RunnerContext, request: PromoteRequest, progress: Progress): Promise<PromoteResult> {
  const { recipe, version } = request;
  const lockTimeoutMs = request.lockTimeoutSeconds * 1000;
  const lockDeadline = Date.now() + lockTimeoutMs;
  const { settings } = context;
  const stack = await selectStack("warm", settings, warmOperationMark());
  const result = (fields: Partial<PromoteResult> & Pick<PromoteResult, "ok" | "from" | "knownGood" | "changed">): PromoteResult => ({
    recipe,
    version,
    ...fields,
    elapsedMs: progress.elapsedMs(),
  });

  const from = await withConfigLock(settings.stateDir, lockTimeoutMs, async () => {
    await prepareWarmStack(context, stack, progress);
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
    await recoverWarmStack(stack, settings, progress, { at: lockDeadline, ofSeconds: request.lockTimeoutSeconds });
    await upCanonical(stack, recipe, lockDeadline, progress, request.lockTimeoutSeconds);
  } catch (error) {
    const { reason } = engineFailure(error);
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
