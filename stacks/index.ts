import * as pulumi from "@pulumi/pulumi";
import { ConfigError } from "../infra/config";
import { programFor, UnknownStackError } from "./programs";

/** Bad config and unknown stack names are the operator's to fix: say so without a stack trace. */
export = async () => {
  try {
    return await programFor(pulumi.getStack())();
  } catch (error) {
    if (error instanceof ConfigError || error instanceof UnknownStackError) throw new pulumi.RunError(error.message);
    throw error;
  }
};
