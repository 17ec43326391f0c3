# Shared helpers for the bed scripts: cache locations, step timing, bounded waits.
# Sourced, never run.

BED_CACHE="${WARMSTACK_BED_CACHE:-/var/cache/warmstack-bed}"
BED_BIN="$BED_CACHE/bin"
BED_LOGS="${WARMSTACK_BED_LOGS:-/var/log/warmstack-bed}"
BED_PORT_BASE="${WARMSTACK_BED_PORT_BASE:-47080}"
BED_DOMAIN="${WARMSTACK_BED_DOMAIN:-warm.test}"
BED_PROXY_NETWORK="${WARMSTACK_BED_PROXY_NETWORK:-proxy}"
BED_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

PULUMI_VERSION="3.274.1"
TRAEFIK_VERSION="3.6.12"
KEYCLOAK_VERSIONS=(26.5.6 26.7.3)
GITEA_VERSION="1.27.3"

export PATH="$BED_BIN:$PATH"
mkdir -p "$BED_CACHE" "$BED_BIN" "$BED_LOGS"

bed_started_at=$(date +%s)

log() { printf '[bed %4ss] %s\n' "$(( $(date +%s) - bed_started_at ))" "$*"; }

die() { printf '[bed] error: %s\n' "$*" >&2; exit 1; }

# Runs one named step in a subshell and reports its elapsed time; returns the step's status.
# A subshell outside any && / || list, so that errexit stays in force inside the step.
timed_step() {
  local name=$1; shift
  local t0 status; t0=$(date +%s)
  log "step $name: start"
  set +e
  ( set -e; "$@" )
  status=$?
  set -e
  log "step $name: done in $(( $(date +%s) - t0 ))s"
  return "$status"
}

# A failing step stops the set-up.
run_step() {
  local name=$1
  timed_step "$@" || die "step $name failed (log files in $BED_LOGS)"
}

# Polls a command until it succeeds or the deadline passes; at the deadline it returns 1 and leaves
# what it waited for and the last output in $poll_failure.
poll_until() {
  local what=$1 seconds=$2; shift 2
  local deadline=$(( $(date +%s) + seconds )) out=""
  while true; do
    if out=$("$@" 2>&1); then return 0; fi
    if (( $(date +%s) >= deadline )); then
      poll_failure="${seconds}s waiting for $what; last state: ${out:-<no output>}"
      return 1
    fi
    sleep 1
  done
}

# On timeout the set-up stops, showing the last output.
wait_for() { poll_until "$@" || die "timed out after $poll_failure"; }

# Hash of the given files and directories' contents, to key cached artifacts on their sources.
source_hash() {
  (cd "$BED_REPO" && find "$@" -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
}

# Newer docker CLIs wait for convergence unless told not to; 20.10's has no such flag.
stack_deploy_detach_flag() {
  if docker stack deploy --help 2>/dev/null | grep -q -- '--detach'; then echo "--detach=true"; fi
}

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

# The Debian mirror this machine's apt uses, so the bed never names a host of its own.
debian_mirror() {
  local uri
  uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  if [[ -z "$uri" ]]; then
    uri=$(awk '$1 == "deb" && $0 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  fi
  [[ -n "$uri" ]] || die "no Debian mirror found in the apt sources"
  echo "$uri"
}
