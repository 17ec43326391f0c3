import * as pulumi from "@pulumi/pulumi";

/**
 * An error for the operator: Pulumi prints its message without a stack trace. The trace is
 * dropped up front because rendering one through source maps costs ~20 s of CPU here.
 */
export function operatorError(message: string): pulumi.RunError {
  const error = new pulumi.RunError(message);
  error.stack = message;
  return error;
}
