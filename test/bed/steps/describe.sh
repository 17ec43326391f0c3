# Writes bed.json: what the integration tests need to find the bed (paths, ports, images).

step_describe() {
  local file="$BED_CACHE/bed.json"
  cat >"$file.partial" <<JSON
{
  "cache": "$BED_CACHE",
  "bin": "$BED_BIN",
  "recipes": "$BED_RECIPES",
  "domain": "$BED_DOMAIN",
  "proxyNetwork": "$BED_PROXY_NETWORK",
  "proxyPort": $BED_PORT_BASE,
  "portBase": $BED_PORT_BASE,
  "pulumiVersion": "$PULUMI_VERSION",
  "keycloakVersions": ["${KEYCLOAK_VERSIONS[0]}", "${KEYCLOAK_VERSIONS[1]}"]
}
JSON
  mv "$file.partial" "$file"
  log "wrote $file"
}
