// Snapshot and restore of an undeployed app's volumes. Named volumes are node-local, so the work is
// done by a helper container on the node that holds them: a one-shot Swarm service pinned with
// `node.id==`, which runs on any node of the swarm, not only where the runner runs. The helper mounts
// the volumes and a store volume on that node and runs a fixed bash script; every dynamic value
// reaches the script through its environment, never through the script text.
//
// The helper is a replicated service with one replica and `--restart-condition none`, not a
// `replicated-job`: on Docker 20.10 a removed job's task is never deleted (moby/moby#44312, fixed in
// Moby 24 by moby/swarmkit#3112), so its stopped container stays on the node for good and keeps the
// volumes "in use" — `docker volume rm` fails. A replicated service's task and container go away
// with the service. `docker run` would work only on the runner's own node.
//
// Store layout, per app key:
//   /store/<app>/snap-<sha256>.tar          the snapshot: one top directory per volume, names sorted,
//                                           numeric owners, modes, mtimes, symlinks and hard links
//                                           kept (GNU format: no atimes, so unchanged content gives
//                                           the same id)
//   /store/<app>/snap-<sha256>.<take>.meta  takenAt, volume list and version of one take of that tar
//                                           (so reading the info does not have to read the whole tar)
//   /store/<app>/current                    symlink to the meta of the one valid take
//   /store/<app>/.lock                      flock: one helper per app at a time (on this node)
// A new snapshot is written beside the old one, synced, read back and hashed, and only then does
// `current` switch (rename of a symlink, atomic); the old one is deleted after the switch. A kill at
// any point leaves `current` naming a complete, verified tar and the version it was taken of. The meta
// is named by the take, not only by the content: a promote whose data did not change (a static site)
// gives the same tar, and a killed one must not have relabelled the known-good's snapshot already.
// A store written before takes had names has `current` naming the tar and one snap-<sha256>.meta;
// it is read as it is, and its next take moves it to this layout.
//
// Not kept: extended attributes and ACLs (keeping them needs the POSIX tar format, whose atime
// records would make the id change on every read), and sub-second mtimes.
import { randomBytes } from "node:crypto";
import { NameError } from "../naming";
import { DeadlineError, waitUntil } from "./health";
import { docker, DockerError, serviceTasks, stopRemovedServiceContainers, volumeExists } from "./swarm";

export interface SnapshotTarget {
  /** Store key of the app, e.g. the canonical's recipe or the warm app's name. */
  app: string;
  volumes: string[];
  /** What the data is of (the version that left it), recorded with a new snapshot. */
  version?: string;
  /** Swarm node ID of the node that holds the volumes; default: the node the docker CLI talks to. */
  node?: string;
}

export interface SnapshotOptions {
  /** Image with bash and GNU tar/coreutils/findutils/util-linux; present on the node. */
  helperImage?: string;
  /** Named volume on the node that holds the snapshots. */
  store?: string;
  /** Bound on the whole helper run, from creating the job to reading its output. */
  timeoutMs?: number;
}

export interface SnapshotInfo {
  app: string;
  /** sha256 (hex) of the snapshot tar */
  id: string;
  bytes: number;
  /** ISO time the snapshot was taken */
  takenAt: string;
  volumes: string[];
  /** The version the snapshot's data is of, when it was recorded. */
  version?: string;
  /** A restore from it was cut off half-way: the volumes are half-written until it is restored again. */
  restoreCutOff?: boolean;
}

/** A helper run that failed, timed out or vanished; carries what the operator needs to see why. */
export class SnapshotError extends Error {
  constructor(
    message: string,
    readonly helper: string,
    readonly node: string,
    readonly lastState: string,
    readonly logs: string,
  ) {
    super(message);
    this.name = "SnapshotError";
  }
}

export const DEFAULT_SNAPSHOT_STORE = "warmstack_snapshots";
export const DEFAULT_HELPER_IMAGE = "warmstack/base:bookworm";
/** Label on every helper service and its container (value: the operation), so a reaper can find leftovers. */
export const HELPER_LABEL = "warmstack.snapshot-helper";
/** Label on every helper service naming the app key it works on. */
export const HELPER_APP_LABEL = "warmstack.snapshot-app";
export const HELPER_NAME_PREFIX = "warmstack-snapshot-";

