import { parseRunStackName } from "../infra/naming";
import { runProgram } from "./run";
import { warmProgram } from "./warm";

export class UnknownStackError extends Error {
  constructor(stackName: string) {
    super(`unknown stack "${stackName}": warmstack runs the stack "warm" and run stacks named run-<recipe>-<hex6>`);
    this.name = "UnknownStackError";
  }
}

export type StackProgram = () => Promise<Record<string, unknown>>;

/** The stack's program, chosen by the stack's name; the runner passes the same functions inline. */
export function programFor(stackName: string): StackProgram {
  if (stackName === "warm") return warmProgram;
  if (parseRunStackName(stackName)) return runProgram;
  throw new UnknownStackError(stackName);
}
