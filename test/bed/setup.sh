#!/usr/bin/env bash
# Sets up the real test bed from nothing: Docker Engine + swarm, Pulumi CLI and the bed's language
# host, Traefik, Keycloak images, the fixture-app image and the fixture recipe repositories.
# Idempotent and resumable: every step checks the cache first, so a warm run takes seconds.
#   test/bed/setup.sh            all steps
#   test/bed/setup.sh STEP...    only these steps (names as printed)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
for step_file in "$(dirname "$0")"/steps/*.sh; do source "$step_file"; done

ALL_STEPS=(docker_engine pulumi_cli language_host base_image traefik keycloak fixture_app recipes proxy describe)

steps=("$@")
(( ${#steps[@]} )) || steps=("${ALL_STEPS[@]}")
for step in "${steps[@]}"; do
  [[ " ${ALL_STEPS[*]} " == *" $step "* ]] || die "unknown step '$step' (steps: ${ALL_STEPS[*]})"
done
log "cache: $BED_CACHE"
for step in "${steps[@]}"; do run_step "$step" "step_$step"; done
log "bed ready"
