// The upgrade safety gate (DESIGN.md, invariant 4): given what runs now and what the recipe has
// released, pick the newest version that can be applied without a human, and say precisely what holds
// the rest back. Pure: the live version, tags, release notes and samples are read by the caller, so
// the decision is the same in `pulumi preview`, in `up` and in tests.
import type { AlertRecord } from "./adapters/alerts";
import { EnvFile, EnvParseError } from "./adapters/app-env";
import { RecipeVersion, VersionError, bumpKind, compareVersions, parseVersion, upstreamMajorChanged } from "./versions";

export type HoldReason = "recipe-major" | "upstream-major" | "manual-steps" | "new-required-key" | "failed-before";

export interface Hold {
  app: string;
  /** The version running now. */
  from: string;
  /** The newest released version: what the app would run if nothing held it back. */
  to: string;
  /**
   * The first version that cannot be applied without a human; the target stays below it. For
   * "failed-before" the version that is not tried again; a newer safe release is still taken.
   */
  blockedAt: string;
  reason: HoldReason;
  detail: string;
  /** The evidence: the release-note lines, the missing keys, or the two versions compared. */
  lines: string[];
}

export interface GateInput {
  app: string;
  /** Version running now, read from the live system; null = not deployed. */
  current: string | null;
  /** Used only when current is null. */
  initialVersion?: string;
  /** Tag names as listed (may include malformed ones). */
  released: readonly string[];
  /** Release notes per version (undefined = none). */
  notes: Readonly<Record<string, string | undefined>>;
  /** `.env.sample` text per version (undefined = none). */
  envSamples: Readonly<Record<string, string | undefined>>;
  /** Keys assigned in the app's env file now. */
  currentEnvKeys: readonly string[];
  /**
   * Versions whose upgrade failed and was rolled back, with why: not taken again (every night would
   * otherwise bring the same rollback), unless the operator asks for a retry.
   */
  failedBefore?: Readonly<Record<string, string>>;
}

export interface GateDecision {
  app: string;
  current: string | null;
  target: string;
  action: "deploy" | "upgrade" | "stay";
  holds: Hold[];
  warnings: string[];
}

/** The gate cannot decide at all (bad input); `field` names the input at fault. */
export class GateError extends Error {
  constructor(
    readonly app: string,
    readonly field: string,
    message: string,
  ) {
    super(message);
    this.name = "GateError";
  }
}

// Phrases in release notes that mean "a human must do something around this upgrade". Matching is
// case-insensitive and may span a line break (notes are often hard-wrapped). A false positive costs a
// held upgrade and an alert; a false negative can cost data, so the table leans towards matching —
// "No manual steps needed" matches too, on purpose. "Broken"/"breaks" alone do not match: the fixture
// notes of deliberately broken versions say "Broken on purpose", which is for the rollback tests, not
// for the gate.
//
//   phrase                          | example                                              | why
//   --------------------------------|------------------------------------------------------|-----------------------------------
//   manual migration(s)             | "Manual migration required: run ..."                 | data must be moved by hand
//   manual step(s)                  | "Manual steps required: re-import the themes"        | the generic Co-op Cloud wording
//   manual intervention             | "This release requires manual intervention"          | same, other wording
//   manually                        | "move your config manually"                          | any hand-done action
//   require(s) (a) manual           | "requires a manual restart"                          | "manual" + a noun not listed above
//   breaking change(s)              | "Breaking change."                                   | the maintainer's own warning
//   before upgrading                | "Back up the database before upgrading"              | a step must precede the deploy
//   after upgrading(,) run          | "After upgrading, run the reindex"                   | a step must follow the deploy
//   run `... migrat…`               | "run `abra app cmd <domain> app migrate`"            | a migration command to run
//   abra app cmd                    | "abra app cmd example.com app upgrade"               | recipe commands are run by hand
//   need(s) (a) human               | "this needs a human"                                 | explicit
//   data migration(s)               | "Includes a data migration"                          | data changes shape
export const MANUAL_STEP_PATTERNS: readonly { pattern: RegExp; label: string }[] = [
  { pattern: /\bmanual\s+migrations?\b/i, label: "manual migration" },
  { pattern: /\bmanual\s+steps?\b/i, label: "manual steps" },
  { pattern: /\bmanual\s+intervention\b/i, label: "manual intervention" },
  { pattern: /\bmanually\b/i, label: "manually" },
  { pattern: /\brequires?\s+(?:a\s+)?manual\b/i, label: "requires manual" },
  { pattern: /\bbreaking\s+changes?\b/i, label: "breaking change" },
  { pattern: /\bbefore\s+upgrading\b/i, label: "before upgrading" },
  { pattern: /\bafter\s+upgrading,?\s+run\b/i, label: "after upgrading, run" },
  // Bounded and single-line, so a long note without a closing backtick cannot make the match slow.
  { pattern: /\brun\s+`[^`\n]{0,200}\bmigrat[^`\n]{0,200}`/i, label: "run a migrate command" },
  { pattern: /\babra\s+app\s+cmd\b/i, label: "abra app cmd" },
  { pattern: /\bneeds?\s+(?:a\s+)?human\b/i, label: "needs a human" },
  { pattern: /\bdata\s+migrations?\b/i, label: "data migration" },
];

