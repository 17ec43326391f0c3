#!/usr/bin/env bash
# A second swarm node on the same machine, for multi-node tests: a network namespace joined to the
# host by a veth pair, a second dockerd inside it (its own hostname, data-root, exec-root, socket,
# cgroup parent, bridge and address pool), joined to the host's swarm as a worker, with the bed's
# images copied in (docker save | load) and the node label warmstack.bed=node2.
#   test/bed/node2.sh up       bring it up (idempotent; prints the node id)
#   test/bed/node2.sh down     take it away again (idempotent; also after an up that crashed)
#   test/bed/node2.sh status   say what is there
#   test/bed/node2.sh id       print the node id of a node that is up
#
# The host's swarm is never re-initialised. Its manager advertises 127.0.0.1 (docker.sh) and keeps
# doing so: inside the namespace, 127.0.0.1 is not a local address but a route over the veth to the
# host, so the worker reaches the manager, its gossip and its VXLAN endpoint at the address the
# manager advertises. The host sends to the worker from that same address (a /32 route with that
# source), because a worker drops VXLAN packets whose outer source is not the VTEP it knows for the
# sender. Re-initialising the manager instead (`swarm init --force-new-cluster --advertise-addr …`)
# keeps services and volumes but restarts every task of the host (docker 20.10): see
# docs/test-bed.md, "Second node".
set -euo pipefail
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/steps/images.sh"

NODE2_NETNS="${WARMSTACK_BED_NODE2_NETNS:-warmstack-node2}"
NODE2_HOSTNAME="${WARMSTACK_BED_NODE2_HOSTNAME:-warmstack-node2}"
# The veth pair's /24 (first three octets): host side .1, node side .2. Outside Docker's default
# local pools (172.17.0.0/16-172.31.0.0/16, 192.168.0.0/16) and its swarm pool (10.0.0.0/8).
NODE2_NET="${WARMSTACK_BED_NODE2_NET:-172.16.47}"
NODE2_HOST_IP="$NODE2_NET.1"
NODE2_IP="$NODE2_NET.2"
# The second daemon's docker0 and its pool for local networks (docker_gwbridge), distinct from the host's.
NODE2_BIP="${WARMSTACK_BED_NODE2_BIP:-172.16.48.1/24}"
NODE2_POOL="${WARMSTACK_BED_NODE2_POOL:-172.16.64.0/18}"
NODE2_VETH_HOST="ws-node2-h"
NODE2_VETH_NODE="ws-node2-n"
NODE2_RUN="/run/warmstack-node2"
NODE2_SOCKET="$NODE2_RUN/docker.sock"
NODE2_DOCKER_HOST="unix://$NODE2_SOCKET"
NODE2_PIDFILE="$NODE2_RUN/docker.pid"
NODE2_EXEC_ROOT="$NODE2_RUN/exec"
NODE2_STATE="$NODE2_RUN/node2.json"
# Images stay in the data-root between ups; containers, volumes and swarm state do not.
NODE2_HOME="$BED_CACHE/node2"
NODE2_DATA_ROOT="$NODE2_HOME/docker"
NODE2_CGROUP_PARENT="/warmstack-node2"
NODE2_LABEL_KEY="warmstack.bed"
NODE2_LABEL_VALUE="node2"
NODE2_LOG="$BED_LOGS/node2-dockerd.log"
# active: the scheduler may place any task there (and prefers an empty node), so while node2 is up
# and active, services without a placement constraint may land on it. drain: only joined.
NODE2_AVAILABILITY="${WARMSTACK_BED_NODE2_AVAILABILITY:-active}"
# What the fixtures run: the base image (snapshot helpers), every fixture-app tag, Traefik, Keycloak.
NODE2_IMAGES=("$BASE_IMAGE" "$FIXTURE_APP_IMAGE:latest")
for tag in "${FIXTURE_APP_TAGS[@]}"; do NODE2_IMAGES+=("$FIXTURE_APP_IMAGE:$tag"); done
NODE2_IMAGES+=("$TRAEFIK_IMAGE")
for version in "${KEYCLOAK_VERSIONS[@]}"; do NODE2_IMAGES+=("warmstack/keycloak:$version"); done
# shellcheck disable=SC2206
NODE2_IMAGES+=(${WARMSTACK_BED_NODE2_EXTRA_IMAGES:-})

