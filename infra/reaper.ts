import { assertRunRealmName, parseRunStackName, WARM_LEASE_HOLDER } from "./naming";
import { STACK_ATTRIBUTE } from "./run-realm";

/**
 * The reaper's judgement, kept free of I/O so that its two promises can be proven by property tests:
 * nothing that belongs to a live run is removed, and nothing warmstack did not create (`master`, a
 * realm without our owner attribute, an app without a run owner) is removed. Liveness comes only from
 * run registrations, never from age: a slow run is not a dead run. Age only ever decides about a
 * finished run's report (results.json), which is kept for a retention period.
 */
export interface RunRegistration {
  stack: string;
  pid: number;
  host: string;
  startedAt: string;
}

export interface ReapFacts {
  /** Every stack name in the backend; names that are not run stacks (e.g. `warm`) are kept. */
  stacks: readonly string[];
  /** Each registration with the coordination backend's verdict on its holder (by pid on this host, else by heartbeat). */
  registrations: readonly { registration: RunRegistration; live: boolean }[];
  realms: readonly { realm: string; attributes: Record<string, string> }[];
  /** Apps whose env file carries a run owner (RUN_OWNER_KEY); other apps are never run apps. */
  runApps: readonly { abraDir: string; server: string; domain: string; owner: string }[];
  /**
   * Canonical leases: the recipe and the run stack that holds it, or WARM_LEASE_HOLDER while the warm
   * stack changes the canonical; such a lease carries its pid and the caller's verdict on it.
   */
  leases: readonly { recipe: string; stack: string; pid?: number; holderLive?: boolean }[];
  /** Finished runs' result directories with their finishedAt (null: unreadable or not written yet). */
  results?: readonly { stack: string; finishedAt: string | null }[];
  /** Results that finished before this time (ISO) are past their retention. */
  resultsExpireBefore?: string;
}

export type ReapTarget =
  | { kind: "stack"; stack: string }
  | { kind: "realm"; realm: string; owner?: string }
  | { kind: "app"; abraDir: string; server: string; domain: string; owner: string }
  | { kind: "lease"; recipe: string; stack: string; pid?: number }
  | { kind: "registration"; stack: string; pid: number; host: string }
  | { kind: "results"; stack: string; finishedAt: string };

export type ReapDecision = ReapTarget & { reason: string };

export interface ReapPlan {
  remove: ReapDecision[];
  keep: ReapDecision[];
}

function isRunRealmName(name: string): boolean {
  try {
    assertRunRealmName(name);
    return true;
  } catch {
    return false;
  }
}

export function planReap(facts: ReapFacts): ReapPlan {
  const live = new Set(facts.registrations.filter((r) => r.live).map((r) => r.registration.stack));
  const plan: ReapPlan = { remove: [], keep: [] };
  const decide = (remove: boolean, decision: ReapDecision) => (remove ? plan.remove : plan.keep).push(decision);

  for (const stack of facts.stacks) {
    if (parseRunStackName(stack) === null) decide(false, { kind: "stack", stack, reason: "not a run stack" });
    else if (live.has(stack)) decide(false, { kind: "stack", stack, reason: "its run is live" });
    else decide(true, { kind: "stack", stack, reason: "no live run is registered for it" });
  }

  for (const { realm, attributes } of facts.realms) {
    const owner = attributes[STACK_ATTRIBUTE];
    const target = { kind: "realm" as const, realm, ...(owner === undefined ? {} : { owner }) };
    if (realm === "master") decide(false, { ...target, reason: "Keycloak's admin realm" });
    else if (!isRunRealmName(realm)) decide(false, { ...target, reason: "not a run realm name" });
    else if (owner === undefined) decide(false, { ...target, reason: `no ${STACK_ATTRIBUTE} attribute: not created by warmstack` });
    // A run names its realm after its stack; an owner that disagrees is not a realm we made.
    else if (owner !== `run-${realm}`) decide(false, { ...target, reason: `its ${STACK_ATTRIBUTE} attribute (${owner}) is not the run stack of this realm` });
    else if (live.has(owner)) decide(false, { ...target, reason: `its run ${owner} is live` });
    else decide(true, { ...target, reason: `its run ${owner} is not live` });
  }

  for (const app of facts.runApps) {
    const target = { kind: "app" as const, ...app };
    if (parseRunStackName(app.owner) === null) decide(false, { ...target, reason: `its owner ${app.owner} is not a run stack name` });
    else if (live.has(app.owner)) decide(false, { ...target, reason: `its run ${app.owner} is live` });
    else decide(true, { ...target, reason: `its run ${app.owner} is not live` });
  }

  for (const { holderLive, ...lease } of facts.leases) {
    const target = { kind: "lease" as const, ...lease };
    if (lease.stack === WARM_LEASE_HOLDER) {
      // Nothing was lent: the change either finished or is redone by the next up from the known-good snapshot.
      if (holderLive !== false) decide(false, { ...target, reason: "the warm stack is changing the canonical (its process is running, or cannot be judged)" });
      else decide(true, { ...target, reason: `the warm stack's process ${lease.pid} is gone: the lease is freed; the next up redoes its change from the known-good snapshot` });
    } else if (live.has(lease.stack)) decide(false, { ...target, reason: `its run ${lease.stack} is live` });
    else decide(true, { ...target, reason: `its run ${lease.stack} is not live: the canonical is put back to its known-good, then the lease is freed` });
  }

  const cutoff = facts.resultsExpireBefore === undefined ? undefined : Date.parse(facts.resultsExpireBefore);
  for (const { stack, finishedAt } of facts.results ?? []) {
    // Recent and unreadable reports are simply left; only expired ones are worth a line.
    if (cutoff === undefined || finishedAt === null || live.has(stack) || !(Date.parse(finishedAt) < cutoff)) continue;
    decide(true, { kind: "results", stack, finishedAt, reason: `finished ${finishedAt}, before the retention cut-off ${facts.resultsExpireBefore}` });
  }

  for (const { registration, live: alive } of facts.registrations) {
    const target = { kind: "registration" as const, stack: registration.stack, pid: registration.pid, host: registration.host };
    if (alive) decide(false, { ...target, reason: `process ${registration.pid} on ${registration.host} is running (or on another host)` });
    else decide(true, { ...target, reason: `process ${registration.pid} on ${registration.host} is gone` });
  }
  return plan;
}

/** One line per decision, for people and logs. */
export function describeTarget(target: ReapTarget): string {
  switch (target.kind) {
    case "stack":
      return `run stack ${target.stack}`;
    case "realm":
      return `realm ${target.realm}`;
    case "app":
      return `run app ${target.domain} (server ${target.server} in ${target.abraDir})`;
    case "lease":
      return `lease of canonical ${target.recipe} (held by ${target.stack}${target.pid === undefined ? "" : `, pid ${target.pid}`})`;
    case "registration":
      return `registration of ${target.stack} (pid ${target.pid} on ${target.host})`;
    case "results":
      return `results of ${target.stack}`;
  }
}
