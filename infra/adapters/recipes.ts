import { execa } from "execa";
import { sortVersions, RecipeVersion } from "../versions";

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
  const output = await git(recipeDir, ["for-each-ref", "refs/tags", "--format=%(objecttype) %(refname:short)"]);
  const annotated: string[] = [];
  const rejected: { tag: string; reason: string }[] = [];
  for (const line of output.split("\n").filter(Boolean)) {
    const [objectType, tag] = line.split(" ", 2) as [string, string];
    if (objectType === "tag") annotated.push(tag);
    else rejected.push({ tag, reason: "lightweight tag (releases are annotated tags)" });
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
