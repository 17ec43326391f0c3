import { existsSync } from "node:fs";
import * as path from "node:path";
import { fetchCommit, RemoteAccess, resolveCommit, syncCheckout } from "../infra/adapters/recipes";
import { Catalogue, catalogueSourceOf, coopCloudSource } from "../infra/config";
import { UsageError } from "./context";

/**
 * A run's own recipe checkouts, so concurrent runs never share one: each is cloned from the warm
 * stack's checkout when there is one (local, fetched before every warm operation), else from the
 * recipe's remote. The PR head is then fetched from where it lives — the PR's own repository for a
 * fork, else the recipe remote's `refs/pull/<pr>/head`, else the remote's branches — so a commit that
 * exists only on the PR's branch is tested, and one the remote does not have is refused up front.
 */
export interface PrHead {
  /** The commit to test. */
  ref: string;
  pr?: number;
  /** The PR's head repository, for a PR from a fork. */
  repo?: string;
}

export function remoteOf(catalogue: Catalogue, recipe: string): string {
  return catalogueSourceOf(catalogue, recipe) ?? coopCloudSource(recipe);
}

export async function cloneForRun(abraDir: string, warmAbraDir: string, catalogue: Catalogue, recipe: string, access: RemoteAccess): Promise<string> {
  const dir = path.join(abraDir, "recipes", recipe);
  const warmCheckout = path.join(warmAbraDir, "recipes", recipe);
  await syncCheckout(dir, undefined, existsSync(path.join(warmCheckout, ".git")) ? warmCheckout : remoteOf(catalogue, recipe), access);
  return dir;
}

/** Where the PR head is fetched from, and which refs. */
function headLocation(catalogue: Catalogue, recipe: string, head: PrHead): { remote: string; refspec: string } {
  if (head.repo) return { remote: head.repo, refspec: "refs/heads/*" };
  const remote = remoteOf(catalogue, recipe);
  return head.pr === undefined ? { remote, refspec: "refs/heads/*" } : { remote, refspec: `refs/pull/${head.pr}/head` };
}

/** Makes sure the checkout has the PR head: fetched when it is not there yet; refused when the remote does not have it either. */
export async function ensureHead(checkout: string, catalogue: Catalogue, recipe: string, head: PrHead, access: RemoteAccess): Promise<void> {
  if (await resolveCommit(checkout, head.ref).then(() => true, () => false)) return;
  const { remote, refspec } = headLocation(catalogue, recipe, head);
  let found: boolean;
  try {
    found = await fetchCommit(checkout, remote, refspec, head.ref, access);
  } catch (error) {
    throw new UsageError(`--ref: ${head.ref} could not be fetched from ${remote} (${refspec}): ${error instanceof Error ? error.message : String(error)}`);
  }
  if (!found) throw new UsageError(`--ref: ${head.ref} is not a commit of recipe ${recipe}: ${remote} (${refspec}) does not have it`);
}
