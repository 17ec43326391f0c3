import { DeadlineError, HttpProbe, waitHttpHealthy, waitUntil } from "./health";
import { ServiceState, TaskState, serviceTasks, stackServices } from "./swarm";

/**
 * What "converged" means, for every deployer: each service's replicas running at the wanted version
 * label, no paused or rolled-back Swarm update, the health path answering, then the ready probe —
 * all within the recipe's deploy timeout. `docker stack deploy` exiting 0 proves none of this.
 */
export interface ConvergenceSpec {
  stack: string;
  versionLabel: string;
  version: string;
  health: HttpProbe;
  ready?: HttpProbe;
  timeoutMs: number;
}

export class ConvergenceError extends Error {
  constructor(
    readonly stack: string,
    readonly reason: "rolled-back" | "paused" | "timeout",
    message: string,
  ) {
    super(`${stack}: ${message}`);
    this.name = "ConvergenceError";
  }
}

const FAILED_UPDATE_STATES = new Set(["paused", "rollback_started", "rollback_paused", "rollback_completed"]);

function describeTask(task: TaskState | undefined): string {
  if (!task) return "no task yet";
  return `${task.currentState}${task.error ? ` "${task.error}"` : ""}`;
}

async function serviceProblem(service: ServiceState, spec: ConvergenceSpec): Promise<string | undefined> {
  if (service.updateState && FAILED_UPDATE_STATES.has(service.updateState)) {
    const reason = service.updateState === "paused" ? "paused" : "rolled-back";
    throw new ConvergenceError(
      spec.stack,
      reason,
      `Swarm ${reason === "paused" ? "paused" : "rolled back"} the update of ${service.name}: ${service.updateMessage ?? service.updateState}`,
    );
  }
  const label = service.labels[spec.versionLabel];
  if (label !== spec.version) return `${service.name}: version label ${label ?? "<none>"}, want ${spec.version}`;
  if (service.updateState === "updating") return `${service.name}: update in progress`;
  const tasks = await serviceTasks(service.id);
  const running = tasks.filter((task) => task.desiredState === "Running" && task.currentState.startsWith("Running"));
  const wanted = service.replicas ?? 1;
  if (running.length < wanted) {
    const latest = tasks.find((task) => !task.currentState.startsWith("Running")) ?? tasks[0];
    return `${service.name}: ${running.length}/${wanted} running; last task: ${describeTask(latest)}`;
  }
  return undefined;
}

export async function waitConverged(spec: ConvergenceSpec): Promise<void> {
  const deadline = Date.now() + spec.timeoutMs;
  const remaining = () => Math.max(1000, deadline - Date.now());
  try {
    await waitUntil(
      `the services of ${spec.stack} to run at ${spec.version}`,
      async () => {
        const services = await stackServices(spec.stack);
        if (services.length === 0) return { done: false, state: "no services yet" };
        const problems = (await Promise.all(services.map((service) => serviceProblem(service, spec)))).filter(Boolean);
        return problems.length === 0 ? { done: true, value: undefined } : { done: false, state: problems.join("; ") };
      },
      { timeoutMs: remaining(), intervalMs: 2000 },
    );
    await waitHttpHealthy(`${spec.stack} to answer its health path`, spec.health, { timeoutMs: remaining() });
    if (spec.ready) await waitHttpHealthy(`${spec.stack} to answer its ready probe`, spec.ready, { timeoutMs: remaining() });
  } catch (error) {
    throw error instanceof DeadlineError ? new ConvergenceError(spec.stack, "timeout", error.message) : error;
  }
}
