import { waitUntil } from "../../infra/adapters/health";
import * as swarm from "../../infra/adapters/swarm";

/**
 * Brings a stack's only service to where a few dockerd restarts leave it: its container killed
 * again and again until Swarm has used up the restart policy's attempts and stops scheduling it.
 */
export async function killUntilSwarmGivesUp(stack: string, timeoutMs = 180_000): Promise<void> {
  const [service] = await swarm.stackServices(stack);
  if (!service) throw new Error(`stack ${stack} has no service to kill`);
  const killed = new Set<string>();
  await waitUntil(
    `Swarm to give up restarting ${service.name}`,
    async () => {
      if (!(await swarm.serviceHasLiveTask(service.id))) return { done: true, value: undefined };
      const running = (await swarm.docker(["ps", "-q", "--no-trunc", "--filter", `label=com.docker.swarm.service.id=${service.id}`]))
        .split("\n")
        .filter((id) => id && !killed.has(id));
      for (const id of running) {
        await swarm.docker(["kill", id]).catch(() => undefined);
        killed.add(id);
      }
      return { done: false, state: `${killed.size} containers killed so far` };
    },
    { timeoutMs, intervalMs: 500 },
  );
}
