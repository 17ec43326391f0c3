import * as path from "node:path";
import { FileCoordination, ifLockFree } from "../../infra/adapters/coordination";
import { DeadlineError } from "../../infra/adapters/health";
import { bed } from "./bed";

/**
 * Two cores boot two Keycloaks within a deploy timeout while other suites run, not six: a fresh CI
 * machine timed out every Keycloak of warm-keycloak and warm-heal that way, still at HTTP 502 after
 * four minutes. So every test step that boots one — a first deploy, an upgrade, a rollback, a heal —
 * takes one of WARMSTACK_TEST_KEYCLOAK_BOOTS slots (default 2) for as long as it runs. The slots are
 * the coordination's own file locks, shared by every test process, so a test that dies frees its slot.
 */
const SLOT_WAIT_MS = 45 * 60_000;
const RETRY_MS = 1000;

export function keycloakBootSlots(env: NodeJS.ProcessEnv = process.env): number {
  const text = env.WARMSTACK_TEST_KEYCLOAK_BOOTS ?? "2";
  if (!/^[1-9][0-9]?$/.test(text)) throw new Error(`WARMSTACK_TEST_KEYCLOAK_BOOTS must be a whole number from 1 to 99, not ${JSON.stringify(text)}`);
  return Number(text);
}

let slots: FileCoordination | undefined;

export async function withKeycloakBoot<T>(what: string, work: () => Promise<T>): Promise<T> {
  const count = keycloakBootSlots();
  slots ??= new FileCoordination(path.join(bed().cache, "test-slots"));
  const deadline = Date.now() + SLOT_WAIT_MS;
  let lastHeld = "";
  for (;;) {
    for (let slot = 0; slot < count; slot++) {
      const booted = await ifLockFree(slots, `keycloak-boot-${slot}`, `Keycloak boot slot ${slot}`, work);
      if (booted.ran) return booted.value;
      lastHeld = booted.holder;
    }
    if (Date.now() >= deadline) throw new DeadlineError(`a Keycloak boot slot (of ${count}) for ${what}`, SLOT_WAIT_MS, lastHeld);
    await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
  }
}
