import * as path from "node:path";
import { AlertRecord, listAlerts } from "../infra/adapters/alerts";
import { createDeployer } from "../infra/adapters/deployers";
import { coordinationAt } from "../infra/adapters/coordination";
import { swarmNodes, SwarmNode } from "../infra/adapters/nodes";
import { warmAppLocatorSchema } from "../infra/config";
import type { Hold } from "../infra/gate";
import { nodeUsable } from "../infra/placement";
import type { RunnerContext } from "./context";
import { StateResource, warmState } from "./warm-state";
import { readStack } from "./workspace";

/** Status: what the warm stack holds now, from its state, its config and the state dir. */
export interface WarmAppStatus {
  app: string;
  domain: string;
  deployedVersion: string;
  lastGood: string;
  rolledBack: boolean;
  rollbackReason?: string;
  lastCheckedAt: string;
  /** Looked at now, not read from state: the version on the swarm and one probe of its health path. */
  live: LiveState;
}

export type LiveState = { checked: true; version: string | null; healthy: boolean; detail: string } | { checked: false; reason: string };

export interface CanonicalStatus {
  recipe: string;
  domain: string;
  knownGood: string;
  snapshotId: string;
  snapshotBytes: number;
  seededAt: string;
  snapshotAgeSeconds: number;
  /**
   * leased: a quick run (or the warm stack's own change) holds its lease; deployed: not leased, yet
   * running on the swarm, so quick runs will not borrow it; idle: neither, as between runs.
   */
  state: "idle" | "leased" | "deployed";
  /** The version deployed on its domain now, when one is. */
  deployedVersion?: string;
  /** The lease file's content when leased (its owner, as the quick lane writes it). */
  lease?: unknown;
  /** The swarm node its volumes and snapshot are on (absent: seeded before pinning, on the runner's node). */
  node?: string;
  /** Looked at now: whether that node can run it; a node that cannot sends its quick runs to the cold lane. */
  nodeState?: { usable: true } | { usable: false; why: string } | { checked: false; reason: string };
}

export interface StatusReport {
  stack: "warm";
  warmApps: WarmAppStatus[];
  canonicals: CanonicalStatus[];
  holds: Hold[];
  alerts: AlertRecord[];
}

const RECENT_ALERTS = 10;

/** The canonical's lease, when a quick run holds it; one the adapter cannot read still shows as held. */
async function leaseOf(stateDir: string, recipe: string): Promise<{ leased: boolean; lease?: unknown }> {
  try {
    const lease = await coordinationAt(stateDir).readLease(recipe);
    return lease === null ? { leased: false } : { leased: true, lease };
  } catch (error) {
    return { leased: true, lease: `unreadable lease: ${error instanceof Error ? error.message : String(error)}` };
  }
}

/** Reads one resource's last outputs as the warm app or the canonical its type says it is. */
export function describeResource(
  resource: Pick<StateResource, "type" | "outputs">,
  now: Date,
): { kind: "warm-app"; status: Omit<WarmAppStatus, "live"> } | { kind: "canonical"; status: Omit<CanonicalStatus, "state" | "lease" | "nodeState"> } {
  const { outputs } = resource;
  if (resource.type === "WarmApp") {
    return {
      kind: "warm-app",
      status: {
        app: String(outputs.app),
        domain: String(outputs.domain),
        deployedVersion: String(outputs.deployedVersion),
        lastGood: String(outputs.lastGood),
        rolledBack: outputs.rolledBack === true,
        ...(typeof outputs.rollbackReason === "string" ? { rollbackReason: outputs.rollbackReason } : {}),
        lastCheckedAt: String(outputs.lastCheckedAt),
      },
    };
  }
  const seededAt = String(outputs.seededAt);
  return {
    kind: "canonical",
    status: {
      recipe: String(outputs.recipe),
      domain: String(outputs.domain),
      knownGood: String(outputs.knownGood),
      snapshotId: String(outputs.snapshotId),
      snapshotBytes: Number(outputs.snapshotBytes),
      seededAt,
      snapshotAgeSeconds: Math.max(0, Math.round((now.getTime() - Date.parse(seededAt)) / 1000)),
      ...(typeof outputs.pinnedNode === "string" ? { node: outputs.pinnedNode } : {}),
    },
  };
}

/** The warm app as the swarm has it now; a state it cannot read is reported, not thrown. */
export async function liveState(outputs: Record<string, unknown>): Promise<LiveState> {
  const located = warmAppLocatorSchema.safeParse(outputs);
  if (!located.success) {
    const issue = located.error.issues[0];
    return { checked: false, reason: `its state cannot be read (${issue ? `${issue.path.join(".")}: ${issue.message}` : "unknown"})` };
  }
  const { recipe, domain, deployerSettings, health } = located.data;
  const deployer = createDeployer(deployerSettings);
  const app = { recipe, domain };
  try {
    const [version, probe] = await Promise.all([deployer.currentVersion(app), deployer.probeHealth(app, health)]);
    return { checked: true, version, healthy: probe.ok, detail: `${health.path}: ${probe.detail}` };
  } catch (error) {
    // Docker being unreachable is worth saying, not worth losing the rest of the report over.
    return { checked: false, reason: `the swarm cannot be read (${error instanceof Error ? error.message.split("\n")[0] : String(error)})` };
  }
}

/** What runs on a canonical's domain now; an unreadable state or swarm counts as nothing seen. */
async function deployedVersionOf(outputs: Record<string, unknown>): Promise<string | null> {
  const located = warmAppLocatorSchema.pick({ recipe: true, domain: true, deployerSettings: true }).safeParse(outputs);
  if (!located.success) return null;
  const { recipe, domain, deployerSettings } = located.data;
  return createDeployer(deployerSettings)
    .currentVersion({ recipe, domain })
    .catch(() => null);
}

