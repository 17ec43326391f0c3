// The app `.env` file (`$ABRA_DIR/servers/<server>/<domain>.env`), edited as a list of lines so that an
// operator's comments, blank lines, order and optional `#KEY=value` hints survive every edit. Editing by
// string concatenation once glued a new key onto a last line that had no newline; here every line is
// its own element and the newline is added on output.
import { readFile } from "node:fs/promises";
import { writeFileAtomic } from "./atomic-file";

const KEY_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/;
// `[ \t]*` before the key and an `export ` prefix are what `source .env` accepts; a space before `=`
// is not (the shell would run KEY as a command), so it is refused rather than guessed at.
// The `s` flags: lines of a CRLF file end in a CR, which `.` would not match.
const ASSIGNMENT = /^([ \t]*(?:export[ \t]+)?)([^=]*)=(.*)$/s;
const COMMENTED_ASSIGNMENT = /^[ \t]*#[ \t]*(?:export[ \t]+)?([A-Za-z_][A-Za-z0-9_]*)=/;
const BARE_VALUE = /^[A-Za-z0-9_./:,@+%=-]*$/;
// After a closing quote only whitespace and an optional comment may follow.
const AFTER_QUOTE = /^\s*(?:#.*)?$/s;
const KEY_PROBLEM = "is not a valid key (letters, digits and '_', not starting with a digit)";

export class EnvParseError extends Error {
  readonly source: string;
  readonly line: number;

  constructor(source: string, line: number, problem: string) {
    super(`${source}:${line}: ${problem}`);
    this.name = "EnvParseError";
    this.source = source;
    this.line = line;
  }
}

/** A key or value that cannot be written to an env file. Never quotes the value: it may be a secret. */
export class EnvValueError extends Error {
  readonly key: string;

  constructor(key: string, problem: string) {
    super(`${JSON.stringify(key)}: ${problem}`);
    this.name = "EnvValueError";
    this.key = key;
  }
}

type Line =
  | { kind: "verbatim"; text: string }
  // `lead` (indentation, `export `) and `trail` (inline comment, a CR of a CRLF file) are kept when
  // the value is replaced, so an edit changes nothing but the value.
  | { kind: "entry"; text: string; key: string; value: string; lead: string; trail: string };

type Entry = Extract<Line, { kind: "entry" }>;

interface ParsedValue {
  value: string;
  trail: string;
}

// The escapes `encodeValue` writes, plus `\n` that other writers use.
const DOUBLE_QUOTE_ESCAPES = new Map([
  ['"', '"'],
  ["\\", "\\"],
  ["$", "$"],
  ["`", "`"],
  ["n", "\n"],
]);

function parseDoubleQuoted(body: string): ParsedValue | null {
  let value = "";
  for (let i = 1; i < body.length; i++) {
    const c = body[i];
    if (c === '"') return { value, trail: body.slice(i + 1) };
    const escaped = c === "\\" ? DOUBLE_QUOTE_ESCAPES.get(body[i + 1]) : undefined;
    if (escaped !== undefined) {
      value += escaped;
      i++;
    } else {
      // Like the shell, a backslash before any other character stays a backslash.
      value += c;
    }
  }
  return null;
}

// Single quotes are literal: no escapes at all, as in the shell.
function parseSingleQuoted(body: string): ParsedValue | null {
  const close = body.indexOf("'", 1);
  return close < 0 ? null : { value: body.slice(1, close), trail: body.slice(close + 1) };
}

/** Parses what follows `=`; returns a problem (never quoting the value, which may be a secret). */
function parseValue(rest: string, key: string): ParsedValue | string {
  const indent = rest.length - rest.trimStart().length;
  const body = rest.slice(indent);
  if (body.startsWith('"') || body.startsWith("'")) {
    const parsed = body[0] === '"' ? parseDoubleQuoted(body) : parseSingleQuoted(body);
    if (parsed === null) return `unterminated quote in the value of ${key}`;
    if (!AFTER_QUOTE.test(parsed.trail)) return `unexpected text after the closing quote of ${key}`;
    return parsed;
  }
  // `#` opens a comment only after whitespace, so `PASS=a#b` keeps its `#` and `KEY= # x` is empty.
  const hash = rest.search(/\s#/);
  const value = (hash < 0 ? rest : rest.slice(0, hash)).trim();
  return { value, trail: rest.slice(value === "" ? 0 : indent + value.length) };
}

function parseLine(text: string, source: string, lineNo: number): Line {
  const trimmed = text.trim();
  if (trimmed === "" || trimmed.startsWith("#")) return { kind: "verbatim", text };
  const m = ASSIGNMENT.exec(text);
  if (m === null) throw new EnvParseError(source, lineNo, "expected KEY=value");
  const [, lead, key, rest] = m;
  if (!KEY_PATTERN.test(key)) {
    // The key is shown (it is a name, not a secret) but the value never is.
    throw new EnvParseError(source, lineNo, `${JSON.stringify(key)} ${KEY_PROBLEM}`);
  }
  const parsed = parseValue(rest, key);
  if (typeof parsed === "string") throw new EnvParseError(source, lineNo, parsed);
  return { kind: "entry", text, key, value: parsed.value, lead, trail: parsed.trail };
}

function assertKey(key: string): void {
  if (typeof key !== "string" || !KEY_PATTERN.test(key)) {
    throw new EnvValueError(String(key), KEY_PROBLEM);
  }
}

/** The value as it is written after `=`: bare when nothing in it is special to a shell, else double-quoted. */
export function encodeValue(key: string, value: string): string {
  if (typeof value !== "string") throw new EnvValueError(key, "value must be a string");
  // Env files are line based; NUL cannot live in a shell variable at all.
  if (/[\n\r\0]/.test(value)) {
    throw new EnvValueError(key, "value contains a line break or NUL, which an env file cannot hold");
  }
  if (BARE_VALUE.test(value)) return value;
  return `"${value.replace(/[\\"$`]/g, (c) => `\\${c}`)}"`;
}

