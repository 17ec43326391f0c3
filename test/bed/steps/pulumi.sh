# The Pulumi CLI built from Go modules, and the bed's own small nodejs language host.

step_pulumi_cli() {
  install -m 0755 "$BED_REPO/test/bed/pulumi-resource-pulumi-nodejs" "$BED_BIN/pulumi-resource-pulumi-nodejs"
  if [[ "$("$BED_BIN/pulumi" version 2>/dev/null)" == "v$PULUMI_VERSION" ]]; then
    log "pulumi v$PULUMI_VERSION cached"
    return 0
  fi
  local dir="$BED_CACHE/build/pulumi-v$PULUMI_VERSION"
  mkdir -p "$dir"
  log "building pulumi v$PULUMI_VERSION from Go modules (several minutes; log: $BED_LOGS/pulumi-build.log)"
  (
    cd "$dir"
    [[ -f go.mod ]] || printf 'module warmstack.bed/pulumi-cli\n\ngo 1.26\n' >go.mod
    go mod edit -replace github.com/atotto/clipboard=github.com/tgummerer/clipboard@v0.0.0-20241001131231-d02d263e614e
    go get -tool "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi@v$PULUMI_VERSION" "github.com/pulumi/pulumi/sdk/v3@v$PULUMI_VERSION"
    CGO_ENABLED=0 go build \
      -ldflags "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$PULUMI_VERSION" \
      -o "$BED_BIN/pulumi.partial" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi
  ) >"$BED_LOGS/pulumi-build.log" 2>&1
  mv "$BED_BIN/pulumi.partial" "$BED_BIN/pulumi"
  log "pulumi $("$BED_BIN/pulumi" version)"
}

step_language_host() {
  local src="test/bed/language-host" hash stamp="$BED_CACHE/stamps/language-host"
  hash=$(source_hash "$src")
  if [[ -x "$BED_BIN/pulumi-language-nodejs" && "$(cat "$stamp" 2>/dev/null)" == "$hash" ]]; then
    log "language host cached"
    return 0
  fi
  mkdir -p "$(dirname "$stamp")"
  (cd "$BED_REPO/$src" && CGO_ENABLED=0 go build -o "$BED_BIN/pulumi-language-nodejs.partial" .) \
    >"$BED_LOGS/language-host-build.log" 2>&1
  mv "$BED_BIN/pulumi-language-nodejs.partial" "$BED_BIN/pulumi-language-nodejs"
  echo "$hash" >"$stamp"
}
