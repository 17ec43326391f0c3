import { randomBytes } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import * as path from "node:path";
import { parse as parseYaml, stringify as stringifyYaml } from "yaml";
import { REPO_ROOT } from "./pulumi-project";

export type CatalogueEntries = Record<string, Record<string, unknown> & { test: { command: string[]; timeoutSeconds?: number } }>;

/**
 * A copy of the repository's catalogue for one test, in `dir`: test commands made absolute (they run
 * in the catalogue's directory), the given recipes fetched from the given remotes, no Keycloak
 * canary, and `change` applied to the entries. Returns the file.
 */
export async function catalogueWithSources(dir: string, sources: Record<string, string>, change: (recipes: CatalogueEntries) => void = () => undefined): Promise<string> {
  const catalogue = parseYaml(await readFile(path.join(REPO_ROOT, "catalogue.yaml"), "utf8")) as { recipes: CatalogueEntries; sources: Record<string, string> };
  for (const entry of Object.values(catalogue.recipes)) {
    entry.test.command = entry.test.command.map((part) => (part.startsWith("test/") ? path.join(REPO_ROOT, part) : part));
    // Off unless the test turns it on (`change`): a canary adds a Keycloak boot and a whole run to
    // every upgrade of the warm Keycloak, which the tests of other things should not pay for.
    delete entry.canary;
  }
  for (const [recipe, source] of Object.entries(sources)) {
    if (catalogue.recipes[recipe]) catalogue.recipes[recipe].source = source;
    else catalogue.sources[recipe] = source;
  }
  change(catalogue.recipes);
  const file = path.join(dir, `catalogue-${randomBytes(3).toString("hex")}.yaml`);
  await writeFile(file, stringifyYaml(catalogue));
  return file;
}