node2_docker() { docker -H "$NODE2_DOCKER_HOST" "$@"; }
in_netns() { nsenter --net="/run/netns/$NODE2_NETNS" "$@"; }
netns_exists() { [[ -e "/run/netns/$NODE2_NETNS" ]]; }
warn() { log "warning: $*"; }

# --- addresses ---------------------------------------------------------------------------------

ip_to_int() {
  local a b c d
  IFS=. read -r a b c d <<<"$1"
  echo $(( (a << 24) | (b << 16) | (c << 8) | d ))
}

# True when two IPv4 prefixes (a.b.c.d[/n]) share an address.
prefixes_overlap() {
  local a=${1%/*} b=${2%/*} m n
  m=${1#*/}; [[ "$1" == */* ]] || m=32
  n=${2#*/}; [[ "$2" == */* ]] || n=32
  local bits=$(( m < n ? m : n ))
  local mask=$(( bits == 0 ? 0 : (0xffffffff << (32 - bits)) & 0xffffffff ))
  (( ($(ip_to_int "$a") & mask) == ($(ip_to_int "$b") & mask) ))
}

# Prefixes the host uses: its routes and addresses (ours left out) and every Docker network's subnets.
host_prefixes() {
  ip -4 -o route show table main | awk -v ours="$NODE2_VETH_HOST" '$1 != "default" && $0 !~ (" dev " ours " ") {print $1}'
  ip -4 -o addr show | awk -v ours="$NODE2_VETH_HOST" '$2 != ours {print $4}'
  local ids; ids=$(docker network ls -q)
  if [[ -n "$ids" ]]; then
    # shellcheck disable=SC2086
    docker network inspect $ids --format '{{range .IPAM.Config}}{{.Subnet}} {{end}}' 2>/dev/null | tr ' ' '\n' | grep -E '^[0-9.]+/[0-9]+$' || true
  fi
}

check_no_clash() {
  local used prefix ours
  used=$(host_prefixes | sort -u)
  for ours in "$NODE2_NET.0/24" "$NODE2_BIP" "$NODE2_POOL"; do
    for prefix in $used; do
      # Loopback is what the namespace routes to the host on purpose.
      [[ "$prefix" == 127.* ]] && continue
      if prefixes_overlap "$ours" "$prefix"; then
        die "$ours (node2) overlaps $prefix, which this host uses; set WARMSTACK_BED_NODE2_NET / _BIP / _POOL"
      fi
    done
  done
}

# The address and port the host's manager advertises (the bed: 127.0.0.1:2377).
manager_address() {
  local addr; addr=$(docker info --format '{{.Swarm.NodeAddr}}')
  [[ -n "$addr" ]] || die "the host's docker is not in a swarm (run test/bed/setup.sh docker_engine)"
  echo "$addr"
}

manager_port() {
  local addr=$1 remote
  for remote in $(docker info --format '{{range .Swarm.RemoteManagers}}{{.Addr}} {{end}}'); do
    if [[ "${remote%:*}" == "$addr" ]]; then echo "${remote##*:}"; return 0; fi
  done
  echo 2377
}

# --- the second daemon -------------------------------------------------------------------------

node2_pid() {
  local pid
  pid=$(cat "$NODE2_PIDFILE" 2>/dev/null || true)
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null && [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == dockerd ]] || return 1
  echo "$pid"
}

node2_answers() { node2_docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

# The dockerd of the pidfile runs in our namespace (not in a deleted one of an earlier up).
node2_in_our_netns() {
  local pid=$1
  netns_exists && [[ "$(stat -L -c %i "/proc/$pid/ns/net" 2>/dev/null)" == "$(stat -L -c %i "/run/netns/$NODE2_NETNS")" ]]
}

node2_node_id() { node2_docker info --format '{{.Swarm.NodeID}}' 2>/dev/null || true; }

# Node ids, in the host's swarm, of every node that is (or was) node2: by label or by hostname.
node2_entries() {
  local self; self=$(docker info --format '{{.Swarm.NodeID}}')
  {
    docker node ls -q --filter "node.label=$NODE2_LABEL_KEY=$NODE2_LABEL_VALUE" 2>/dev/null || true
    docker node ls --format '{{.ID}} {{.Hostname}}' 2>/dev/null | awk -v h="$NODE2_HOSTNAME" '$2 == h {print $1}' || true
  } | sort -u | grep -vx "$self" || true
}

host_node_state() { docker node inspect "$1" --format '{{.Status.State}} {{.Spec.Availability}}' 2>/dev/null || echo "unknown"; }

# --- up ----------------------------------------------------------------------------------------

step_node2_preflight() {
  (( EUID == 0 )) || die "node2.sh needs root (network namespaces, a second dockerd)"
  local tool
  # Debian images without the "important" packages lack ip; nsenter, unshare and flock are util-linux's (essential).
  if ! command -v ip >/dev/null; then
    log "installing Debian iproute2"
    apt-get update -q >>"$BED_LOGS/apt.log" 2>&1
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q iproute2 >>"$BED_LOGS/apt.log" 2>&1
  fi
  for tool in ip nsenter unshare dockerd flock; do command -v "$tool" >/dev/null || die "$tool is missing"; done
  [[ "$(docker info --format '{{.Swarm.ControlAvailable}}' 2>/dev/null)" == "true" ]] \
    || die "the host's docker is not a swarm manager (run test/bed/setup.sh docker_engine)"
  MANAGER_ADDR=$(manager_address)
  MANAGER_PORT=$(manager_port "$MANAGER_ADDR")
  [[ "$(ip -4 route get "$MANAGER_ADDR" 2>/dev/null)" == local* ]] \
    || die "the host's manager advertises $MANAGER_ADDR, which is not an address of this machine"
  check_no_clash
  log "host manager at $MANAGER_ADDR:$MANAGER_PORT; node2 at $NODE2_IP (namespace $NODE2_NETNS), host side $NODE2_HOST_IP"
}

step_node2_network() {
  if ! netns_exists; then ip netns add "$NODE2_NETNS"; fi
  if ! ip link show "$NODE2_VETH_HOST" >/dev/null 2>&1; then
    ip -n "$NODE2_NETNS" link del "$NODE2_VETH_NODE" 2>/dev/null || true
    ip link add "$NODE2_VETH_HOST" type veth peer name "$NODE2_VETH_NODE" netns "$NODE2_NETNS"
  fi
  ip addr replace "$NODE2_HOST_IP/24" dev "$NODE2_VETH_HOST"
  ip link set "$NODE2_VETH_HOST" up
  ip -n "$NODE2_NETNS" link set lo up
  ip -n "$NODE2_NETNS" addr replace "$NODE2_IP/24" dev "$NODE2_VETH_NODE"
  ip -n "$NODE2_NETNS" link set "$NODE2_VETH_NODE" up
  if [[ "$MANAGER_ADDR" == 127.* ]]; then
    # In the namespace the manager's loopback address is the host's, over the veth: not local there.
    ip -n "$NODE2_NETNS" addr del 127.0.0.1/8 dev lo 2>/dev/null || true
    sysctl -qw "net.ipv4.conf.$NODE2_VETH_HOST.route_localnet=1"
    in_netns sysctl -qw "net.ipv4.conf.$NODE2_VETH_NODE.route_localnet=1"
  fi
  ip -n "$NODE2_NETNS" route replace "$MANAGER_ADDR/32" via "$NODE2_HOST_IP" dev "$NODE2_VETH_NODE" src "$NODE2_IP"
  # The host answers node2 from the address its manager advertises, VXLAN included.
  ip route replace "$NODE2_IP/32" dev "$NODE2_VETH_HOST" src "$MANAGER_ADDR"
  wait_for "the manager's port $MANAGER_ADDR:$MANAGER_PORT from the namespace" 15 \
    in_netns timeout 2 bash -c "exec 3<>/dev/tcp/$MANAGER_ADDR/$MANAGER_PORT"
}

step_node2_dockerd() {
  local pid
  if pid=$(node2_pid); then
    node2_in_our_netns "$pid" || die "node2's dockerd (pid $pid) is not in namespace $NODE2_NETNS: run node2.sh down first"
    wait_for "node2's dockerd (pid $pid) to answer on $NODE2_SOCKET" 60 node2_docker version --format '{{.Server.Version}}'
    log "node2's dockerd is running (pid $pid)"
    return 0
  fi
  mkdir -p "$NODE2_RUN" "$NODE2_EXEC_ROOT" "$NODE2_DATA_ROOT"
  rm -f "$NODE2_PIDFILE" "$NODE2_SOCKET"
  # Swarm state of a node the host no longer lists would only make the daemon wait 20 s for a
  # manager that refuses it; a node still listed (its daemon died) comes back as itself.
  if [[ -d "$NODE2_DATA_ROOT/swarm" && -z "$(node2_entries)" ]]; then
    log "removing the swarm state of an earlier node2 that is no longer in the host's swarm"
    rm -rf "$NODE2_DATA_ROOT/swarm"
  fi
  # Its own configuration file, so that the host's /etc/docker/daemon.json (if any) stays the
  # host's; on 20.10 also its own engine key (the default is /etc/docker/key.json, the host's).
  local config="$NODE2_RUN/daemon.json"
  if dockerd --version | grep -q 'version 20\.'; then
    printf '{ "deprecated-key-path": "%s" }\n' "$NODE2_HOME/key.json" >"$config"
  else
    echo '{}' >"$config"
  fi
  log "starting node2's dockerd (log: $NODE2_LOG)"
  # nsenter: the namespace's network; unshare --uts: its own hostname. The mount namespace is the
  # host's, so the data-root's volumes are plain directories the host can see. The daemon must not
  # inherit the lock (fd 9): it would hold it for as long as it runs.
  setsid nohup nsenter --net="/run/netns/$NODE2_NETNS" unshare --uts \
    sh -c 'hostname "$1" && shift && exec "$@"' sh "$NODE2_HOSTNAME" \
    dockerd \
      --config-file "$config" \
      --host "$NODE2_DOCKER_HOST" \
      --data-root "$NODE2_DATA_ROOT" \
      --exec-root "$NODE2_EXEC_ROOT" \
      --pidfile "$NODE2_PIDFILE" \
      --cgroup-parent "$NODE2_CGROUP_PARENT" \
      --bip "$NODE2_BIP" \
      --default-address-pool "base=$NODE2_POOL,size=24" \
      >>"$NODE2_LOG" 2>&1 </dev/null 9>&- &
  wait_for "node2's dockerd to answer on $NODE2_SOCKET" 60 node2_docker version --format '{{.Server.Version}}'
  pid=$(node2_pid) || die "node2's dockerd answers but its pidfile $NODE2_PIDFILE names no running dockerd"
  log "node2's dockerd $(node2_docker version --format '{{.Server.Version}}') is running (pid $pid)"
}

node2_ready_on_host() {
  local id=$1 state
  state=$(host_node_state "$id")
  echo "node $id: $state"
  [[ "$state" == "ready $NODE2_AVAILABILITY" ]]
}

step_node2_join() {
  local state id cluster host_cluster
  state=$(node2_docker info --format '{{.Swarm.LocalNodeState}}')
  id=$(node2_node_id)
  cluster=$(node2_docker info --format '{{.Swarm.Cluster.ID}}' 2>/dev/null || true)
  host_cluster=$(docker info --format '{{.Swarm.Cluster.ID}}')
  if [[ "$state" == active && -n "$id" ]] && [[ "$(host_node_state "$id")" == "ready "* ]]; then
    log "node2 is a worker of the host's swarm already (node $id)"
  else
    if [[ "$state" != inactive ]]; then
      log "node2 is in swarm state '$state' (node ${id:-?}, cluster ${cluster:-?}; host cluster $host_cluster): leaving first"
      node2_docker swarm leave --force >/dev/null 2>&1 || true
      wait_for "node2 to leave its swarm" 30 bash -c "[[ \$(docker -H '$NODE2_DOCKER_HOST' info --format '{{.Swarm.LocalNodeState}}') == inactive ]]"
    fi
    local stale
    for stale in $(node2_entries); do
      log "removing the stale entry of an earlier node2 from the host's swarm: $stale ($(host_node_state "$stale"))"
      docker node rm --force "$stale" >/dev/null
    done
    local token; token=$(docker swarm join-token -q worker)
    node2_docker swarm join --token "$token" --availability "$NODE2_AVAILABILITY" \
      --advertise-addr "$NODE2_IP" --listen-addr "$NODE2_IP:2377" "$MANAGER_ADDR:$MANAGER_PORT" >/dev/null
    id=$(node2_node_id)
    [[ -n "$id" ]] || die "node2 joined but reports no node id"
  fi
  docker node update --availability "$NODE2_AVAILABILITY" --label-add "$NODE2_LABEL_KEY=$NODE2_LABEL_VALUE" "$id" >/dev/null
  wait_for "node2 ($id) to be ready ($NODE2_AVAILABILITY) in the host's swarm" 60 node2_ready_on_host "$id"
  NODE2_ID=$id
}

step_node2_images() {
  local image missing=() host_id node_id
  for image in "${NODE2_IMAGES[@]}"; do
    host_id=$(docker image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
    if [[ -z "$host_id" ]]; then warn "$image is not on the host: not copied (run test/bed/setup.sh)"; continue; fi
    node_id=$(node2_docker image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
    [[ "$node_id" == "$host_id" ]] || missing+=("$image")
  done
  if (( ${#missing[@]} == 0 )); then log "node2 has every image (${#NODE2_IMAGES[@]})"; return 0; fi
  log "copying ${#missing[@]} image(s) to node2: ${missing[*]}"
  docker save "${missing[@]}" | node2_docker load -q >>"$BED_LOGS/node2-images.log"
  for image in "${missing[@]}"; do
    [[ "$(node2_docker image inspect --format '{{.Id}}' "$image" 2>/dev/null)" == "$(docker image inspect --format '{{.Id}}' "$image")" ]] \
      || die "$image did not arrive on node2"
  done
}

step_node2_describe() {
  local pid; pid=$(node2_pid)
  cat >"$NODE2_STATE.partial" <<JSON
{
  "nodeId": "$NODE2_ID",
  "hostname": "$NODE2_HOSTNAME",
  "dockerHost": "$NODE2_DOCKER_HOST",
  "address": "$NODE2_IP",
  "hostAddress": "$NODE2_HOST_IP",
  "managerAddress": "$MANAGER_ADDR:$MANAGER_PORT",
  "netns": "$NODE2_NETNS",
  "label": "$NODE2_LABEL_KEY=$NODE2_LABEL_VALUE",
  "availability": "$NODE2_AVAILABILITY",
  "dataRoot": "$NODE2_DATA_ROOT",
  "pid": $pid
}
JSON
  mv "$NODE2_STATE.partial" "$NODE2_STATE"
  log "wrote $NODE2_STATE"
}

# --- down (every step runs, whatever the one before it left) -----------------------------------

down_failures=0

run_down_step() {
  local name=$1 status=0
  timed_step "$@" || status=$?
  if (( status != 0 )); then
    down_failures=$(( down_failures + 1 ))
    warn "step $name failed (status $status); going on with the rest of the tear-down"
  fi
}

# Like wait_for, but a timeout is reported and the tear-down goes on.
wait_or_warn() { poll_until "$@" || { warn "gave up after $poll_failure"; return 1; }; }

no_tasks_running_on() {
  local running
  running=$(docker node ps "$1" --filter desired-state=running --format '{{.Name}} {{.CurrentState}}' 2>/dev/null | grep -v '^$' || true)
  [[ -z "$running" ]] || { echo "$running"; return 1; }
}

step_node2_drain() {
  local id ids
  ids=$(node2_entries)
  [[ -n "$ids" ]] || { log "no node2 in the host's swarm"; return 0; }
  for id in $ids; do
    local tasks
    tasks=$(docker node ps "$id" --filter desired-state=running --format '{{.Name}}' 2>/dev/null | sort -u | tr '\n' ' ' || true)
    [[ -z "${tasks// /}" ]] || warn "tasks still meant to run on node2 ($id): $tasks(their services stay; tasks pinned to node2 stay pending)"
    [[ "$(host_node_state "$id")" == "ready "* ]] || continue
    docker node update --availability drain "$id" >/dev/null || true
    wait_or_warn "node2 ($id) to have no running task" 60 no_tasks_running_on "$id" || true
  done
}

step_node2_leave() {
  if ! node2_answers; then log "node2's dockerd does not answer: nothing to leave"; return 0; fi
  local state; state=$(node2_docker info --format '{{.Swarm.LocalNodeState}}')
  if [[ "$state" == inactive ]]; then log "node2 is in no swarm"; return 0; fi
  timeout 60 docker -H "$NODE2_DOCKER_HOST" swarm leave --force >/dev/null
}

step_node2_remove_node() {
  local id
  for id in $(node2_entries); do
    log "removing node $id ($(host_node_state "$id")) from the host's swarm"
    docker node rm --force "$id" >/dev/null
  done
  wait_or_warn "node2 to be gone from the host's node list" 30 no_node2_entries
}

no_node2_entries() {
  local left; left=$(node2_entries | tr '\n' ' ')
  [[ -z "${left// /}" ]] || { echo "still listed: $left"; return 1; }
}

step_node2_clean_daemon() {
  if ! node2_answers; then log "node2's dockerd does not answer: nothing to clean in it"; return 0; fi
  local containers volumes
  containers=$(node2_docker ps -aq)
  # shellcheck disable=SC2086
  [[ -z "$containers" ]] || { log "removing node2's containers: $(echo $containers)"; node2_docker rm -f $containers >/dev/null; }
  # Volumes are node-local: once the node is gone, its volumes are unreachable for the swarm.
  volumes=$(node2_docker volume ls -q)
  # shellcheck disable=SC2086
  [[ -z "$volumes" ]] || { log "removing node2's volumes: $(echo $volumes)"; node2_docker volume rm -f $volumes >/dev/null; }
}

# Processes of node2 that outlive its dockerd: containerd, shims, docker-proxy (in the namespace)
# and the containers themselves (in the cgroup parent). All of them were started by node2.sh.
node2_processes() {
  if netns_exists; then ip netns pids "$NODE2_NETNS" 2>/dev/null || true; fi
  local procs
  for procs in /sys/fs/cgroup/*"$NODE2_CGROUP_PARENT"/cgroup.procs /sys/fs/cgroup/*"$NODE2_CGROUP_PARENT"/*/cgroup.procs \
               /sys/fs/cgroup/*/*"$NODE2_CGROUP_PARENT"/cgroup.procs /sys/fs/cgroup/*/*"$NODE2_CGROUP_PARENT"/*/cgroup.procs; do
    [[ -r "$procs" ]] || continue
    cat "$procs"
  done 2>/dev/null | sort -un
}

none_left() {
  local left; left=$(node2_processes | tr '\n' ' ')
  [[ -z "${left// /}" ]] || { echo "pids $left"; return 1; }
}

step_node2_stop_daemon() {
  local pid
  if pid=$(node2_pid); then
    log "stopping node2's dockerd (pid $pid)"
    kill -TERM "$pid"
    if ! wait_or_warn "node2's dockerd (pid $pid) to exit" 30 bash -c "! kill -0 $pid 2>/dev/null"; then
      kill -KILL "$pid" 2>/dev/null || true
    fi
  else
    log "node2's dockerd is not running"
  fi
  local left; left=$(node2_processes | tr '\n' ' ')
  if [[ -n "${left// /}" ]]; then
    log "ending node2's remaining processes: $left"
    # shellcheck disable=SC2086
    kill -TERM $left 2>/dev/null || true
    if ! wait_or_warn "node2's remaining processes to exit" 15 none_left; then
      left=$(node2_processes | tr '\n' ' ')
      # shellcheck disable=SC2086
      [[ -z "${left// /}" ]] || kill -KILL $left 2>/dev/null || true
      wait_or_warn "node2's remaining processes to be killed" 10 none_left
    fi
  fi
  rm -f "$NODE2_PIDFILE" "$NODE2_SOCKET"
  # The node is out of the swarm (or is about to be): its swarm state must not come back with the
  # next daemon (it would wait 20 s for a manager that refuses it).
  if ! node2_pid >/dev/null; then rm -rf "$NODE2_DATA_ROOT/swarm"; fi
}

# A dockerd that was killed leaves its mounts (container file systems, namespace files) behind.
step_node2_unmount() {
  local mounts mount
  mounts=$(awk -v a="$NODE2_RUN" -v b="$NODE2_DATA_ROOT" \
    '$2 == a || $2 == b || index($2, a "/") == 1 || index($2, b "/") == 1 {print $2}' /proc/mounts | sort -ru)
  [[ -n "$mounts" ]] || { log "no mounts of node2 left"; return 0; }
  for mount in $mounts; do
    log "unmounting $mount"
    umount "$mount" 2>/dev/null || umount -l "$mount"
  done
}

step_node2_network_off() {
  if netns_exists; then ip netns del "$NODE2_NETNS"; fi
  # A veth whose namespace went away first is gone with it; one left half-made is removed here.
  if ip link show "$NODE2_VETH_HOST" >/dev/null 2>&1; then ip link del "$NODE2_VETH_HOST"; fi
  local dir
  for dir in /sys/fs/cgroup/*"$NODE2_CGROUP_PARENT" /sys/fs/cgroup/*/*"$NODE2_CGROUP_PARENT"; do
    [[ -d "$dir" ]] || continue
    find "$dir" -depth -type d -exec rmdir {} \; 2>/dev/null || warn "could not remove cgroup $dir (still in use?)"
  done
  rm -rf "$NODE2_RUN"
}

step_node2_check_host() {
  local addr nodes
  addr=$(docker info --format '{{.Swarm.NodeAddr}}')
  nodes=$(docker node ls --format '{{.Hostname}} {{.Status}} {{.ManagerStatus}}' | tr '\n' ';')
  log "host swarm: manager at $addr; nodes: $nodes"
  [[ -z "$(node2_entries)" ]] || die "node2 is still in the host's node list"
}

# --- commands ----------------------------------------------------------------------------------

node2_up() {
  MANAGER_ADDR="" MANAGER_PORT="" NODE2_ID=""
  # The steps run in this shell (they set MANAGER_ADDR, NODE2_ID), timed like run_step.
  local step t0
  for step in preflight network dockerd join images describe; do
    t0=$(date +%s)
    log "step node2_$step: start"
    "step_node2_$step"
    log "step node2_$step: done in $(( $(date +%s) - t0 ))s"
  done
  log "node2 ready: node id $NODE2_ID, hostname $NODE2_HOSTNAME, docker host $NODE2_DOCKER_HOST, address $NODE2_IP"
  echo "$NODE2_ID"
}

node2_down() {
  run_down_step node2_drain step_node2_drain
  run_down_step node2_leave step_node2_leave
  run_down_step node2_remove_node step_node2_remove_node
  run_down_step node2_clean_daemon step_node2_clean_daemon
  run_down_step node2_stop_daemon step_node2_stop_daemon
  run_down_step node2_unmount step_node2_unmount
  run_down_step node2_network_off step_node2_network_off
  run_down_step node2_check_host step_node2_check_host
  (( down_failures == 0 )) || die "$down_failures tear-down step(s) failed (log files in $BED_LOGS)"
  log "node2 is gone"
}

node2_status() {
  local pid="" id=""
  if netns_exists; then echo "namespace: $NODE2_NETNS"; else echo "namespace: none"; fi
  if pid=$(node2_pid); then echo "dockerd: pid $pid"; else echo "dockerd: not running"; fi
  if node2_answers; then
    id=$(node2_node_id)
    echo "swarm: $(node2_docker info --format '{{.Swarm.LocalNodeState}}') ${id:+(node $id)}"
  fi
  local entry
  for entry in $(node2_entries); do echo "host swarm lists: $entry $(host_node_state "$entry")"; done
  [[ -f "$NODE2_STATE" ]] && echo "state: $NODE2_STATE"
  return 0
}

main() {
  local command=${1:-}
  case "$command" in
    up|down|status|id) ;;
    *) echo "usage: $0 up|down|status|id" >&2; exit 2 ;;
  esac
  if [[ "$command" == id ]]; then
    local id; id=$(node2_node_id)
    [[ -n "$id" ]] || die "node2 is not up"
    echo "$id"; return 0
  fi
  if [[ "$command" == status ]]; then node2_status; return 0; fi
  mkdir -p "$NODE2_HOME"
  exec 9>"$NODE2_HOME/node2.lock"
  flock -w 600 9 || die "another node2.sh kept $NODE2_HOME/node2.lock for 600s"
  if [[ "$command" == up ]]; then
    # An up that fails half-way takes away what it set up, unless asked to keep it for a look.
    trap 'status=$?; if (( status != 0 )) && [[ -z "${WARMSTACK_BED_NODE2_KEEP_ON_FAILURE:-}" ]]; then log "up failed: tearing node2 down again"; node2_down || true; fi' EXIT
    node2_up
    trap - EXIT
  else
    node2_down
  fi
}

main "$@"
