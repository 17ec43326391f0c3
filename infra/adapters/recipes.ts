import { existsSync } from "node:fs";
import { mkdir, rename, rm } from "node:fs/promises";
import * as path from "node:path";
import { execa } from "execa";
import { isVersion, parseVersion, sortVersions, RecipeVersion } from "../versions";

/**
 * A recipe is a git repository whose released versions are annotated tags X.Y.Z+UPSTREAM; abra's
 * lint refuses lightweight tags, so they are reported and never taken as releases.
 */
export class RecipeError extends Error {
  constructor(
    readonly recipeDir: string,
    message: string,
  ) {
    super(`recipe ${recipeDir}: ${message}`);
    this.name = "RecipeError";
  }
}

async function git(recipeDir: string, args: readonly string[]): Promise<string> {
  const result = await execa("git", ["-C", recipeDir, ...args], { reject: false, timeout: 60_000 });
  if (result.exitCode !== 0) {
    throw new RecipeError(recipeDir, `git ${args[0]} failed: ${[result.stderr, result.stdout].filter(Boolean).join("\n")}`);
  }
  return result.stdout;
}

export interface ReleasedVersions {
  versions: RecipeVersion[];
  /** Tags that are not releases: malformed names and lightweight tags, with the reason. */
  rejected: { tag: string; reason: string }[];
}

export async function releasedVersions(recipeDir: string): Promise<ReleasedVersions> {
  // `%(tag)` is the name inside the tag object. A lightweight tag made from another tag's name
  // (`git tag 9.9.9+1 2.0.0+26.7.3`) points at that tag object, so its object type alone says
  // "annotated" while deploying it would deploy 2.0.0's tree. `lstrip=2` rather than `short`: short
  // names grow a `tags/` prefix when a branch has the same name.
  const output = await git(recipeDir, ["for-each-ref", "refs/tags", "--format=%(objecttype)%00%(refname:lstrip=2)%00%(tag)"]);
  const annotated: string[] = [];
  const rejected: { tag: string; reason: string }[] = [];
  for (const line of output.split("\n").filter(Boolean)) {
    const [objectType, tag, objectName] = line.split("\0", 3) as [string, string, string];
    if (objectType !== "tag") rejected.push({ tag, reason: "lightweight tag (releases are annotated tags)" });
    else if (objectName !== tag) {
      rejected.push({ tag, reason: `points at the annotated tag ${JSON.stringify(objectName)}, not at its own (a lightweight tag)` });
    } else annotated.push(tag);
  }
  const sorted = sortVersions(annotated);
  return { versions: sorted.versions, rejected: [...rejected, ...sorted.rejected.map(({ raw, reason }) => ({ tag: raw, reason }))] };
}

const COMMIT = /^[0-9a-f]{7,40}$/;

/** A ref given to a deploy: a released version's tag or a commit, nothing a shell could misread. */
export function isCommitRef(ref: string): boolean {
  return COMMIT.test(ref);
}

export async function readFileAt(recipeDir: string, ref: string, path: string): Promise<string> {
  return git(recipeDir, ["show", `${ref}:${path}`]);
}

export async function fileExistsAt(recipeDir: string, ref: string, path: string): Promise<boolean> {
  const result = await execa("git", ["-C", recipeDir, "cat-file", "-e", `${ref}:${path}`], { reject: false, timeout: 30_000 });
  return result.exitCode === 0;
}

export async function resolveCommit(recipeDir: string, ref: string): Promise<string> {
  return (await git(recipeDir, ["rev-parse", "--verify", "--quiet", `${ref}^{commit}`])).trim();
}

/** Exports the tree at ref into dest (an empty directory): what `git archive | tar -x` gives. */
export async function exportTree(recipeDir: string, ref: string, dest: string): Promise<void> {
  await resolveCommit(recipeDir, ref);
  await execa("git", ["-C", recipeDir, "archive", "--format=tar", ref], { timeout: 60_000 }).pipe("tar", ["-x", "-C", dest], {
    timeout: 60_000,
  });
}

// Refs are passed to git as `<ref>:<path>`; one starting with `-` would be read as an option.
function assertRef(recipeDir: string, ref: string): void {
  if (typeof ref !== "string" || ref === "" || ref.startsWith("-")) {
    throw new RecipeError(recipeDir, `${JSON.stringify(ref)} is not a git ref`);
  }
}

async function readIfExists(recipeDir: string, ref: string, path: string): Promise<string | undefined> {
  if (!(await fileExistsAt(recipeDir, ref, path))) return undefined;
  return readFileAt(recipeDir, ref, path);
}

/** The release notes of `version` as the tree at `ref` has them (Co-op Cloud: `release/<version>`). */
export async function releaseNotes(recipeDir: string, ref: string, version: string): Promise<string | undefined> {
  assertRef(recipeDir, ref);
  // The version names a file (and, below, a tag): only a well-formed one may, so `../x` cannot reach
  // outside `release/`.
  parseVersion(version, "version");
  return readIfExists(recipeDir, ref, `release/${version}`);
}

/** The `.env.sample` that `version` shipped, read from its own tag. */
export async function envSampleAt(recipeDir: string, version: string): Promise<string | undefined> {
  parseVersion(version, "version");
  return readIfExists(recipeDir, `refs/tags/${version}`, ".env.sample");
}

export interface GateInputs {
  notes: Record<string, string | undefined>;
  envSamples: Record<string, string | undefined>;
}

/**
 * What the gate reads for each candidate, each from the candidate's own tag: the notes and the sample
 * a version was released with are what it will run with, whatever later commits say. Malformed
 * candidates are skipped: the gate ignores them (with a warning) and never looks them up.
 */