const APP_PATTERN = /^[a-z0-9][a-z0-9_-]*$/;
const VOLUME_PATTERN = /^[a-z0-9][a-z0-9_.-]*$/;
const NODE_PATTERN = /^[a-z0-9]+$/;
// An image reference, and never something the CLI would take for a flag.
const IMAGE_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._/:@-]*$/;
const NAME_MAX = 255;

const TAKE_TIMEOUT_MS = 600_000;
const QUICK_TIMEOUT_MS = 120_000;
const POLL_MS = 300;
const HELPER_REMOVAL_TIMEOUT_MS = 30_000;

function checkName(field: string, value: unknown, pattern: RegExp, problem: string): string {
  if (typeof value !== "string" || value.length > NAME_MAX || !pattern.test(value)) throw new NameError(field, value, problem);
  return value;
}

const checkApp = (value: unknown) =>
  checkName("app", value, APP_PATTERN, "is not a valid snapshot app key (lowercase letters, digits, '_' and '-', starting with a letter or digit)");
// It reaches the helper's environment and a line of the snapshot's meta file: a version's characters only.
const checkVersionLabel = (value: string | undefined) =>
  value === undefined ? undefined : checkName("version", value, /^[0-9A-Za-z][0-9A-Za-z.+_-]{0,99}$/, "is not a version label (letters, digits, '.', '+', '_' and '-')");
const checkVolume = (field: string, value: unknown) =>
  checkName(field, value, VOLUME_PATTERN, "is not a valid volume name (lowercase letters, digits, '_', '.' and '-', starting with a letter or digit)");

function checkVolumes(volumes: unknown, store: string): string[] {
  if (!Array.isArray(volumes) || volumes.length === 0) throw new NameError("volumes", volumes, "must be a non-empty list of volume names");
  const checked = volumes.map((volume, index) => checkVolume(`volumes[${index}]`, volume));
  if (new Set(checked).size !== checked.length) throw new NameError("volumes", checked.join(","), "names a volume twice");
  if (checked.includes(store)) throw new NameError("volumes", store, "is the snapshot store itself");
  // Sorted, so the tar, the id and the reported list do not depend on the caller's order.
  return [...checked].sort();
}

interface Resolved {
  node: string;
  local: boolean;
  store: string;
  image: string;
  timeoutMs: number;
}

async function localNodeId(): Promise<string> {
  const id = (await docker(["info", "--format", "{{.Swarm.NodeID}}"])).trim();
  if (!id) throw new Error("snapshots need Docker Swarm: this docker daemon is not part of a swarm");
  return id;
}

async function locate(node: string | undefined, options: SnapshotOptions, defaultTimeoutMs: number): Promise<Resolved> {
  const store = checkVolume("store", options.store ?? DEFAULT_SNAPSHOT_STORE);
  const image = checkName("helperImage", options.helperImage ?? DEFAULT_HELPER_IMAGE, IMAGE_PATTERN, "is not an image reference");
  const local = await localNodeId();
  const target = node === undefined ? local : checkName("node", node, NODE_PATTERN, "is not a swarm node ID");
  return { node: target, local: target === local, store, image, timeoutMs: options.timeoutMs ?? defaultTimeoutMs };
}

function lines(output: string): string[] {
  return output.split("\n").map((line) => line.trim()).filter(Boolean);
}

interface ServiceSpec {
  Spec: {
    Name: string;
    Labels?: Record<string, string>;
    TaskTemplate?: { ContainerSpec?: { Mounts?: Array<{ Type?: string; Source?: string }> } };
  };
}

async function allServices(): Promise<ServiceSpec[]> {
  const ids = lines(await docker(["service", "ls", "-q"]));
  if (ids.length === 0) return [];
  try {
    return JSON.parse(await docker(["service", "inspect", ...ids])) as ServiceSpec[];
  } catch (error) {
    if (!isGone(error)) throw error;
  }
  // One of them went away meanwhile: take the others one by one.
  const services: ServiceSpec[] = [];
  for (const id of ids) {
    try {
      services.push(...(JSON.parse(await docker(["service", "inspect", id])) as ServiceSpec[]));
    } catch (error) {
      if (!isGone(error)) throw error;
    }
  }
  return services;
}

/**
 * Containers on this node and services anywhere in the swarm that mount one of the volumes. Helper
 * containers are left out: helpers of one app exclude each other by the store's lock. Containers on
 * other nodes are out of reach of this CLI; there, only swarm services are seen.
 */
