# Writes bed.json: what the integration tests need to find the bed (paths, ports, images, Gitea).

# Where a Gitea user's secrets are kept: the file names, never the secrets.
gitea_user_json() {
  printf '{ "name": "%s", "tokenFile": "%s", "passwordFile": "%s" }' \
    "$1" "$(gitea_token_file "$1")" "$(gitea_password_file "$1")"
}

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
  "keycloakVersions": ["${KEYCLOAK_VERSIONS[0]}", "${KEYCLOAK_VERSIONS[1]}"],
  "postgres": { "host": "127.0.0.1", "port": $PG_PORT, "user": "$PG_USER", "database": "$PG_DB", "passwordFile": "$PG_PASSWORD_FILE" },
  "gitea": {
    "url": "$GITEA_URL",
    "version": "$GITEA_VERSION",
    "org": "$GITEA_ORG",
    "users": {
      "admin": $(gitea_user_json "$GITEA_ADMIN"),
      "maintainer": $(gitea_user_json "$GITEA_MAINTAINER"),
      "outsider": $(gitea_user_json "$GITEA_OUTSIDER")
    }
  }
}
JSON
  mv "$file.partial" "$file"
  log "wrote $file"
}