/** The trimmed lines of `notes` that call for manual steps, in order, each once. */
export function manualStepLines(notes: string): string[] {
  const lines = notes.split(/\r\n|\r|\n/).map((l) => l.trim());
  // Matching runs over the whole text so that a phrase wrapped onto the next line is still found;
  // every line a match touches is reported.
  const text = lines.join("\n");
  const starts: number[] = [];
  let offset = 0;
  for (const l of lines) {
    starts.push(offset);
    offset += l.length + 1;
  }
  const lineAt = (index: number): number => {
    let i = 0;
    while (i + 1 < starts.length && starts[i + 1] <= index) i++;
    return i;
  };
  const hit = new Set<number>();
  for (const { pattern } of MANUAL_STEP_PATTERNS) {
    // A private global copy: the exported patterns stay stateless (no lastIndex surprises for callers).
    const global = new RegExp(pattern.source, pattern.flags.includes("g") ? pattern.flags : `${pattern.flags}g`);
    for (const m of text.matchAll(global)) {
      const first = lineAt(m.index);
      const last = lineAt(m.index + Math.max(m[0].length - 1, 0));
      for (let i = first; i <= last; i++) hit.add(i);
    }
  }
  return [...hit]
    .sort((a, b) => a - b)
    .map((i) => lines[i])
    .filter((l) => l !== "");
}

/**
 * Keys the sample assigns an empty value (`KEY=`, `KEY=""`) that the app's env lacks: the recipe has
 * no default for them, so the new version would start without a setting it needs. A key with a value
 * has a default; a commented `#KEY=` is optional. Throws EnvParseError when the sample is not an env
 * file.
 */
export function newRequiredKeys(envSample: string, currentEnvKeys: readonly string[]): string[] {
  const sample = EnvFile.parse(envSample, ".env.sample");
  const have = new Set(currentEnvKeys);
  return sample.keys().filter((k) => sample.get(k) === "" && !have.has(k));
}

// Tags and versions can be long or contain control characters; messages must stay one short line.
function show(value: unknown): string {
  if (typeof value !== "string") return `a ${value === null ? "null" : typeof value}`;
  return JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value);
}

function parseField(app: string, field: string, label: string, raw: string): RecipeVersion {
  try {
    return parseVersion(raw, label);
  } catch (err) {
    if (!(err instanceof VersionError)) throw err;
    // VersionError says `<label>: "x" is not a recipe version (...)`; here it reads `<app>: <label> "x" ...`.
    throw new GateError(app, field, `${app}: ${label} ${err.message.slice(label.length + 2)}`);
  }
}

// Ascending and without duplicates. A malformed tag is never ordered: guessing where it belongs
// could make it "newer" than every real release and deploy something that was never released.
function parseReleased(app: string, released: readonly string[], warnings: string[]): RecipeVersion[] {
  const seen = new Set<string>();
  const versions: RecipeVersion[] = [];
  for (const raw of released) {
    if (seen.has(raw)) continue;
    seen.add(raw);
    try {
      versions.push(parseVersion(raw, "tag"));
    } catch (err) {
      if (!(err instanceof VersionError)) throw err;
      warnings.push(`${app}: ignoring tag ${show(raw)}: not a recipe version X.Y.Z+UPSTREAM`);
    }
  }
  return versions.sort(compareVersions);
}

// Own properties only: a record is keyed by tag names, and an inherited `constructor` is not a note.
function lookup(record: Readonly<Record<string, string | undefined>>, key: string): string | undefined {
  return Object.prototype.hasOwnProperty.call(record, key) ? record[key] : undefined;
}

type Risk = Pick<Hold, "reason" | "detail" | "lines">;