async function usersOf(volumes: readonly string[], local: boolean): Promise<Map<string, string[]>> {
  const users = new Map<string, string[]>();
  const add = (volume: string, user: string) => users.set(volume, [...(users.get(volume) ?? []), user]);
  if (local) {
    for (const volume of volumes) {
      const output = await docker(["ps", "-a", "--filter", `volume=${volume}`, "--format", `{{.Names}}\t{{.Label "${HELPER_LABEL}"}}`]);
      for (const line of lines(output)) {
        const [name, helper] = line.split("\t");
        if (!helper) add(volume, `container ${name}`);
      }
    }
  }
  for (const service of await allServices()) {
    if (service.Spec.Labels?.[HELPER_LABEL] !== undefined) continue;
    for (const mount of service.Spec.TaskTemplate?.ContainerSpec?.Mounts ?? []) {
      if ((mount.Type ?? "volume") === "volume" && mount.Source && volumes.includes(mount.Source)) add(mount.Source, `service ${service.Spec.Name}`);
    }
  }
  return users;
}

// Invariant: snapshots are taken and restored only while the app is undeployed.
async function refuseIfInUse(what: string, volumes: readonly string[], where: Resolved): Promise<void> {
  const users = await usersOf(volumes, where.local);
  if (users.size === 0) return;
  const detail = [...users].map(([volume, names]) => `volume ${volume} is in use by ${names.join(", ")}`).join("; ");
  throw new Error(`refusing to ${what}: ${detail} (snapshots are taken and restored only while the app is undeployed)`);
}

// A `--mount type=volume` creates a missing volume, empty: check first where this CLI can see.
async function requireVolumes(volumes: readonly string[], where: Resolved): Promise<void> {
  if (!where.local) return;
  for (const volume of volumes) {
    if (!(await volumeExists(volume))) {
      throw new Error(`volume ${volume} does not exist on node ${where.node}; pass the node that holds it if it lives on another swarm node`);
    }
  }
}

// The scripts are String.raw templates without substitutions: nothing from outside enters their text.
// Names reach them as environment values that were checked against patterns without blanks or glob
// characters, so word splitting of WS_VOLUMES (with globbing off) yields exactly the volume names.
const SCRIPT_PRELUDE = String.raw`
set -euf -o pipefail
exec 2>&1
fail() { echo "warmstack-snapshot: $*"; exit 1; }
app_dir="/store/$WS_APP"

lock_app() {
  exec 9>>"$app_dir/.lock"
  flock "$1" -w "$WS_LOCK_WAIT_S" 9 || fail "another snapshot operation on app $WS_APP did not finish within $WS_LOCK_WAIT_S seconds"
  [ /proc/self/fd/9 -ef "$app_dir/.lock" ] || fail "the snapshots of app $WS_APP were deleted meanwhile"
}

# Docker creates a missing volume, empty, for the helper's mount: a volume born after the helper was
# requested did not exist before, and is neither snapshotted nor restored into.
check_volumes() {
  local v born
  for v in $WS_VOLUMES; do
    born=$(stat -c %.3W "/volumes/$v" | tr -d .)
    (( 10#$born < WS_REQUESTED_MS )) || fail "volume $v does not exist on node $WS_NODE (Docker has just created it, empty, for the helper's mount: remove it there)"
  done
}

emit() {
  local volumes_json version version_json=""
  volumes_json=$(sed -n 's/^volume \(.*\)$/"\1"/p' "$4" | paste -sd , -)
  version=$(sed -n 's/^version //p' "$4")
  [ -z "$version" ] || version_json=",\"version\":\"$version\""
  [ ! -e "$app_dir/restoring" ] || version_json="$version_json,\"restoreCutOff\":true"
  printf '{"warmstack":"result","snapshot":{"id":"%s","bytes":%s,"takenAt":"%s","volumes":[%s]%s}}\n' "$1" "$2" "$3" "$volumes_json" "$version_json"
}

# Sets tarball and meta to the files the current take names (either layout, see the top of the file).
resolve_current() {
  local target
  target=$(readlink -- "$app_dir/current")
  case "$target" in
    snap-*.tar) tarball="$app_dir/$target"; meta="$app_dir/$(basename -- "$target" .tar).meta" ;;
    snap-*.*.meta) tarball="$app_dir/$(echo "$target" | cut -d . -f 1).tar"; meta="$app_dir/$target" ;;
    *) fail "the current snapshot of app $WS_APP names $target, which is no snapshot" ;;
  esac
}

# Takes the app's lock (-x or -s) and sets tarball and meta to its current snapshot, whose content is
# checked against its name: a damaged snapshot is never read into volumes.
lock_checked_current() {
  local snap id
  [ -d "$app_dir" ] || fail "there is no snapshot of app $WS_APP in store $WS_STORE on node $WS_NODE"
  lock_app "$1"
  [ -L "$app_dir/current" ] || fail "there is no snapshot of app $WS_APP in store $WS_STORE on node $WS_NODE"
  resolve_current
  snap=$(basename -- "$tarball")
  [ -f "$tarball" ] || fail "the current snapshot of app $WS_APP ($snap) is missing"
  id=$(sha256sum -- "$tarball" | cut -d ' ' -f 1)
  [ "$snap" = "snap-$id.tar" ] || fail "the snapshot $snap of app $WS_APP is damaged: its content hashes to $id"
}

emit_current() {
  local id
  resolve_current
  id=$(basename -- "$tarball" .tar | sed 's/^snap-//')
  emit "$id" "$(stat -c %s -- "$tarball")" "$(sed -n 's/^takenAt //p' "$meta")" "$meta"
}
`;

