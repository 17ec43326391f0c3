import * as os from "node:os";

/** Whether a process of this host runs (EPERM: it does, as another user's). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

export const HOST_ID_ENV = "WARMSTACK_HOST_ID";
const HOST_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

/**
 * The name this runner's holders carry. A pid is only judged against processes of the same host id;
 * two runners sharing one machine (or one PID namespace seen from two containers) set different ids
 * so that neither judges, nor ends, the other's processes by pid.
 */
export function thisHost(env: NodeJS.ProcessEnv = process.env): string {
  const chosen = env[HOST_ID_ENV];
  if (chosen === undefined || chosen === "") return os.hostname();
  if (!HOST_ID.test(chosen)) throw new Error(`${HOST_ID_ENV} must be 1-63 letters, digits, '.', '_' or '-' starting with a letter or digit`);
  return chosen;
}