// Each candidate is judged against the version running now, not against its predecessor: the
// upgrade is applied in one step from current to target, so that is the jump that must be safe.
function assess(input: GateInput, current: RecipeVersion, v: RecipeVersion, warnings: string[]): Risk | null {
  const { app } = input;
  if (bumpKind(current, v) === "recipe-major") {
    return {
      reason: "recipe-major",
      detail: `recipe major bump ${current.major}.x → ${v.major}.x needs a human`,
      lines: [current.raw, v.raw],
    };
  }
  if (upstreamMajorChanged(current, v)) {
    const known = current.upstreamMajor !== null && v.upstreamMajor !== null;
    return {
      reason: "upstream-major",
      detail: known
        ? `upstream major bump ${current.upstreamMajor} → ${v.upstreamMajor} (${current.upstream} → ${v.upstream}) needs a human`
        : `upstream ${current.upstream} → ${v.upstream} has no recognisable major version, so the change cannot be judged safe; needs a human`,
      lines: [current.raw, v.raw],
    };
  }
  const notes = lookup(input.notes, v.raw);
  if (notes === undefined) {
    warnings.push(`${app}: ${v.raw} has no release notes; nothing to check for manual steps`);
  } else {
    const lines = manualStepLines(notes);
    if (lines.length > 0) {
      return { reason: "manual-steps", detail: `the release notes of ${v.raw} call for manual steps`, lines };
    }
  }
  const sample = lookup(input.envSamples, v.raw);
  if (sample === undefined) {
    warnings.push(`${app}: ${v.raw} has no .env.sample; nothing to check for new required keys`);
  } else {
    let keys: string[];
    try {
      keys = newRequiredKeys(sample, input.currentEnvKeys);
    } catch (err) {
      if (!(err instanceof EnvParseError)) throw err;
      // As good as no sample: we cannot tell, and the other checks still stand.
      warnings.push(`${app}: the .env.sample of ${v.raw} cannot be read (${err.message}); nothing to check for new required keys`);
      keys = [];
    }
    if (keys.length > 0) {
      const them = keys.length === 1 ? "it" : "them";
      return {
        reason: "new-required-key",
        detail: `${v.raw} requires ${keys.join(", ")} without a default, and the app's env does not set ${them}`,
        lines: keys,
      };
    }
  }
  return null;
}

export function decide(input: GateInput): GateDecision {
  const { app } = input;
  const warnings: string[] = [];
  const released = parseReleased(app, input.released, warnings);
  const newest = released.length > 0 ? released[released.length - 1] : null;

  // A malformed initialVersion is a config mistake even while unused: report it now, not on the day
  // the app is first deployed. Whether it is released only matters when it is used.
  const initial =
    input.initialVersion === undefined ? undefined : parseField(app, "initialVersion", "initialVersion", input.initialVersion);

  if (input.current === null) {
    if (newest === null) {
      throw new GateError(app, "released", `${app}: not deployed and nothing is released (no tag is a recipe version)`);
    }
    let target = newest;
    if (initial !== undefined) {
      const found = released.find((v) => v.raw === initial.raw);
      if (found === undefined) {
        throw new GateError(app, "initialVersion", `${app}: initialVersion ${show(initial.raw)} is not a released version`);
      }
      target = found;
    }
    // A fresh install has nothing to migrate and no env to fall short of: no holds.
    return { app, current: null, target: target.raw, action: "deploy", holds: [], warnings };
  }

  const current = parseField(app, "current", "current version", input.current);
  const stay = (): GateDecision => ({ app, current: current.raw, target: current.raw, action: "stay", holds: [], warnings });

  if (newest === null) {
    warnings.push(`${app}: nothing is released (no tag is a recipe version); staying at ${current.raw}`);
    return stay();
  }
  const isReleased = released.some((v) => v.raw === current.raw);
  if (compareVersions(current, newest) > 0) {
    warnings.push(
      `${app}: running ${current.raw}, newer than every released version (newest ${newest.raw}): tag deleted, or running a commit? Staying`,
    );
    return stay();
  }
  if (!isReleased) {
    warnings.push(`${app}: running ${current.raw}, which is not a released version (tag deleted?); judging upgrades from it anyway`);
  }

  let target = current;
  const holds: Hold[] = [];
  let newestFailed: { version: RecipeVersion; why: string } | null = null;
  for (const v of released) {
    if (compareVersions(v, current) <= 0) continue;
    const risk = assess(input, current, v, warnings);
    if (risk !== null) {
      // One hold, at the first risky version: everything above it is reached only through it.
      holds.push({ app, from: current.raw, to: newest.raw, blockedAt: v.raw, ...risk });
      break;
    }
    // A version that failed before is skipped, not a wall: a newer safe release (its fix) is taken.
    const why = input.failedBefore ? lookup(input.failedBefore, v.raw) : undefined;
    if (why !== undefined) newestFailed = { version: v, why };
    else target = v;
  }
  if (newestFailed !== null && compareVersions(newestFailed.version, target) > 0) {
    holds.unshift({
      app,
      from: current.raw,
      to: newest.raw,
      blockedAt: newestFailed.version.raw,
      reason: "failed-before",
      detail: `the upgrade to ${newestFailed.version.raw} failed and was rolled back; it is not tried again until a newer safe release or a retry (warmstack up --retry ${app})`,
      lines: [newestFailed.why],
    });
  }
  return {
    app,
    current: current.raw,
    target: target.raw,
    action: target.raw === current.raw ? "stay" : "upgrade",
    holds,
    warnings,
  };
}

/** The app's failed upgrades from its alert records (newest first): target version → when and why. */
export function failedUpgrades(alerts: readonly AlertRecord[], app: string): Record<string, string> {
  const failed: Record<string, string> = {};
  for (const alert of alerts) {
    if (alert.app !== app || alert.to === null || !(alert.outcome === "rolled-back" || alert.outcome === "rollback-failed")) continue;
    if (!Object.prototype.hasOwnProperty.call(failed, alert.to)) failed[alert.to] = `${alert.time} ${alert.outcome}: ${alert.reason}`;
  }
  return failed;
}