const TAKE_SCRIPT = SCRIPT_PRELUDE + String.raw`
mkdir -p -- "$app_dir"
lock_app -x
check_volumes
[ ! -e "$app_dir/restoring" ] || fail "a restore of app $WS_APP was cut off half-way: its volumes are half-written; restore them from the snapshot before taking a new one"
# Leftovers of killed helpers; the lock says none of them is still writing.
find "$app_dir" -maxdepth 1 -name '.partial-*' -delete

size=$(cd /volumes && du -sbc -- $WS_VOLUMES | tail -n 1 | cut -f 1)
avail=$(df -B1 --output=avail /store | tail -n 1 | tr -d ' ')
need=$(( size + size / 10 ))
(( avail > need )) || fail "not enough free disk for a snapshot of app $WS_APP in store $WS_STORE on node $WS_NODE: the volumes hold $size bytes, so more than $need bytes must be free, but $avail bytes are available"

partial="$app_dir/.partial-$WS_TOKEN"
tar -C /volumes --sort=name --numeric-owner -cpf "$partial.tar" -- $WS_VOLUMES
sync -- "$partial.tar"
tar -tf "$partial.tar" >/dev/null || fail "the new snapshot of app $WS_APP does not read back as a tar"
id=$(sha256sum -- "$partial.tar" | cut -d ' ' -f 1)
bytes=$(stat -c %s -- "$partial.tar")
taken=$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)
{ printf 'takenAt %s\n' "$taken"; printf 'volume %s\n' $WS_VOLUMES; [ -z "$WS_VERSION" ] || printf 'version %s\n' "$WS_VERSION"; } >"$partial.meta"
sync -- "$partial.meta"

take_meta="snap-$id.$WS_TOKEN.meta"
mv -f -- "$partial.meta" "$app_dir/$take_meta"
mv -f -- "$partial.tar" "$app_dir/snap-$id.tar"
ln -sfn -- "$take_meta" "$app_dir/current.tmp"
sync -- "$app_dir"
mv -fT -- "$app_dir/current.tmp" "$app_dir/current"
sync -- "$app_dir"

find "$app_dir" -maxdepth 1 -name 'snap-*' ! -name "snap-$id.tar" ! -name "$take_meta" -delete
emit "$id" "$bytes" "$taken" "$app_dir/$take_meta"
`;

const RESTORE_SCRIPT = SCRIPT_PRELUDE + String.raw`
# Check the tar before anything is deleted: a damaged snapshot must not replace good data.
lock_checked_current -x
for v in $WS_VOLUMES; do
  grep -qxF -- "volume $v" "$meta" || fail "the snapshot of app $WS_APP holds no volume $v (it holds: $(sed -n 's/^volume //p' "$meta" | paste -sd ' ' -))"
done
check_volumes

# A restore cut off half-way leaves the volumes half-written: the mark says so until one completes.
touch -- "$app_dir/restoring"
sync -- "$app_dir"
for v in $WS_VOLUMES; do
  find "/volumes/$v" -mindepth 1 -delete
  tar -C /volumes --numeric-owner -xpf "$tarball" -- "$v"
  sync -f -- "/volumes/$v"
done
rm -f -- "$app_dir/restoring"
sync -- "$app_dir"
emit_current
`;

