#!/usr/bin/env bash
# Sets up the real test bed from nothing: Docker Engine + swarm, Pulumi CLI and the bed's language
# host, Traefik, Keycloak images, the fixture-app image, the fixture recipe repositories, a Gitea
# serving them, a PostgreSQL on loopback, and Debian's Nix tools for the checks of nix/.
# Idempotent and resumable: every step checks the cache first, so a warm run takes seconds.
#   test/bed/setup.sh            all steps
#   test/bed/setup.sh STEP...    only these steps (names as printed)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
for step_file in "$(dirname "$0")"/steps/*.sh; do source "$step_file"; done

# The Go builds are CPU-bound and the image steps mostly download: by default the builds run in
# the background while the image steps go on, and the steps that need both wait for them.
BUILD_STEPS=(pulumi_cli language_host traefik_binary gitea_binary)
IMAGE_STEPS=(docker_engine nix postgres base_image keycloak fixture_app recipes)
FINAL_STEPS=(traefik proxy gitea describe)
ALL_STEPS=("${BUILD_STEPS[@]}" "${IMAGE_STEPS[@]}" "${FINAL_STEPS[@]}")

run_steps() { local step; for step in "$@"; do run_step "$step" "step_$step"; done; }

log "cache: $BED_CACHE"
if (( $# )); then
  for step in "$@"; do
    [[ " ${ALL_STEPS[*]} " == *" $step "* ]] || die "unknown step '$step' (steps: ${ALL_STEPS[*]})"
  done
  run_steps "$@"
else
  builds_log="$BED_LOGS/setup-builds.log"
  log "Go builds in the background (progress: $builds_log)"
  run_steps "${BUILD_STEPS[@]}" >"$builds_log" 2>&1 &
  builds=$!
  trap 'kill "$builds" 2>/dev/null || true' EXIT
  run_steps "${IMAGE_STEPS[@]}"
  wait "$builds" || { cat "$builds_log" >&2; die "the Go builds failed"; }
  trap - EXIT
  cat "$builds_log"
  run_steps "${FINAL_STEPS[@]}"
fi
log "bed ready"
