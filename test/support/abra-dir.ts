import { mkdtemp, mkdir, rm } from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import { execa } from "execa";
import { bed } from "./bed";

/**
 * A fresh $ABRA_DIR per test with its own clones of the fixture recipes, so a test can trim a
 * recipe's tags (to make a broken version the latest) without touching another test's.
 */
export class AbraDir {
  private constructor(readonly root: string) {}

  static async create(recipes: readonly string[]): Promise<AbraDir> {
    const root = await mkdtemp(path.join(os.tmpdir(), "warmstack-abra-"));
    await mkdir(path.join(root, "recipes"));
    for (const recipe of recipes) {
      await execa("git", ["clone", "-q", path.join(bed().recipes, recipe), path.join(root, "recipes", recipe)]);
    }
    return new AbraDir(root);
  }

  recipeDir(recipe: string): string {
    return path.join(this.root, "recipes", recipe);
  }

  /** Deletes every tag of the recipe except those listed. */
  async keepOnlyTags(recipe: string, keep: readonly string[]): Promise<void> {
    const { stdout } = await execa("git", ["-C", this.recipeDir(recipe), "tag"]);
    const drop = stdout.split("\n").filter((tag) => tag && !keep.includes(tag));
    if (drop.length) await execa("git", ["-C", this.recipeDir(recipe), "tag", "-d", ...drop]);
  }

  /** Brings tags back from the bed's repository: a new release appears. */
  async releaseTags(recipe: string, tags: readonly string[]): Promise<void> {
    for (const tag of tags) {
      await execa("git", ["-C", this.recipeDir(recipe), "fetch", "-q", "--no-tags", "origin", `refs/tags/${tag}:refs/tags/${tag}`]);
    }
  }

  async dispose(): Promise<void> {
    await rm(this.root, { recursive: true, force: true });
  }
}
