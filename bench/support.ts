// What every benchmark shares: its flags, timing, percentiles, and a report as a Markdown table on
// stdout and as JSON (`--json <file>`), each figure beside its floor and their ratio.
import { writeFile } from "node:fs/promises";

export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) throw new Error("no samples");
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

export const median = (values: readonly number[]) => percentile(values, 50);

/** A whole-number flag (`--rounds 3`) between 1 and max; the fallback when it is not given. */
export function numberFlag(name: string, fallback: number, max: number, argv: readonly string[] = process.argv): number {
  const at = argv.indexOf(name);
  const value = at === -1 ? fallback : Number(argv[at + 1]);
  if (!Number.isInteger(value) || value < 1 || value > max) throw new Error(`${name}: must be a whole number from 1 to ${max}`);
  return value;
}

export function booleanFlag(name: string, argv: readonly string[] = process.argv): boolean {
  return argv.includes(name);
}

export function stringFlag(name: string, argv: readonly string[] = process.argv): string | undefined {
  const at = argv.indexOf(name);
  if (at === -1) return undefined;
  const value = argv[at + 1];
  if (value === undefined || value.startsWith("--")) throw new Error(`${name}: needs a value`);
  return value;
}

/** Milliseconds `work` took. */
export async function timed(work: () => Promise<unknown>): Promise<number> {
  const started = process.hrtime.bigint();
  await work();
  return Number(process.hrtime.bigint() - started) / 1e6;
}

/** One figure: what warmstack does against the bare operation it wraps, each as its samples' median. */
export interface Comparison {
  what: string;
  /** The mechanism, in ms per sample. */
  samples: number[];
  /** The floor, in ms per sample, measured alternately with the mechanism. */
  floorSamples: number[];
  floor: string;
  /** The ratio the issue sets as the goal, for the reader; nothing asserts it. */
  goal?: number;
}

/** What a bench reports beside its comparisons: more Markdown after the table, more fields in the JSON. */
export interface Extras {
  markdown?: string[];
  data?: Record<string, unknown>;
}

export async function report(title: string, comparisons: readonly Comparison[], extras: Extras = {}, jsonFile = stringFlag("--json")): Promise<void> {
  const rows = comparisons.map((comparison) => {
    const value = median(comparison.samples);
    const floor = median(comparison.floorSamples);
    return { ...comparison, medianMs: value, floorMedianMs: floor, ratio: value / floor };
  });
  const lines = [`## ${title}`, "", "| what | median | floor | floor median | ratio | goal |", "| --- | ---: | --- | ---: | ---: | ---: |"];
  for (const row of rows) {
    lines.push(`| ${row.what} | ${(row.medianMs / 1000).toFixed(2)} s | ${row.floor} | ${(row.floorMedianMs / 1000).toFixed(2)} s | ${row.ratio.toFixed(2)}× | ${row.goal === undefined ? "" : `≤ ${row.goal}×`} |`);
  }
  console.log([...lines, ...(extras.markdown ? ["", ...extras.markdown] : [])].join("\n"));
  if (jsonFile) await writeFile(jsonFile, `${JSON.stringify({ title, at: new Date().toISOString(), rows, ...extras.data }, null, 2)}\n`);
}
