import { Command } from "commander";
import { z } from "zod";
import { RunnerContext, Sourced, UsageError } from "./context";

/**
 * A command's options, declared once: the key is the option's name (camelCase; the flag is its
 * kebab-case), the schema its type and its check, and the declaration also gives its argument, help
 * text and fallback. Commander's options, the parsed values' type and the flag names in error
 * messages all come from it.
 */
export interface OptionSpec<S extends z.ZodType> {
  schema: S;
  description: string;
  /** The flag's argument as help shows it, e.g. "<recipe>" or "<apps...>"; none for a switch. */
  argument?: string;
  /** Shown in help as the default. */
  defaultText?: string;
  /** Used when the flag is absent: a default of the context (with its source) or a plain value. */
  fallback?: (context: RunnerContext) => Sourced<unknown> | unknown;
}

export type OptionSpecs = Record<string, OptionSpec<z.ZodType>>;
export type OptionValues<O extends OptionSpecs> = { [K in keyof O]: z.output<O[K]["schema"]> };

export function option<S extends z.ZodType>(spec: OptionSpec<S>): OptionSpec<S> {
  return spec;
}

/** A whole number in a range, with its default: counts, seconds, days. */
export function wholeNumber(spec: { argument: string; description: string; min: number; max: number; fallback: number }) {
  return option({
    schema: z.coerce.number().int().min(spec.min).max(spec.max),
    argument: spec.argument,
    description: spec.description,
    defaultText: String(spec.fallback),
    fallback: () => String(spec.fallback),
  });
}

export function flagOf(name: string): string {
  return `--${name.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`)}`;
}

export function addOptions(command: Command, specs: OptionSpecs): Command {
  for (const [name, spec] of Object.entries(specs)) {
    const flags = spec.argument ? `${flagOf(name)} ${spec.argument}` : flagOf(name);
    const description = spec.defaultText ? `${spec.description} (default: ${spec.defaultText})` : spec.description;
    command.option(flags, description);
  }
  return command;
}

function isSourced(value: unknown): value is Sourced<unknown> {
  return typeof value === "object" && value !== null && "value" in value && "from" in value;
}

/** Where each option's value came from: its flag, or the variable its fallback read. */
export type OptionSources<O extends OptionSpecs> = { [K in keyof O]: string };

/** Parses every option; one error names each bad value by where it came from (flag, variable or default). */
export function parseOptions<O extends OptionSpecs>(specs: O, given: Record<string, unknown>, context: RunnerContext): OptionValues<O> {
  return parseOptionsWithSources(specs, given, context).values;
}

export function parseOptionsWithSources<O extends OptionSpecs>(specs: O, given: Record<string, unknown>, context: RunnerContext): { values: OptionValues<O>; sources: OptionSources<O> } {
  const values: Record<string, unknown> = {};
  const sources: Record<string, string> = {};
  const problems: string[] = [];
  for (const [name, spec] of Object.entries(specs)) {
    let raw: unknown = given[name];
    let from = flagOf(name);
    if (raw === undefined && spec.fallback) {
      const fallback = spec.fallback(context);
      raw = isSourced(fallback) ? fallback.value : fallback;
      from = isSourced(fallback) && fallback.from !== "default" ? fallback.from : flagOf(name);
    }
    sources[name] = from;
    const parsed = spec.schema.safeParse(raw);
    if (parsed.success) values[name] = parsed.data;
    else problems.push(`${from}: ${raw === undefined ? "is required" : (parsed.error.issues[0]?.message ?? "is invalid")}`);
  }
  if (problems.length > 0) throw new UsageError(problems.join("; "));
  return { values: values as OptionValues<O>, sources: sources as OptionSources<O> };
}

/** Examples at the end of a command's --help. */
function withExamples(command: Command, examples: string[]): Command {
  return command.addHelpText("after", `\nExamples:\n${examples.map((example) => `  $ ${example}`).join("\n")}\n`);
}

export interface CommandDefinition<O extends OptionSpecs> {
  name: string;
  description: string;
  options: O;
  examples: string[];
  action(values: OptionValues<O>, context: RunnerContext, sources: OptionSources<O>): Promise<void>;
}

/** Registers a command: its options from their declarations, its action with the parsed values and the context. */
export function defineCommand<O extends OptionSpecs>(program: Command, contextOf: () => RunnerContext, definition: CommandDefinition<O>): Command {
  const command = addOptions(program.command(definition.name).description(definition.description), definition.options);
  withExamples(command, definition.examples);
  return command.action(async (given: Record<string, unknown>) => {
    const context = contextOf();
    const { values, sources } = parseOptionsWithSources(definition.options, given, context);
    await definition.action(values, context, sources);
  });
}
