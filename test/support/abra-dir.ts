import { mkdtemp, mkdir, rm } from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import { execa } from "execa";
import { bed } from "./bed";
import { CatalogueEntries, catalogueWithSources } from "./catalogues";

/**
 * A fresh $ABRA_DIR per test with its own clones of the fixture recipes, each cloned from a remote of
 * the test's own (a bare copy of the bed's repository). The test decides what the remote has released
 * — trimming tags makes a broken version the latest, bringing tags back makes a new release — and
 * warmstack, which fetches every recipe from its remote before it plans, sees exactly that.
 */
export class AbraDir {
  private constructor(
    readonly root: string,
    readonly recipes: readonly string[],
  ) {}

  static async create(recipes: readonly string[]): Promise<AbraDir> {
    const root = await mkdtemp(path.join(os.tmpdir(), "warmstack-abra-"));
    await mkdir(path.join(root, "recipes"));
    await mkdir(path.join(root, "remotes"));
    const abra = new AbraDir(root, recipes);
    for (const recipe of recipes) {
      await execa("git", ["clone", "-q", "--bare", path.join(bed().recipes, recipe), abra.remote(recipe)]);
      await execa("git", ["clone", "-q", abra.remote(recipe), abra.recipeDir(recipe)]);
    }
    return abra;
  }

  recipeDir(recipe: string): string {
    return path.join(this.root, "recipes", recipe);
  }

  /** The recipe's remote, as the test's catalogue names it. */
  remote(recipe: string): string {
    return path.join(this.root, "remotes", `${recipe}.git`);
  }

  /** Deletes every tag of the recipe except those listed, in its remote and its checkout. */
  async keepOnlyTags(recipe: string, keep: readonly string[]): Promise<void> {
    for (const repo of [this.remote(recipe), this.recipeDir(recipe)]) {
      const { stdout } = await execa("git", ["-C", repo, "tag"]);
      const drop = stdout.split("\n").filter((tag) => tag && !keep.includes(tag));
      if (drop.length) await execa("git", ["-C", repo, "tag", "-d", ...drop]);
    }
  }

  /** Brings tags back from the bed's repository: a new release appears on the remote (and in the checkout). */
  async releaseTags(recipe: string, tags: readonly string[]): Promise<void> {
    for (const repo of [this.remote(recipe), this.recipeDir(recipe)]) {
      for (const tag of tags) {
        await execa("git", ["-C", repo, "fetch", "-q", "--no-tags", path.join(bed().recipes, recipe), `refs/tags/${tag}:refs/tags/${tag}`]);
      }
    }
  }

  /**
   * The repository's catalogue with every recipe of this ABRA_DIR fetched from the test's own remote
   * (the others from the bed's Gitea, as the repository's catalogue has them).
   */
  catalogue(change?: (recipes: CatalogueEntries) => void): Promise<string> {
    return catalogueWithSources(this.root, Object.fromEntries(this.recipes.map((recipe) => [recipe, this.remote(recipe)])), change);
  }

  async dispose(): Promise<void> {
    await rm(this.root, { recursive: true, force: true });
  }
}
