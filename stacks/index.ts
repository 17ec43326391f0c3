import * as pulumi from "@pulumi/pulumi";
import { ConfigError } from "../infra/config";
import { programFor, UnknownStackError } from "./programs";

/** Bad config and unknown stack names are the operator's to fix: say so without a stack trace. */
function operatorError(message: string): pulumi.RunError {
  const error = new pulumi.RunError(message);
  // Rendering a stack trace through source maps costs ~20 s of CPU here, and a RunError's trace is
  // never shown anyway.
  error.stack = message;
  return error;
}

export = async () => {
  try {
    return await programFor(pulumi.getStack())();
  } catch (error) {
    if (error instanceof ConfigError || error instanceof UnknownStackError) throw operatorError(error.message);
    throw error;
  }
};
