# Images, all built locally: a debootstrapped Debian base, Traefik, Keycloak and the fixture app.
# No image registry is reachable, so every stack deploys with --resolve-image never.

BASE_IMAGE="warmstack/base:bookworm"
JRE_IMAGE="warmstack/jre:17"
TRAEFIK_IMAGE="warmstack/traefik:$TRAEFIK_VERSION"
FIXTURE_APP_IMAGE="warmstack/fixture-app"
# Tags the fixture recipes use as "upstream versions" of the fixture app; one build, several tags.
FIXTURE_APP_TAGS=(1.0 1.1 1.2 2.0)

step_base_image() {
  if image_exists "$BASE_IMAGE"; then log "$BASE_IMAGE present"; return 0; fi
  local tarball="$BED_CACHE/base/bookworm-minbase.tar"
  if [[ ! -f "$tarball" ]]; then
    command -v debootstrap >/dev/null || {
      apt-get update -q >>"$BED_LOGS/apt.log" 2>&1
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >>"$BED_LOGS/apt.log" 2>&1
    }
    local root="$BED_CACHE/base/rootfs"
    rm -rf "$root"; mkdir -p "$root"
    log "debootstrap minbase bookworm (log: $BED_LOGS/debootstrap.log)"
    debootstrap --variant=minbase bookworm "$root" "$(debian_mirror)" >"$BED_LOGS/debootstrap.log" 2>&1
    tar -C "$root" -cf "$tarball.partial" .
    mv "$tarball.partial" "$tarball"
    rm -rf "$root"
  fi
  docker import "$tarball" "$BASE_IMAGE" >/dev/null
}

build_image() {
  local tag=$1 dockerfile=$2 context=$3; shift 3
  docker build -q -t "$tag" -f "$dockerfile" "$@" "$context" >>"$BED_LOGS/docker-build.log" 2>&1 \
    || die "docker build of $tag failed (see $BED_LOGS/docker-build.log)"
}

step_traefik_binary() {
  local binary="$BED_CACHE/traefik/traefik-v$TRAEFIK_VERSION"
  [[ -x "$binary" ]] && { log "traefik v$TRAEFIK_VERSION cached"; return 0; }
  local dir="$BED_CACHE/build/traefik-v$TRAEFIK_VERSION" upstream_mod
  mkdir -p "$dir" "$(dirname "$binary")"
  log "building traefik v$TRAEFIK_VERSION from Go modules (several minutes; log: $BED_LOGS/traefik-build.log)"
  (
    cd "$dir"
    upstream_mod=$(go mod download -json "github.com/traefik/traefik/v3@v$TRAEFIK_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
    # Traefik only builds with its own replace and exclude directives, which a dependent module
    # does not inherit: copy them into the wrapper module.
    {
      printf 'module warmstack.bed/traefik\n\ngo 1.26\n\n'
      awk '/^replace \(/,/^\)/ {print} /^replace [^(]/ {print} /^exclude \(/,/^\)/ {print} /^exclude [^(]/ {print}' "$upstream_mod"
    } >go.mod
    go get -tool "github.com/traefik/traefik/v3/cmd/traefik@v$TRAEFIK_VERSION"
    go mod tidy -e
    CGO_ENABLED=0 go build -o "$binary.partial" github.com/traefik/traefik/v3/cmd/traefik
  ) >"$BED_LOGS/traefik-build.log" 2>&1
  mv "$binary.partial" "$binary"
}

step_traefik() {
  image_exists "$TRAEFIK_IMAGE" && { log "$TRAEFIK_IMAGE present"; return 0; }
  local binary="$BED_CACHE/traefik/traefik-v$TRAEFIK_VERSION" context="$BED_CACHE/traefik/context"
  [[ -x "$binary" ]] || die "no traefik binary at $binary: run the traefik_binary step first"
  mkdir -p "$context"; cp "$binary" "$context/traefik"
  build_image "$TRAEFIK_IMAGE" "$BED_REPO/test/bed/images/traefik.Dockerfile" "$context"
}

keycloak_tarball() {
  local version=$1 dir="$BED_CACHE/keycloak"
  local tarball="$dir/keycloak-quarkus-dist-$version.tar.gz"
  if [[ ! -f "$tarball" ]]; then
    mkdir -p "$dir"
    mvn -q -B dependency:copy "-Dartifact=org.keycloak:keycloak-quarkus-dist:$version:tar.gz" \
      "-DoutputDirectory=$dir" >>"$BED_LOGS/maven.log" 2>&1 \
      || die "Maven could not fetch keycloak-quarkus-dist $version (see $BED_LOGS/maven.log)"
  fi
  echo "$tarball"
}

step_keycloak() {
  if ! image_exists "$JRE_IMAGE"; then
    log "building $JRE_IMAGE (apt inside docker build)"
    build_image "$JRE_IMAGE" "$BED_REPO/test/bed/images/jre.Dockerfile" "$BED_REPO/test/bed/images"
  fi
  local version tarball
  for version in "${KEYCLOAK_VERSIONS[@]}"; do
    image_exists "warmstack/keycloak:$version" && { log "warmstack/keycloak:$version present"; continue; }
    tarball=$(keycloak_tarball "$version")
    log "building warmstack/keycloak:$version"
    build_image "warmstack/keycloak:$version" "$BED_REPO/test/bed/images/keycloak.Dockerfile" \
      "$(dirname "$tarball")" --build-arg "KEYCLOAK_VERSION=$version"
  done
}

step_fixture_app() {
  local src="test/fixtures/images/fixture-app" hash
  hash=$(source_hash "$src")
  local current
  current=$(docker image inspect -f '{{index .Config.Labels "warmstack.source-hash"}}' "$FIXTURE_APP_IMAGE:latest" 2>/dev/null || true)
  if [[ "$current" != "$hash" ]]; then
    local context="$BED_CACHE/fixture-app/context"
    mkdir -p "$context"
    (cd "$BED_REPO/$src" && CGO_ENABLED=0 go build -o "$context/fixture-app" .) >"$BED_LOGS/fixture-app-build.log" 2>&1
    build_image "$FIXTURE_APP_IMAGE:latest" "$BED_REPO/test/bed/images/fixture-app.Dockerfile" "$context" \
      --label "warmstack.source-hash=$hash"
  fi
  local tag
  for tag in "${FIXTURE_APP_TAGS[@]}"; do docker tag "$FIXTURE_APP_IMAGE:latest" "$FIXTURE_APP_IMAGE:$tag"; done
}