// Another app's volumes from this app's snapshot (a canary's copy of the live data): the snapshot is
// only read, under the shared lock; WS_SEED pairs each volume of the snapshot with the one it fills.
const SEED_SCRIPT = SCRIPT_PRELUDE + String.raw`
lock_checked_current -s
check_volumes
for pair in $WS_SEED; do
  from=$(cut -d : -f 1 <<<"$pair")
  into=$(cut -d : -f 2 <<<"$pair")
  grep -qxF -- "volume $from" "$meta" || fail "the snapshot of app $WS_APP holds no volume $from (it holds: $(sed -n 's/^volume //p' "$meta" | paste -sd ' ' -))"
  find "/volumes/$into" -mindepth 1 -delete
  # Member names move from one volume to the other; symlink targets are data and stay as they are.
  from_re=$(sed 's/[.]/\\./g' <<<"$from")
  tar -C /volumes --numeric-owner -xpf "$tarball" --transform "s,^$from_re/,$into/,S" --transform "s,^$from_re\$,$into,S" -- "$from"
  sync -f -- "/volumes/$into"
done
emit_current
`;

const INFO_SCRIPT = SCRIPT_PRELUDE + String.raw`
none() { echo '{"warmstack":"result","snapshot":null}'; exit 0; }
[ -L "$app_dir/current" ] || none
lock_app -s
[ -L "$app_dir/current" ] || none
emit_current
`;

const DELETE_SCRIPT = SCRIPT_PRELUDE + String.raw`
if [ -d "$app_dir" ]; then
  lock_app -x
  rm -rf -- "$app_dir"
fi
echo '{"warmstack":"result","snapshot":null}'
`;

interface HelperRun {
  operation: "take" | "restore" | "seed" | "info" | "delete";
  app: string;
  volumes: readonly string[];
  /** For a take: what the data is of. */
  version?: string;
  /** For a seed: "from:into" pairs, a volume of the snapshot and the one it fills. */
  seed?: readonly string[];
  script: string;
}

interface TaskView {
  state: string;
  detail: string;
}

function taskView(tasks: Awaited<ReturnType<typeof serviceTasks>>): TaskView {
  if (tasks.length === 0) return { state: "unscheduled", detail: "no task yet" };
  const states = tasks.map((task) => (task.currentState.split(" ")[0] ?? "").toLowerCase());
  if (states.includes("complete")) return { state: "complete", detail: "complete" };
  const task = tasks[0]!;
  return { state: states[0]!, detail: `${task.currentState}${task.error ? ` (${task.error})` : ""}` };
}

const FAILED_STATES = new Set(["failed", "rejected", "shutdown", "orphaned", "remove"]);

async function helperLogs(name: string): Promise<string> {
  return docker(["service", "logs", "--raw", name]).catch((error: unknown) => `<no logs: ${(error as Error).message}>`);
}

function resultOf(logs: string): SnapshotResult | null | undefined {
  const line = lines(logs).reverse().find((candidate) => candidate.startsWith('{"warmstack":"result"'));
  if (!line) return undefined;
  return (JSON.parse(line) as { snapshot: SnapshotResult | null }).snapshot;
}

interface SnapshotResult {
  id: string;
  bytes: number;
  takenAt: string;
  volumes: string[];
  version?: string;
  restoreCutOff?: boolean;
}

function isGone(error: unknown): boolean {
  return error instanceof DockerError && /no such service|not found/i.test(`${error.stderr}\n${error.stdout}`);
}

async function removeHelper(name: string, local: boolean): Promise<void> {
  try {
    await docker(["service", "rm", name]);
  } catch (error) {
    if (!isGone(error)) throw error;
  }
  // The container goes a while after the service, and keeps the volumes in use until then; only
  // the local node's containers are visible to this CLI.
  if (!local) return;
  const containers = async () => lines(await docker(["ps", "-aq", "--filter", `label=com.docker.swarm.service.name=${name}`]));
  await stopRemovedServiceContainers(await containers(), undefined, HELPER_REMOVAL_TIMEOUT_MS);
  await waitUntil(
    `the container of the snapshot helper ${name} to be removed`,
    async () => {
      const left = await containers();
      return left.length === 0 ? { done: true, value: undefined } : { done: false, state: `${left.length} container(s) left` };
    },
    { timeoutMs: HELPER_REMOVAL_TIMEOUT_MS, intervalMs: POLL_MS },
  );
}

