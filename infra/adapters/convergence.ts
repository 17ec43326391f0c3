import { DeadlineError, HttpProbe, probeHttp, waitUntil } from "./health";
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
    readonly reason: "rolled-back" | "paused" | "gave-up" | "timeout",
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

/**
 * Swarm stops scheduling a service's tasks once its restart policy's attempts are used up. Seen
 * with no task meant to run for this long (longer than the default 5 s restart delay), it has
 * given up and waiting longer cannot help.
 */
const GAVE_UP_AFTER_MS = 12_000;

async function serviceProblem(
  service: ServiceState,
  spec: ConvergenceSpec,
  idleSince: Map<string, number>,
): Promise<string | undefined> {
  const label = service.labels[spec.versionLabel];
  // A rollback that ended on the version we want (redeploying the previous version after Swarm
  // rolled a failed update back) is where we want to be, not a failure.
  const rolledBackToWanted = service.updateState === "rollback_completed" && label === spec.version;
  if (service.updateState && FAILED_UPDATE_STATES.has(service.updateState) && !rolledBackToWanted) {
    const reason = service.updateState === "paused" ? "paused" : "rolled-back";
    throw new ConvergenceError(
      spec.stack,
      reason,
      `Swarm ${reason === "paused" ? "paused" : "rolled back"} the update of ${service.name}: ${service.updateMessage ?? service.updateState}`,
    );
  }
  if (label !== spec.version) return `${service.name}: version label ${label ?? "<none>"}, want ${spec.version}`;
  if (service.updateState === "updating") return `${service.name}: update in progress`;
  const tasks = await serviceTasks(service.id);
  // "Ready" is a task waiting for its turn in a stop-first update: still meant to run.
  if (tasks.length > 0 && !tasks.some((task) => task.desiredState === "Running" || task.desiredState === "Ready")) {
    const since = idleSince.get(service.id) ?? Date.now();
    idleSince.set(service.id, since);
    if (Date.now() - since >= GAVE_UP_AFTER_MS) {
      throw new ConvergenceError(spec.stack, "gave-up", `Swarm gave up on ${service.name}; last task: ${describeTask(tasks[0])}`);
    }
  } else {
    idleSince.delete(service.id);
  }
  const running = tasks.filter((task) => task.desiredState === "Running" && task.currentState.startsWith("Running"));
  const wanted = service.replicas ?? 1;
  if (running.length < wanted) {
    const latest = tasks.find((task) => !task.currentState.startsWith("Running")) ?? tasks[0];
    return `${service.name}: ${running.length}/${wanted} running; last task: ${describeTask(latest)}`;
  }
  return undefined;
}

async function probeProblem(what: string, probe: HttpProbe): Promise<string | undefined> {
  const result = await probeHttp(probe);
  return result.ok ? undefined : `${what} ${probe.path}: ${result.detail}`;
}

/** Every service's tasks in one line, so a timeout names what Swarm last did with them. */
async function taskSummary(stack: string): Promise<string> {
  const services = await stackServices(stack);
  const parts = await Promise.all(
    services.map(async (service) => {
      const tasks = await serviceTasks(service.id);
      return `${service.name}: ${tasks.slice(0, 3).map(describeTask).join(", ") || "no task"}`;
    }),
  );
  return parts.join("; ") || "no services";
}

export async function waitConverged(spec: ConvergenceSpec): Promise<void> {
  // One loop checks services, health and readiness together: a task that runs for a moment and
  // then crashes must not count as converged because it was up when the services were looked at.
  const idleSince = new Map<string, number>();
  try {
    await waitUntil(
      `${spec.stack} to converge at ${spec.version}`,
      async () => {
        const services = await stackServices(spec.stack);
        if (services.length === 0) return { done: false, state: "no services yet" };
        const problems = (await Promise.all(services.map((service) => serviceProblem(service, spec, idleSince)))).filter(Boolean);
        if (problems.length > 0) return { done: false, state: problems.join("; ") };
        const unhealthy = (await probeProblem("health", spec.health)) ?? (spec.ready && (await probeProblem("ready probe", spec.ready)));
        return unhealthy ? { done: false, state: unhealthy } : { done: true, value: undefined };
      },
      { timeoutMs: spec.timeoutMs, intervalMs: 500 },
    );
  } catch (error) {
    if (!(error instanceof DeadlineError)) throw error;
    const tasks = await taskSummary(spec.stack).catch((summaryError: Error) => `unknown (${summaryError.message})`);
    throw new ConvergenceError(spec.stack, "timeout", `${error.message}; last task states: ${tasks}`);
  }
}
