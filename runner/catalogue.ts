import { readFile } from "node:fs/promises";
import * as path from "node:path";
import { parse as parseYaml } from "yaml";
import { Catalogue, CatalogueEntry, catalogueSchema } from "../infra/config";

/**
 * The recipe catalogue file: which recipes the CI tests and how (docs/catalogue.md). Loaded and
 * validated as a whole, so a broken entry is reported before any run of any recipe starts.
 */
export class CatalogueError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CatalogueError";
  }
}

export interface LoadedCatalogue {
  file: string;
  /** Relative test programs and the tests' working directory are this directory. */
  dir: string;
  catalogue: Catalogue;
}

export async function loadCatalogue(file: string): Promise<LoadedCatalogue> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    throw new CatalogueError(`recipe catalogue ${file}: cannot read it (${(error as NodeJS.ErrnoException).code ?? String(error)})`);
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (error) {
    throw new CatalogueError(`recipe catalogue ${file}: not valid YAML: ${(error as Error).message.split("\n")[0]}`);
  }
  const result = catalogueSchema.safeParse(raw);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => {
      const field = issue.code === "unrecognized_keys" ? issue.keys.map((key) => [...issue.path, key].join(".")).join(", ") : issue.path.join(".");
      return `  ${field || "(top level)"}: ${issue.code === "unrecognized_keys" ? "unknown key" : issue.message}`;
    });
    throw new CatalogueError(`recipe catalogue ${file} is invalid:\n${problems.join("\n")}`);
  }
  return { file, dir: path.dirname(path.resolve(file)), catalogue: result.data };
}

export function catalogueEntry(loaded: LoadedCatalogue, recipe: string): CatalogueEntry {
  const entry = loaded.catalogue.recipes[recipe];
  if (entry) return entry;
  const known = Object.keys(loaded.catalogue.recipes).sort();
  throw new CatalogueError(`--recipe: unknown recipe ${recipe}: it is not in the catalogue ${loaded.file} (known: ${known.length > 0 ? known.join(", ") : "none"})`);
}
