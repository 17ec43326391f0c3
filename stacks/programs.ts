import { RecipeError } from "../infra/adapters/recipes";
import { ConfigError } from "../infra/config";
import { GateError } from "../infra/gate";
import { operatorError } from "./errors";
import { runProgram } from "./run";
import { stackKindOf, UnknownStackError } from "./stack-names";
import { warmProgram } from "./warm";

export type StackProgram = () => Promise<Record<string, unknown>>;

const OPERATOR_ERRORS = [ConfigError, UnknownStackError, GateError, RecipeError];

/** Bad config, recipes and stack names are the operator's to fix: the engine prints them without a stack trace. */
function withOperatorErrors(program: StackProgram): StackProgram {
  return async () => {
    try {
      return await program();
    } catch (error) {
      if (OPERATOR_ERRORS.some((kind) => error instanceof kind)) throw operatorError((error as Error).message);
      throw error;
    }
  };
}

/** The program a stack runs, chosen by the stack's name; `pulumi up` and the runner's inline programs both come here. */
export function programFor(stackName: string): StackProgram {
  return withOperatorErrors(stackKindOf(stackName) === "warm" ? warmProgram : runProgram);
}
