import * as pulumi from "@pulumi/pulumi";
import { operatorError } from "./errors";
import { programFor } from "./programs";
import { UnknownStackError } from "./stack-names";

export = async () => {
  let program;
  try {
    program = programFor(pulumi.getStack());
  } catch (error) {
    if (error instanceof UnknownStackError) throw operatorError(error.message);
    throw error;
  }
  return program();
};