function tail(text: string, max = 4000): string {
  const trimmed = text.trim();
  return trimmed.length > max ? `…${trimmed.slice(-max)}` : trimmed || "no output";
}

/** Runs the script once in a helper service on the node; returns its result line, parsed. */
async function runHelper(run: HelperRun, where: Resolved): Promise<SnapshotResult | null> {
  const token = randomBytes(5).toString("hex");
  const name = `${HELPER_NAME_PREFIX}${run.operation}-${token}`;
  const deadline = Date.now() + where.timeoutMs;
  const env: Record<string, string> = {
    WS_APP: run.app,
    WS_VOLUMES: run.volumes.join(" "),
    WS_STORE: where.store,
    WS_NODE: where.node,
    WS_TOKEN: token,
    WS_REQUESTED_MS: String(Date.now()),
    WS_LOCK_WAIT_S: String(Math.max(1, Math.floor(where.timeoutMs / 2000))),
    WS_VERSION: run.version ?? "",
    WS_SEED: (run.seed ?? []).join(" "),
  };
  const args = [
    "service", "create",
    "--mode", "replicated",
    "--replicas", "1",
    "--restart-condition", "none",
    "--detach",
    "--quiet",
    "--no-resolve-image",
    "--name", name,
    "--label", `${HELPER_LABEL}=${run.operation}`,
    "--label", `${HELPER_APP_LABEL}=${run.app}`,
    "--container-label", `${HELPER_LABEL}=${run.operation}`,
    "--constraint", `node.id==${where.node}`,
    // The helper holds no state worth a graceful stop, and bash as PID 1 ignores SIGTERM.
    "--stop-signal", "SIGKILL",
    // `service logs` reads only from log drivers that keep logs.
    "--log-driver", "json-file",
    ...Object.entries(env).flatMap(([key, value]) => ["--env", `${key}=${value}`]),
    ...run.volumes.flatMap((volume) => ["--mount", `type=volume,src=${volume},dst=/volumes/${volume}`]),
    "--mount", `type=volume,src=${where.store},dst=/store`,
    where.image,
    "bash", "-c", run.script,
  ];
  const describe = `the snapshot helper ${name} (${run.operation} for app ${run.app} on node ${where.node})`;
  let lastState = "not created yet";
  let failure: unknown;
  try {
    await docker(args);
    let view: TaskView;
    try {
      view = await waitUntil(
        `${describe} to finish`,
        async () => {
          let tasks;
          try {
            tasks = await serviceTasks(name);
          } catch (error) {
            if (isGone(error)) throw new SnapshotError(`${describe} was removed before it finished (last task state: ${lastState})`, name, where.node, lastState, "");
            throw error;
          }
          const current = taskView(tasks);
          lastState = current.detail;
          return current.state === "complete" || FAILED_STATES.has(current.state) ? { done: true, value: current } : { done: false, state: current.detail };
        },
        { timeoutMs: Math.max(0, deadline - Date.now()), intervalMs: POLL_MS },
      );
    } catch (error) {
      if (error instanceof DeadlineError) {
        const logs = await helperLogs(name);
        throw new SnapshotError(`${error.message}; helper output: ${tail(logs)}`, name, where.node, error.lastState, logs);
      }
      throw error;
    }
    const logs = await helperLogs(name);
    if (view.state !== "complete") {
      throw new SnapshotError(`${describe} failed: ${tail(logs)} (task: ${view.detail})`, name, where.node, view.detail, logs);
    }
    const result = resultOf(logs);
    if (result === undefined) {
      throw new SnapshotError(`${describe} completed without a result line; output: ${tail(logs)}`, name, where.node, view.detail, logs);
    }
    return result;
  } catch (error) {
    failure = error;
    throw error;
  } finally {
    // Removing the service also kills a helper that is still running after a timeout.
    await removeHelper(name, where.local).catch((error: unknown) => {
      if (failure === undefined) throw error;
    });
  }
}

