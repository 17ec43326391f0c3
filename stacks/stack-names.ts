import { parseRunStackName } from "../infra/naming";

/** Which stacks warmstack runs, decided from the name alone: light enough for commands that only read state. */
export class UnknownStackError extends Error {
  constructor(stackName: string) {
    super(`unknown stack "${stackName}": warmstack runs the stack "warm" and run stacks named run-<recipe>-<runId>`);
    this.name = "UnknownStackError";
  }
}

export type StackKind = "warm" | "run";

export function stackKindOf(stackName: string): StackKind {
  if (stackName === "warm") return "warm";
  if (parseRunStackName(stackName)) return "run";
  throw new UnknownStackError(stackName);
}
