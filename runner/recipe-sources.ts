import * as path from "node:path";
import { RemoteAccess, syncCheckout } from "../infra/adapters/recipes";
import { Catalogue, catalogueSourceOf, coopCloudSource } from "../infra/config";
import type { RunnerContext } from "./context";
import type { Progress } from "./progress";

/**
 * Recipe checkouts kept as their remotes have them: before the warm stack plans anything, every recipe
 * it deploys is fetched (tags included), so a new release is seen. A remote that cannot be reached
 * keeps the checkout it has: the plan is made from that, and the fetch's failure is reported.
 */
export interface RecipeFetch {
  recipe: string;
  /** The remote fetched from: the catalogue's source, else the checkout's origin (or Co-op Cloud's for a first clone). */
  source: string;
  outcome: "cloned" | "fetched" | "failed";
  /** Why it failed. */
  detail?: string;
}

export function remoteAccess(context: RunnerContext): RemoteAccess {
  return { timeoutMs: Number(context.defaults.gitTimeoutSeconds.value) * 1000, credentialsFile: context.defaults.gitCredentialsFile?.value };
}

export async function syncRecipes(context: RunnerContext, catalogue: Catalogue, abraDir: string, recipes: readonly string[], progress: Progress): Promise<RecipeFetch[]> {
  const access = remoteAccess(context);
  const fetches: RecipeFetch[] = [];
  for (const recipe of [...new Set(recipes)].sort()) {
    const explicit = catalogueSourceOf(catalogue, recipe);
    const source = explicit ?? `the origin of ${recipe}'s checkout`;
    try {
      const { outcome, remote } = await syncCheckout(path.join(abraDir, "recipes", recipe), explicit, coopCloudSource(recipe), access);
      fetches.push({ recipe, source: remote, outcome });
    } catch (error) {
      const detail = error instanceof Error ? error.message : String(error);
      progress.say(`recipe ${recipe}: fetching from ${source} failed; planning with the checkout it has (${detail})`);
      fetches.push({ recipe, source, outcome: "failed", detail });
    }
  }
  return fetches;
}
