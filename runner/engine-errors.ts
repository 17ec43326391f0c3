import { CommandError, ConcurrentUpdateError, StackNotFoundError } from "@pulumi/pulumi/automation";

/**
 * What went wrong in an engine operation, read once from the Automation API's error: its class says
 * what kind of failure it is, and the engine's own diagnostic says why. Everything the runner reports
 * about a failed preview, up, refresh or destroy goes through here.
 */
export interface EngineFailure {
  /** locked: another operation holds the stack's lock (or a killed one left it). */
  kind: "locked" | "no-stack" | "failed";
  /** One line for the operator: the engine's diagnostic, or the lock and its owner. */
  reason: string;
}

function textOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** A CommandError's message is the whole command result; what the CLI said is its stderr. */
function saidOf(error: unknown, text: string): string {
  if (!(error instanceof CommandError)) return text;
  return /\n stderr: ([\s\S]*?)\n err\?:/.exec(text)?.[1] ?? text;
}

/** The engine's diagnostics, most telling first: its generic "update failed" says nothing. */
function diagnostics(text: string): string[] {
  return [...text.matchAll(/^\s*error: (.+)$/gm)].map((match) => match[1]!.trim()).filter((line) => line !== "update failed");
}

/** The lock line and the two after it: which lock file, and which process owns it. */
function lockLines(text: string): string {
  const lines = text.split("\n").map((line) => line.trim());
  const start = lines.findIndex((line) => /currently locked/.test(line));
  return start < 0 ? "" : lines.slice(start, start + 3).filter(Boolean).join(" ");
}

export function engineFailure(error: unknown): EngineFailure {
  const text = textOf(error);
  const firstLine = saidOf(error, text).split("\n").find((line) => line.trim())?.trim() ?? "the engine failed";
  const reason = (kind: EngineFailure["kind"], line: string): EngineFailure => ({ kind, reason: line });
  if (error instanceof ConcurrentUpdateError) return reason("locked", lockLines(text) || diagnostics(text)[0] || firstLine);
  if (error instanceof StackNotFoundError) return reason("no-stack", diagnostics(text)[0] ?? firstLine);
  return reason("failed", diagnostics(text)[0] ?? firstLine);
}
