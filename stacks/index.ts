import * as pulumi from "@pulumi/pulumi";
import { RecipeError } from "../infra/adapters/recipes";
import { ConfigError } from "../infra/config";
import { GateError } from "../infra/gate";
import { operatorError } from "./errors";
import { programFor, UnknownStackError } from "./programs";

/** Bad config, recipes and stack names are the operator's to fix: say so without a stack trace. */
export = async () => {
  try {
    return await programFor(pulumi.getStack())();
  } catch (error) {
    const operatorErrors = [ConfigError, UnknownStackError, GateError, RecipeError];
    if (operatorErrors.some((kind) => error instanceof kind)) throw operatorError((error as Error).message);
    throw error;
  }
};
