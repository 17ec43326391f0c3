// Co-op Cloud recipe versions: annotated git tags `X.Y.Z+UPSTREAM`, e.g. `10.7.1+26.6.2`.
// The recipe part is what the recipe maintainer promises (a recipe-major bump means "read the release
// notes"); the upstream part is whatever scheme the packaged software uses, so it is only ordered
// best-effort and never trusted to say whether an upgrade is safe.

export interface RecipeVersion {
  raw: string;
  major: number;
  minor: number;
  patch: number;
  upstream: string;
  /** Leading integer of `upstream` (after an optional `v`), or null when upstream has no such scheme. */
  upstreamMajor: number | null;
}

// Tags come from recipe repositories we do not control; a bound keeps messages and state readable.
const MAX_VERSION_LENGTH = 128;

// No recipe prerelease: abra only releases plain X.Y.Z, and a `-rc1` here would make `+` ambiguous.
const VERSION_PATTERN =
  /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)\+([0-9A-Za-z][0-9A-Za-z._-]*)$/;

const UPSTREAM_MAJOR_PATTERN = /^v?(\d+)/;

export class VersionError extends Error {
  readonly field: string;
  readonly value: unknown;

  constructor(field: string, value: unknown, reason: string) {
    super(`${field}: ${describe(value)} is not a recipe version (${reason})`);
    this.name = "VersionError";
    this.field = field;
    this.value = value;
  }
}

// Tags can be arbitrarily long or contain control characters; the message must stay one short line.
function describe(value: unknown): string {
  if (typeof value !== "string") return `a ${value === null ? "null" : typeof value}`;
  const shown = value.length > 80 ? `${value.slice(0, 80)}…` : value;
  return JSON.stringify(shown);
}

export function parseVersion(raw: string, field = "version"): RecipeVersion {
  // Callers pass values read from YAML, JSON and git output: check the type at run time too.
  if (typeof raw !== "string") {
    throw new VersionError(field, raw, "expected a string like 1.0.0+26.5.6");
  }
  if (raw.length > MAX_VERSION_LENGTH) {
    throw new VersionError(field, raw, `longer than ${MAX_VERSION_LENGTH} characters`);
  }
  const m = VERSION_PATTERN.exec(raw);
  if (m === null) {
    throw new VersionError(field, raw, "expected X.Y.Z+UPSTREAM, e.g. 1.0.0+26.5.6");
  }
  const [major, minor, patch] = [m[1], m[2], m[3]].map(Number);
  // Beyond 2^53 numbers silently collide and the ordering would lie.
  if (![major, minor, patch].every(Number.isSafeInteger)) {
    throw new VersionError(field, raw, "a version number is too large");
  }
  const upstream = m[4];
  const um = UPSTREAM_MAJOR_PATTERN.exec(upstream);
  const upstreamMajor = um === null ? null : Number(um[1]);
  return {
    raw,
    major,
    minor,
    patch,
    upstream,
    upstreamMajor: upstreamMajor !== null && Number.isSafeInteger(upstreamMajor) ? upstreamMajor : null,
  };
}

export function isVersion(raw: string): boolean {
  try {
    parseVersion(raw);
    return true;
  } catch (err) {
    if (err instanceof VersionError) return false;
    throw err;
  }
}

const NUMERIC = /^\d+$/;

// Digit strings of any length compare exactly (no float rounding), ignoring leading zeros.
function compareDigits(a: string, b: string): number {
  const x = a.replace(/^0+(?=\d)/, "");
  const y = b.replace(/^0+(?=\d)/, "");
  if (x.length !== y.length) return x.length < y.length ? -1 : 1;
  return x < y ? -1 : x > y ? 1 : 0;
}

// Code-unit order rather than localeCompare: the order must not depend on the machine's locale.
function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

// Best-effort order for upstream schemes (`26.6.2`, `v3.6.12`, `1.27.3-alpine`): numeric segments
// sort before alphanumeric ones and a prefix sorts first, as in semver prerelease identifiers.
function compareUpstream(a: string, b: string): number {
  const sa = a.split(/[.-]/);
  const sb = b.split(/[.-]/);
  for (let i = 0; i < Math.min(sa.length, sb.length); i++) {
    const na = NUMERIC.test(sa[i]);
    const nb = NUMERIC.test(sb[i]);
    const c = na && nb ? compareDigits(sa[i], sb[i]) : na !== nb ? (na ? -1 : 1) : compareStrings(sa[i], sb[i]);
    if (c !== 0) return c;
  }
  return Math.sign(sa.length - sb.length);
}

export function compareVersions(a: RecipeVersion, b: RecipeVersion): number {
  return (
    Math.sign(a.major - b.major) ||
    Math.sign(a.minor - b.minor) ||
    Math.sign(a.patch - b.patch) ||
    compareUpstream(a.upstream, b.upstream) ||
    // `1.01` vs `1.1`, `1.2` vs `1-2`: distinct tags that the segments consider equal still need a
    // fixed order, or "latest" would depend on the order git listed the tags in.
    compareStrings(a.raw, b.raw)
  );
}

export interface SortedVersions {
  versions: RecipeVersion[];
  rejected: { raw: string; reason: string }[];
}

/** Ascending, without duplicates; tags that do not parse are reported, never ordered. */
export function sortVersions(raws: readonly string[]): SortedVersions {
  const versions: RecipeVersion[] = [];
  const rejected: { raw: string; reason: string }[] = [];
  const seen = new Set<string>();
  for (const raw of raws) {
    if (seen.has(raw)) continue;
    seen.add(raw);
    try {
      versions.push(parseVersion(raw));
    } catch (err) {
      if (!(err instanceof VersionError)) throw err;
      rejected.push({ raw, reason: err.message });
    }
  }
  versions.sort(compareVersions);
  return { versions, rejected };
}

export function latestVersion(raws: readonly string[]): RecipeVersion | null {
  const { versions } = sortVersions(raws);
  return versions.length === 0 ? null : versions[versions.length - 1];
}

/** The versions an upgrade from `from` to `to` passes through (release notes to read), ascending. */
export function versionsBetween(
  all: readonly RecipeVersion[],
  from: RecipeVersion,
  to: RecipeVersion,
): RecipeVersion[] {
  const byRaw = new Map<string, RecipeVersion>();
  for (const v of all) {
    if (compareVersions(v, from) > 0 && compareVersions(v, to) <= 0) byRaw.set(v.raw, v);
  }
  return [...byRaw.values()].sort(compareVersions);
}

export type BumpKind = "none" | "patch" | "minor" | "recipe-major";

/**
 * The most significant recipe-version component that differs. Direction is ignored on purpose: a
 * downgrade across a recipe major is as risky as an upgrade across one. An upstream-only change with
 * the same recipe version is "none" here; `upstreamMajorChanged` judges the upstream part.
 */
export function bumpKind(from: RecipeVersion, to: RecipeVersion): BumpKind {
  if (from.major !== to.major) return "recipe-major";
  if (from.minor !== to.minor) return "minor";
  if (from.patch !== to.patch) return "patch";
  return "none";
}

/**
 * True when the upstream major differs. When either side has no recognisable major (e.g. `latest`,
 * `stable-2024`), any change of the upstream string counts: with an unknown scheme we cannot tell a
 * breaking upgrade from a harmless one, and the gate must then hold rather than guess.
 */
export function upstreamMajorChanged(from: RecipeVersion, to: RecipeVersion): boolean {
  if (from.upstreamMajor !== null && to.upstreamMajor !== null) {
    return from.upstreamMajor !== to.upstreamMajor;
  }
  return from.upstream !== to.upstream;
}
