import { readFile } from "node:fs/promises";

/** A secret's value arrives by file (never argv): read, trimmed; an error names the variable or flag, never the content. */
export class SecretFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SecretFileError";
  }
}

export async function readSecretFile(file: string, source: string): Promise<string> {
  let value: string;
  try {
    value = (await readFile(file, "utf8")).trim();
  } catch (error) {
    throw new SecretFileError(`${source}=${file}: cannot read it (${(error as NodeJS.ErrnoException).code ?? "error"})`);
  }
  if (value === "") throw new SecretFileError(`${source}=${file}: the file is empty`);
  return value;
}
