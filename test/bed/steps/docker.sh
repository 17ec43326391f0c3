# Docker Engine, a single-node swarm on loopback, and the proxy's overlay network.

docker_ready() { docker version --format '{{.Server.Version}}'; }

step_docker_engine() {
  if ! command -v dockerd >/dev/null; then
    log "installing Debian docker.io"
    apt-get update -q >"$BED_LOGS/apt.log" 2>&1
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io >>"$BED_LOGS/apt.log" 2>&1
  fi
  if ! docker_ready >/dev/null 2>&1; then
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