export class EnvFile {
  private lines: Line[];

  private constructor(lines: Line[]) {
    this.lines = lines;
  }

  static parse(text: string, source = "<env>"): EnvFile {
    if (text === "") return new EnvFile([]);
    const raw = text.split("\n");
    // A final newline terminates the last line; it does not start an empty one.
    if (text.endsWith("\n")) raw.pop();
    return new EnvFile(raw.map((line, i) => parseLine(line, source, i + 1)));
  }

  private entries(): Entry[] {
    return this.lines.filter((l): l is Entry => l.kind === "entry");
  }

  /** The last assignment wins, as when the shell sources the file. */
  get(key: string): string | undefined {
    let found: string | undefined;
    for (const e of this.entries()) if (e.key === key) found = e.value;
    return found;
  }

  has(key: string): boolean {
    return this.entries().some((e) => e.key === key);
  }

  /**
   * Replaces the value where the shell would read it (the last occurrence) and drops earlier
   * duplicates, which would otherwise mislead a reader; appends a new line when the key is absent.
   */
  set(key: string, value: string): this {
    assertKey(key);
    const encoded = encodeValue(key, value);
    let last = -1;
    this.lines.forEach((l, i) => {
      if (l.kind === "entry" && l.key === key) last = i;
    });
    if (last < 0) {
      this.lines.push({ kind: "entry", text: `${key}=${encoded}`, key, value, lead: "", trail: "" });
      return this;
    }
    const old = this.lines[last] as Entry;
    const updated: Entry = { ...old, value, text: `${old.lead}${key}=${encoded}${old.trail}` };
    this.lines = this.lines.flatMap((l, i) =>
      i === last ? [updated] : l.kind === "entry" && l.key === key ? [] : [l],
    );
    return this;
  }

  /** Removes every assignment of `key`; commented hints stay. Returns whether anything was removed. */
  delete(key: string): boolean {
    const before = this.lines.length;
    this.lines = this.lines.filter((l) => !(l.kind === "entry" && l.key === key));
    return this.lines.length !== before;
  }

  /** Assigned keys, once each, in order of first appearance. */
  keys(): string[] {
    return [...new Set(this.entries().map((e) => e.key))];
  }

  toObject(): Record<string, string> {
    // fromEntries defines own properties, so a key named `__proto__` stays an ordinary key.
    return Object.fromEntries(this.keys().map((k) => [k, this.get(k) as string]));
  }

  /** Keys present only as `#KEY=value` hints: the optional settings of a recipe's `.env.sample`. */
  commentedKeys(): string[] {
    const assigned = new Set(this.keys());
    const hinted = new Set<string>();
    for (const l of this.lines) {
      if (l.kind !== "verbatim") continue;
      const m = COMMENTED_ASSIGNMENT.exec(l.text);
      if (m !== null && !assigned.has(m[1])) hinted.add(m[1]);
    }
    return [...hinted];
  }

  /** Unchanged lines come back byte for byte; every line, the last included, ends with `\n`. */
  toString(): string {
    return this.lines.map((l) => `${l.text}\n`).join("");
  }
}

export async function readEnvFile(path: string): Promise<EnvFile> {
  return EnvFile.parse(await readFile(path, "utf8"), path);
}

/**
 * Replaces the file atomically: a reader (or a crash) sees the old file or the new one, never half of
 * one. Mode 0600 because app env files can hold credentials.
 */
export async function writeEnvFile(path: string, env: EnvFile): Promise<void> {
  await writeFileAtomic(path, env.toString());
}
