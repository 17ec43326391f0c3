# The bed's Traefik: the traefik fixture recipe's first version, deployed as the stack "bedproxy"
# with its web entrypoint published on the bed's base port (host mode: no routing mesh here).

BED_PROXY_STACK="bedproxy"
BED_PROXY_VERSION="1.0.0+3.6.12"

proxy_published_port() {
  docker service inspect "${BED_PROXY_STACK}_app" \
    --format '{{range .Endpoint.Spec.Ports}}{{.PublishedPort}}{{end}}' 2>/dev/null || true
}

proxy_pings() { curl -fsS --max-time 2 "http://127.0.0.1:$BED_PORT_BASE/ping"; }

# A dockerd restart kills the proxy's task; once its restart attempts are used up Swarm keeps the
# service at 0/1 with no task meant to run, and only a forced update schedules a new one.
# (A task waiting out the restart delay wants "Ready", which the desired-state filter cannot match.)
proxy_has_live_task() {
  docker service ps --format '{{.DesiredState}}' "${BED_PROXY_STACK}_app" 2>/dev/null | grep -qvxE 'Shutdown|Remove|Complete'
}

step_proxy() {
  if [[ "$(proxy_published_port)" != "$BED_PORT_BASE" ]]; then
    if ss -Hltn "sport = :$BED_PORT_BASE" | grep -q .; then
      die "port $BED_PORT_BASE is already in use by another process; set WARMSTACK_BED_PORT_BASE to a free port"
    fi
    local work; work=$(mktemp -d)
    git -C "$BED_RECIPES/traefik" archive "$BED_PROXY_VERSION" | tar -x -C "$work"
    STACK_NAME="$BED_PROXY_STACK" DOMAIN="proxy.$BED_DOMAIN" WEB_PORT="$BED_PORT_BASE" \
      PROXY_NETWORK="$BED_PROXY_NETWORK" \
      docker stack deploy --resolve-image never $(stack_deploy_detach_flag) -c "$work/compose.yml" "$BED_PROXY_STACK" >/dev/null
    rm -rf "$work"
  elif ! proxy_has_live_task; then
    log "the bed proxy has no task left to run (restart attempts used up); starting it again"
    docker service update --force --detach=true "${BED_PROXY_STACK}_app" >/dev/null
  fi
  wait_for "the bed proxy to answer /ping on 127.0.0.1:$BED_PORT_BASE" 90 proxy_pings
}