export async function gateInputsFor(recipeDir: string, candidates: readonly string[]): Promise<GateInputs> {
  // Null-prototype records: keys come from tag names, which must not reach Object.prototype.
  const notes: Record<string, string | undefined> = Object.create(null);
  const envSamples: Record<string, string | undefined> = Object.create(null);
  // One version at a time: a recipe has tens of tags, and a burst of git processes per app buys little.
  for (const version of new Set(candidates)) {
    if (!isVersion(version)) continue;
    notes[version] = await releaseNotes(recipeDir, `refs/tags/${version}`, version);
    envSamples[version] = await envSampleAt(recipeDir, version);
  }
  return { notes, envSamples };
}

/** How git reaches a recipe's remote: credentials only ever from a file git's store helper reads. */
export interface RemoteAccess {
  /** Every fetch and clone is bounded by it. */
  timeoutMs: number;
  /** A git-credential-store file (`https://user:token@host` lines); its path is all that reaches argv. */
  credentialsFile?: string;
}

/** Git's own options for a remote: no prompt (a private remote without credentials fails instead of waiting), the store file if given. */
function remoteArgs(access: RemoteAccess): string[] {
  return access.credentialsFile ? ["-c", "credential.helper=", "-c", `credential.helper=store --file=${access.credentialsFile}`] : [];
}

/**
 * git talking to a remote, bounded by the deadline. git hands the transfer to a helper process
 * (git-remote-http, ssh) that holds the output open, so at the deadline the whole process group ends.
 */
async function gitRemote(cwd: string, args: readonly string[], access: RemoteAccess, what: string): Promise<void> {
  const child = execa("git", [...remoteArgs(access), ...args], {
    cwd,
    reject: false,
    detached: true,
    stdin: "ignore",
    env: { GIT_TERMINAL_PROMPT: "0", GIT_ASKPASS: "/bin/false", SSH_ASKPASS: "/bin/false" },
  });
  let timedOut = false;
  const deadline = setTimeout(() => {
    timedOut = true;
    try {
      process.kill(-child.pid!, "SIGKILL");
    } catch {
      // It ended just now.
    }
  }, access.timeoutMs);
  const result = await child.finally(() => clearTimeout(deadline));
  if (timedOut) throw new RecipeError(cwd, `${what}: no answer within ${Math.round(access.timeoutMs / 1000)}s`);
  if (result.exitCode !== 0) throw new RecipeError(cwd, `${what}: ${[result.stderr, result.stdout].filter(Boolean).join("\n").trim().split("\n").slice(-3).join(" ") || `git exited ${result.exitCode}`}`);
}

/**
 * Makes `recipeDir` a checkout with all the branches and tags its remote has now: a clone of `source`
 * when there is none yet, else a fetch from `source` (which becomes its origin) or, without one, from
 * the origin it has. A first clone goes to a temporary directory and is renamed into place only once
 * complete; a fetch moves refs only after their objects arrived. So a remote that fails or hangs
 * half-way leaves the checkout as it was, never half-fetched.
 */
export async function syncCheckout(recipeDir: string, source: string | undefined, fallbackSource: string, access: RemoteAccess): Promise<{ outcome: "cloned" | "fetched"; remote: string }> {
  for (const remote of [source, fallbackSource]) {
    if (remote?.startsWith("-")) throw new RecipeError(recipeDir, `${JSON.stringify(remote)} is not a git remote`);
  }
  const parent = path.dirname(recipeDir);
  await mkdir(parent, { recursive: true });
  if (!existsSync(path.join(recipeDir, ".git"))) {
    source ??= fallbackSource;
    const partial = `${recipeDir}.partial-${process.pid}`;
    await rm(partial, { recursive: true, force: true });
    try {
      await gitRemote(parent, ["clone", "-q", "--", source, partial], access, `clone ${source}`);
      await rename(partial, recipeDir);
    } finally {
      await rm(partial, { recursive: true, force: true });
    }
    return { outcome: "cloned", remote: source };
  }
  if (source !== undefined) await gitRemote(recipeDir, ["remote", "set-url", "origin", source], { timeoutMs: 30_000 }, "set its remote");
  const origin = source ?? (await git(recipeDir, ["remote", "get-url", "origin"])).trim();
  await gitRemote(recipeDir, ["fetch", "-q", "--prune", "--prune-tags", "--force", "--tags", "origin", "+refs/heads/*:refs/remotes/origin/*"], access, `fetch ${origin}`);
  return { outcome: "fetched", remote: origin };
}

/** Fetches `refspec` (e.g. refs/pull/7/head) from `remote` into the checkout, then returns whether `commit` is there. */
export async function fetchCommit(recipeDir: string, remote: string, refspec: string, commit: string, access: RemoteAccess): Promise<boolean> {
  if (remote.startsWith("-") || refspec.startsWith("-")) throw new RecipeError(recipeDir, `${JSON.stringify(remote)} ${JSON.stringify(refspec)} is not a remote and refspec`);
  // git takes a glob only with a destination: the branches land in a namespace of their own, never over the checkout's.
  const destined = refspec.includes("*") ? `+${refspec}:refs/warmstack/fetched/${refspec.replace(/^refs\//, "")}` : refspec;
  await gitRemote(recipeDir, ["fetch", "-q", "--", remote, destined], access, `fetch ${refspec} from ${remote}`);
  return resolveCommit(recipeDir, commit).then(
    () => true,
    () => false,
  );
}