function infoOf(app: string, result: SnapshotResult): SnapshotInfo {
  return { app, id: result.id, bytes: result.bytes, takenAt: result.takenAt, volumes: result.volumes, ...(result.version ? { version: result.version } : {}), ...(result.restoreCutOff ? { restoreCutOff: true } : {}) };
}

/** The helper's run over the app's volumes, which must exist and be used by no container. */
async function overVolumes(operation: "take" | "restore", target: SnapshotTarget, options: SnapshotOptions): Promise<SnapshotInfo> {
  const app = checkApp(target.app);
  const what = operation === "take" ? "snapshot" : "restore";
  const where = await locate(target.node, options, TAKE_TIMEOUT_MS);
  const volumes = checkVolumes(target.volumes, where.store);
  await requireVolumes(volumes, where);
  await refuseIfInUse(`${what} app ${app}`, volumes, where);
  const version = operation === "take" ? checkVersionLabel(target.version) : undefined;
  const result = await runHelper({ operation, app, volumes, version, script: operation === "take" ? TAKE_SCRIPT : RESTORE_SCRIPT }, where);
  if (!result) throw new Error(`the ${what} helper for app ${app} reported no snapshot`);
  return infoOf(app, result);
}

/** Takes the one snapshot of the app's volumes, replacing the previous one atomically. */
export function takeSnapshot(target: SnapshotTarget, options: SnapshotOptions = {}): Promise<SnapshotInfo> {
  return overVolumes("take", target, options);
}

/** Makes the volumes exactly what the app's current snapshot holds (files added since are removed). */
export function restoreSnapshot(target: SnapshotTarget, options: SnapshotOptions = {}): Promise<SnapshotInfo> {
  return overVolumes("restore", target, options);
}

/**
 * Fills other volumes (a canary's, on the same node) with what the app's current snapshot holds, each
 * snapshot volume into the one `into` pairs it with; the snapshot and the app's own volumes are only read.
 */
export async function seedVolumes(source: { app: string; node?: string }, into: Readonly<Record<string, string>>, options: SnapshotOptions = {}): Promise<SnapshotInfo> {
  const app = checkApp(source.app);
  const where = await locate(source.node, options, TAKE_TIMEOUT_MS);
  const pairs = Object.entries(into).map(([from, to], index) => [checkVolume(`into[${index}]`, from), checkVolume(`into.${from}`, to)] as const);
  const volumes = checkVolumes(pairs.map(([, to]) => to), where.store);
  await requireVolumes(volumes, where);
  await refuseIfInUse(`seed volumes from app ${app}`, volumes, where);
  const result = await runHelper({ operation: "seed", app, volumes, seed: pairs.map(([from, to]) => `${from}:${to}`), script: SEED_SCRIPT }, where);
  if (!result) throw new Error(`the seed helper for app ${app} reported no snapshot`);
  return infoOf(app, result);
}

export async function snapshotInfo(app: string, options: SnapshotOptions & { node?: string } = {}): Promise<SnapshotInfo | null> {
  const key = checkApp(app);
  const where = await locate(options.node, options, QUICK_TIMEOUT_MS);
  const result = await runHelper({ operation: "info", app: key, volumes: [], script: INFO_SCRIPT }, where);
  return result ? infoOf(key, result) : null;
}

/** Removes this app's snapshots (its directory in the store); other apps and the store stay. */
export async function deleteSnapshot(app: string, options: SnapshotOptions & { node?: string } = {}): Promise<void> {
  const key = checkApp(app);
  const where = await locate(options.node, options, QUICK_TIMEOUT_MS);
  await runHelper({ operation: "delete", app: key, volumes: [], script: DELETE_SCRIPT }, where);
}

/**
 * Removes the helper services of an app key whose task has stopped (finished, failed or cut off): a
 * killed caller never removes its helper. Running helpers are left alone; their owner may be live.
 */
export async function removeFinishedHelpers(app: string): Promise<string[]> {
  const key = checkApp(app);
  const names = lines(await docker(["service", "ls", "--filter", `label=${HELPER_APP_LABEL}=${key}`, "--format", "{{.Name}}"]));
  const removed: string[] = [];
  for (const name of names) {
    const view = taskView(await serviceTasks(name));
    if (view.state !== "complete" && !FAILED_STATES.has(view.state)) continue;
    await removeHelper(name, true);
    removed.push(name);
  }
  return removed;
}
