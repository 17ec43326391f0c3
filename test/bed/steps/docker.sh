# Docker Engine, a single-node swarm on loopback, and the proxy's overlay network.

docker_ready() { docker version --format '{{.Server.Version}}'; }

# A daemon killed with SIGKILL (a host crash, the dockerd-restart test) leaves its pid file behind,
# and dockerd refuses to start while /proc has that pid, which a zombie or a recycled pid still does.
daemon_gone() {
  local pid=$1 name=$2
  [[ -r /proc/$pid/stat ]] || return 0
  [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == "$name" ]] || return 0
  [[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" == Z ]] && return 0
  echo "$name pid $pid is still running"
  return 1
}

pid_in() { [[ -f "$1" ]] && tr -dc 0-9 <"$1"; }

# dockerd's file goes once its daemon is gone (one still on its way out is waited for); its
# containerd's only when that is gone too, since dockerd reconnects to a containerd that lives on.
clear_stale_pid_files() {
  local pid
  pid=$(pid_in /var/run/docker.pid || true)
  if [[ -n "$pid" ]]; then
    wait_for "dockerd (pid $pid, from /var/run/docker.pid) to exit" 60 daemon_gone "$pid" dockerd
    log "removing the stale pid file of dockerd (pid $pid)"
  fi
  rm -f /var/run/docker.pid
  pid=$(pid_in /var/run/docker/containerd/containerd.pid || true)
  if [[ -n "$pid" ]] && daemon_gone "$pid" containerd >/dev/null; then
    log "removing the stale pid file of containerd (pid $pid)"
    rm -f /var/run/docker/containerd/containerd.pid
  fi
}

step_docker_engine() {
  if ! command -v dockerd >/dev/null; then
    log "installing Debian docker.io"
    apt-get update -q >"$BED_LOGS/apt.log" 2>&1
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io >>"$BED_LOGS/apt.log" 2>&1
  fi
  if ! docker_ready >/dev/null 2>&1; then
    clear_stale_pid_files
    log "starting dockerd (log: $BED_LOGS/dockerd.log)"
    setsid nohup dockerd >"$BED_LOGS/dockerd.log" 2>&1 </dev/null &
    wait_for "the docker socket" 60 docker_ready
  fi
  log "docker engine $(docker_ready)"
  if [[ "$(docker info --format '{{.Swarm.LocalNodeState}}')" != "active" ]]; then
    docker swarm init --advertise-addr 127.0.0.1 >/dev/null
  fi
  if ! docker network inspect "$BED_PROXY_NETWORK" >/dev/null 2>&1; then
    docker network create --driver overlay --attachable "$BED_PROXY_NETWORK" >/dev/null
  fi
}