export async function warmStatus(context: RunnerContext, now = new Date()): Promise<StatusReport> {
  const { settings } = context;
  const stack = await readStack("warm", settings);
  // Only the alert directory is needed from the config: status works on a stack whose config is incomplete, too.
  const [config, state] = await Promise.all([stack.getAllConfig(), warmState(stack)]);
  const alertDir = config["warmstack:alertDir"]?.value ?? path.join(settings.stateDir, "alerts");
  let nodes: Promise<SwarmNode[]> | undefined;
  const stateOfNode = async (hostname: string): Promise<NonNullable<CanonicalStatus["nodeState"]>> => {
    nodes ??= swarmNodes();
    try {
      return nodeUsable((await nodes).find((node) => node.hostname === hostname));
    } catch (error) {
      return { checked: false, reason: `the swarm's nodes cannot be read (${error instanceof Error ? error.message.split("\n")[0] : String(error)})` };
    }
  };
  // Each resource is looked at live, all at once: the report waits for the slowest look, not their sum.
  const looked = await Promise.all(
    state.resources.map(async (resource): Promise<{ warmApp?: WarmAppStatus; canonical?: CanonicalStatus }> => {
      const { outputs } = resource;
      const described = describeResource(resource, now);
      if (described.kind === "warm-app") return { warmApp: { ...described.status, live: await liveState(outputs) } };
      if (described.kind !== "canonical") return {};
      const [{ leased, lease }, deployed, nodeState] = await Promise.all([
        leaseOf(settings.stateDir, described.status.recipe),
        deployedVersionOf(outputs),
        described.status.node === undefined ? undefined : stateOfNode(described.status.node),
      ]);
      const canonicalState = leased ? "leased" : deployed ? "deployed" : "idle";
      return { canonical: { ...described.status, state: canonicalState, ...(leased ? { lease } : {}), ...(deployed ? { deployedVersion: deployed } : {}), ...(nodeState ? { nodeState } : {}) } };
    }),
  );
  return {
    stack: "warm",
    warmApps: looked.flatMap((entry) => (entry.warmApp ? [entry.warmApp] : [])),
    canonicals: looked.flatMap((entry) => (entry.canonical ? [entry.canonical] : [])),
    holds: (state.stackOutputs.holds as Hold[] | undefined) ?? [],
    alerts: await listAlerts(alertDir, { limit: RECENT_ALERTS }),
  };
}

function size(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

function age(seconds: number): string {
  if (seconds < 120) return `${seconds}s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)}m`;
  if (seconds < 172_800) return `${Math.round(seconds / 3600)}h`;
  return `${Math.round(seconds / 86_400)}d`;
}

function describeLive(app: WarmAppStatus): string {
  if (!app.live.checked) return `not checked: ${app.live.reason}`;
  const { version, healthy, detail } = app.live;
  if (version === null) return "NOT DEPLOYED: the next up deploys it";
  const drift = version === app.deployedVersion ? "" : ` (state says ${app.deployedVersion})`;
  return healthy ? `running ${version}${drift}, healthy` : `running ${version}${drift}, DOWN (${detail}): the next up brings it back`;
}

function describeNode(canonical: CanonicalStatus): string {
  if (canonical.node === undefined) return "";
  const state = canonical.nodeState;
  if (state === undefined || ("usable" in state && state.usable)) return `, on node ${canonical.node}`;
  if ("checked" in state) return `, on node ${canonical.node} (not checked: ${state.reason})`;
  return `, on node ${canonical.node}, which ${state.why}: its quick runs fall back to cold`;
}

function describeCanonicalState(canonical: CanonicalStatus): string {
  if (canonical.state !== "deployed") return canonical.state;
  return `DEPLOYED at ${canonical.deployedVersion} without a lease: quick runs will not borrow it until it is undeployed (a crashed promote or run left it so)`;
}

export function renderStatus(report: StatusReport): string {
  const lines = ["warm stack"];
  lines.push("  warm apps:");
  if (report.warmApps.length === 0) lines.push("    none");
  for (const app of report.warmApps) {
    const lastGood = app.lastGood === app.deployedVersion ? "" : `, last good ${app.lastGood}`;
    const rolledBack = app.rolledBack ? `, ROLLED BACK: ${app.rollbackReason ?? "see the alerts"}` : "";
    lines.push(`    ${app.app} (${app.domain}): ${app.deployedVersion}${lastGood}${rolledBack}; checked ${app.lastCheckedAt}; now ${describeLive(app)}`);
  }
  lines.push("  canonicals:");
  if (report.canonicals.length === 0) lines.push("    none");
  for (const canonical of report.canonicals) {
    lines.push(
      `    ${canonical.recipe} (${canonical.domain}): known-good ${canonical.knownGood}, snapshot ${size(canonical.snapshotBytes)} ` +
        `taken ${age(canonical.snapshotAgeSeconds)} ago (${canonical.snapshotId.slice(0, 12)}), ${describeCanonicalState(canonical)}${describeNode(canonical)}`,
    );
  }
  lines.push("  holds:");
  if (report.holds.length === 0) lines.push("    none");
  for (const hold of report.holds) lines.push(`    ${hold.app}: ${hold.to} held at ${hold.from} — ${hold.reason} at ${hold.blockedAt}: ${hold.detail}`);
  lines.push("  recent alerts:");
  if (report.alerts.length === 0) lines.push("    none");
  for (const alert of report.alerts) {
    lines.push(`    ${alert.time} ${alert.severity} ${alert.app} ${alert.outcome} ${alert.from ?? "-"} → ${alert.to ?? "-"}: ${alert.reason}`);
  }
  return `${lines.join("\n")}\n`;
}
