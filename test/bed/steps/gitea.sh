# A real Gitea for the forge-bridge tests: built from Go modules, run from the cache on loopback
# (SQLite, offline, no registration), with three users, their API tokens, and the organization
# coop-cloud holding one public repository per fixture recipe (main + every annotated tag).
# Secrets (passwords, tokens, Gitea's own keys) live in 0600 files under $BED_GITEA_DIR/secrets;
# they never reach a command line, a log or the console.

BED_GITEA_DIR="$BED_CACHE/gitea"
GITEA_BINARY="$BED_GITEA_DIR/gitea-v$GITEA_VERSION"
# Gitea's templates, options and public files: without the frontend build (bindata), the server
# reads them from STATIC_ROOT_PATH. Copied out of the module cache so it is not needed at run time.
GITEA_STATIC="$BED_GITEA_DIR/static-v$GITEA_VERSION"
GITEA_INI="$BED_GITEA_DIR/app.ini"
GITEA_PID_FILE="$BED_GITEA_DIR/gitea.pid"
GITEA_SECRETS="$BED_GITEA_DIR/secrets"
GITEA_PORT=$(( BED_PORT_BASE + 3 ))
GITEA_URL="http://127.0.0.1:$GITEA_PORT"
GITEA_ORG="coop-cloud"
GITEA_ADMIN="warmstack-admin"
GITEA_MAINTAINER="maintainer"
GITEA_OUTSIDER="outsider"
GITEA_USERS=("$GITEA_ADMIN" "$GITEA_MAINTAINER" "$GITEA_OUTSIDER")
# Enough to create the organization, repositories, collaborators and webhooks, comment on issues
# and pull requests, set commit statuses and read users. The admin also manages users.
GITEA_ADMIN_SCOPES="write:admin,write:organization,write:repository,write:issue,write:user"
GITEA_USER_SCOPES="read:organization,write:repository,write:issue,read:user"
GITEA_TOKEN_NAME_PREFIX="warmstack-bed"

step_gitea_binary() {
  if [[ -x "$GITEA_BINARY" && -d "$GITEA_STATIC" ]]; then log "gitea v$GITEA_VERSION cached"; return 0; fi
  local dir="$BED_CACHE/build/gitea-v$GITEA_VERSION" upstream
  mkdir -p "$dir" "$BED_GITEA_DIR"
  log "building gitea v$GITEA_VERSION from Go modules (several minutes; log: $BED_LOGS/gitea-build.log)"
  (
    cd "$dir"
    upstream=$(go mod download -json "code.gitea.io/gitea@v$GITEA_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
    [[ -f "$upstream/go.mod" ]] || { echo "code.gitea.io/gitea@v$GITEA_VERSION: no module directory" >&2; exit 1; }
    # 1.27 renamed its module to gitea.dev while the proxy serves it as code.gitea.io/gitea, so the
    # wrapper requires the new name and replaces it by the old path. Gitea only builds with its own
    # replace directives, which a dependent module does not inherit: copy them in. gitea.dev/sdk is
    # not in the checksum database: start from Gitea's own go.sum.
    {
      printf 'module warmstack.bed/gitea\n\ngo 1.26\n\n'
      printf 'require gitea.dev v%s\n\n' "$GITEA_VERSION"
      printf 'replace gitea.dev => code.gitea.io/gitea v%s\n\n' "$GITEA_VERSION"
      printf 'tool gitea.dev\n\n'
      awk '/^replace \(/,/^\)/ {print} /^replace [^(]/ {print} /^exclude \(/,/^\)/ {print} /^exclude [^(]/ {print}' "$upstream/go.mod"
    } >go.mod
    cp "$upstream/go.sum" go.sum
    chmod u+w go.sum
    go mod tidy -e
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.Version=$GITEA_VERSION" -o "$GITEA_BINARY.partial" gitea.dev
    rm -rf "$GITEA_STATIC.partial"; mkdir -p "$GITEA_STATIC.partial"
    cp -r "$upstream/templates" "$upstream/options" "$upstream/public" "$GITEA_STATIC.partial/"
    chmod -R u+w "$GITEA_STATIC.partial"
  ) >"$BED_LOGS/gitea-build.log" 2>&1 || die "the gitea build failed (see $BED_LOGS/gitea-build.log)"
  rm -rf "$GITEA_STATIC"; mv "$GITEA_STATIC.partial" "$GITEA_STATIC"
  mv "$GITEA_BINARY.partial" "$GITEA_BINARY"
  log "$("$GITEA_BINARY" --version)"
}

# --- the server -------------------------------------------------------------------------------

# Gitea's CLI on the bed's config; its warnings go to a log (stdout is the command's answer).
gitea_cli() {
  GITEA_I_AM_BEING_UNSAFE_RUNNING_AS_ROOT=true "$GITEA_BINARY" --config "$GITEA_INI" --work-path "$BED_GITEA_DIR" "$@" \
    2>>"$BED_LOGS/gitea-cli.log" || die "gitea $1 $2 $3 failed (see $BED_LOGS/gitea-cli.log)"
}

# Gitea's own keys, generated once; app.ini is rendered from them on every run.
gitea_app_secrets() {
  local file="$GITEA_SECRETS/app-secrets" key
  if [[ ! -s "$file" ]]; then
    (
      umask 077
      for key in SECRET_KEY INTERNAL_TOKEN JWT_SECRET; do
        printf '%s=%s\n' "$key" "$("$GITEA_BINARY" generate secret "$key")"
      done >"$file.partial"
    )
    mv "$file.partial" "$file"
  fi
}

gitea_secret() { sed -n "s/^$1=//p" "$GITEA_SECRETS/app-secrets"; }

# Renders app.ini; prints "changed" when it differs from the one the server may be running on.
gitea_write_config() {
  local ini="$GITEA_INI.partial"
  (
    umask 077
    cat >"$ini" <<INI
; Written by test/bed/steps/gitea.sh on every run: edit the step, not this file.
APP_NAME = warmstack bed
RUN_USER = $(id -un)
RUN_MODE = prod
WORK_PATH = $BED_GITEA_DIR
I_AM_BEING_UNSAFE_RUNNING_AS_ROOT = true

[server]
PROTOCOL = http
HTTP_ADDR = 127.0.0.1
HTTP_PORT = $GITEA_PORT
DOMAIN = 127.0.0.1
ROOT_URL = $GITEA_URL/
LOCAL_ROOT_URL = $GITEA_URL/
STATIC_ROOT_PATH = $GITEA_STATIC
APP_DATA_PATH = $BED_GITEA_DIR/data
OFFLINE_MODE = true
DISABLE_SSH = true
START_SSH_SERVER = false
LFS_START_SERVER = false

[database]
DB_TYPE = sqlite3
PATH = $BED_GITEA_DIR/data/gitea.db
SQLITE_JOURNAL_MODE = WAL

[repository]
ROOT = $BED_GITEA_DIR/repositories
DEFAULT_BRANCH = main
DEFAULT_PRIVATE = public
ENABLE_PUSH_CREATE_USER = false
ENABLE_PUSH_CREATE_ORG = false

[security]
INSTALL_LOCK = true
SECRET_KEY = $(gitea_secret SECRET_KEY)
INTERNAL_TOKEN = $(gitea_secret INTERNAL_TOKEN)
; 1.27 reads the webhooks' allowed hosts here ([webhook] ALLOWED_HOST_LIST is deprecated):
; the bridge under test listens on loopback.
ALLOWED_HOST_LIST = loopback
MIN_PASSWORD_LENGTH = 12

[oauth2]
JWT_SECRET = $(gitea_secret JWT_SECRET)

[service]
DISABLE_REGISTRATION = true
ALLOW_ONLY_EXTERNAL_REGISTRATION = false
REQUIRE_SIGNIN_VIEW = false
ENABLE_NOTIFY_MAIL = false
DEFAULT_KEEP_EMAIL_PRIVATE = true
DEFAULT_ALLOW_CREATE_ORGANIZATION = false
NO_REPLY_ADDRESS = noreply.$BED_DOMAIN

[mailer]
ENABLED = false

[webhook]
DELIVER_TIMEOUT = 3

[actions]
ENABLED = false

[packages]
ENABLED = false

[indexer]
ISSUE_INDEXER_TYPE = db

[cron.update_checker]
ENABLED = false

[session]
PROVIDER = memory

[log]
MODE = file
LEVEL = Info
ROOT_PATH = $BED_LOGS
INI
  )
  if cmp -s "$ini" "$GITEA_INI"; then rm -f "$ini"; else mv "$ini" "$GITEA_INI"; echo changed; fi
}

# The pid of the bed's own Gitea if it is running (by its pid file and its executable).
gitea_pid() {
  local pid exe
  pid=$(cat "$GITEA_PID_FILE" 2>/dev/null) || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
  [[ "${exe% (deleted)}" == "$GITEA_BINARY" ]] || return 1
  echo "$pid"
}

gitea_healthy() {
  local pid
  if ! pid=$(gitea_pid); then
    echo "gitea is not running; last lines of $BED_LOGS/gitea-stdout.log:"
    tail -n 5 "$BED_LOGS/gitea-stdout.log" 2>/dev/null
    return 1
  fi
  curl -fsS --max-time 3 "$GITEA_URL/api/healthz"
}

gitea_stopped() { ! kill -0 "$1" 2>/dev/null || { echo "pid $1 still running"; return 1; }; }

gitea_ensure_running() {
  local config_changed=$1 pid="" holder
  pid=$(gitea_pid) || pid=""
  if [[ -n "$pid" && -n "$config_changed" ]]; then
    log "app.ini changed: restarting gitea (pid $pid)"
    kill "$pid"
    wait_for "gitea (pid $pid) to stop" 60 gitea_stopped "$pid"
    pid=""
  fi
  if [[ -z "$pid" ]]; then
    holder=$(ss -Hltnp "sport = :$GITEA_PORT" 2>/dev/null || true)
    if [[ -n "$holder" ]]; then
      die "port $GITEA_PORT (gitea: WARMSTACK_BED_PORT_BASE + 3) is already in use by another process ($(echo "$holder" | grep -o 'users:.*' | head -n 1)); set WARMSTACK_BED_PORT_BASE to a free range"
    fi
    log "starting gitea v$GITEA_VERSION on $GITEA_URL (log: $BED_LOGS/gitea.log)"
    rm -f "$GITEA_PID_FILE"
    # Detached (own session, no terminal, stdin closed) so that it outlives setup.sh.
    (
      cd "$BED_GITEA_DIR"
      GITEA_I_AM_BEING_UNSAFE_RUNNING_AS_ROOT=true setsid nohup "$GITEA_BINARY" web \
        --config "$GITEA_INI" --work-path "$BED_GITEA_DIR" --pid "$GITEA_PID_FILE" \
        >>"$BED_LOGS/gitea-stdout.log" 2>&1 </dev/null &
    )
  fi
  wait_for "gitea to answer $GITEA_URL/api/healthz" 90 gitea_healthy
}

# --- the API ----------------------------------------------------------------------------------
# gitea_api AUTH METHOD PATH [JSON]: sets API_STATUS and API_BODY. AUTH is token:<user> or
# basic:<user> (its password). The credential goes to curl on a file descriptor and the body on stdin,
# so neither appears in any process's arguments.

gitea_password_file() { echo "$GITEA_SECRETS/$1.password"; }
gitea_token_file() { echo "$GITEA_SECRETS/$1.token"; }

gitea_auth_header() {
  local kind=${1%%:*} user=${1#*:}
  case "$kind" in
    token) printf 'Authorization: token %s\n' "$(<"$(gitea_token_file "$user")")" ;;
    basic) printf 'Authorization: Basic %s\n' "$(printf '%s:%s' "$user" "$(<"$(gitea_password_file "$user")")" | base64 -w0)" ;;
    *) die "gitea_api: unknown auth $1" ;;
  esac
}

gitea_api() {
  local auth=$1 method=$2 path=$3 body=${4-} out
  local -a data=()
  [[ -n "$body" ]] && data=(--data-binary @-)
  out=$(curl -sS --max-time 30 -X "$method" -H @<(gitea_auth_header "$auth") \
    -H 'Content-Type: application/json' -H 'Accept: application/json' "${data[@]}" \
    -w '\n%{http_code}' "$GITEA_URL/api/v1$path" <<<"$body") || true
  API_STATUS=${out##*$'\n'}
  API_BODY=${out%$'\n'*}
  [[ "$API_STATUS" =~ ^[0-9]{3}$ ]] || API_STATUS=000
}

# Dies with the request, its status and Gitea's message (bodies that may carry a secret are not shown).
gitea_expect() {
  local want=$1 what=$2
  [[ " $want " == *" $API_STATUS "* ]] && return 0
  die "gitea: $what answered $API_STATUS (wanted $want): $(jq -r '.message? // empty' <<<"$API_BODY" 2>/dev/null | head -c 300)"
}

# --- users and tokens -------------------------------------------------------------------------

gitea_new_password() {
  local file; file=$(gitea_password_file "$1")
  [[ -s "$file" ]] && return 0
  (umask 077; head -c 20 /dev/urandom | od -An -v -tx1 | tr -d ' \n' >"$file.partial"; echo >>"$file.partial")
  mv "$file.partial" "$file"
}

# A token works when it authenticates as its user and was made with today's scope list.
gitea_token_ok() {
  local user=$1 scopes=$2 file; file=$(gitea_token_file "$1")
  [[ -s "$file" && "$(cat "$file.scopes" 2>/dev/null)" == "$scopes" ]] || return 1
  gitea_api "token:$user" GET /user
  [[ "$API_STATUS" == 200 && "$(jq -r .login <<<"$API_BODY")" == "$user" ]]
}

gitea_save_token() {
  local user=$1 scopes=$2 token=$3 file; file=$(gitea_token_file "$1")
  [[ "$token" =~ ^[0-9a-f]{40}$ ]] || die "gitea: no token came back for $user (see $BED_LOGS/gitea-cli.log)"
  (umask 077; printf '%s\n' "$token" >"$file.partial"; printf '%s\n' "$scopes" >"$file.scopes")
  mv "$file.partial" "$file"
}

gitea_ensure_admin() {
  gitea_new_password "$GITEA_ADMIN"
  if ! gitea_token_ok "$GITEA_ADMIN" "$GITEA_ADMIN_SCOPES"; then
    if ! gitea_cli admin user list --admin | awk 'NR > 1 {print $2}' | grep -qxF "$GITEA_ADMIN"; then
      log "gitea: creating the admin $GITEA_ADMIN"
      # A random password the CLI prints and we drop: the real one is set below through the API,
      # so that it never appears on a command line.
      gitea_cli admin user create --username "$GITEA_ADMIN" --email "$GITEA_ADMIN@$BED_DOMAIN" --admin \
        --random-password --random-password-length 32 --must-change-password=false >/dev/null
    fi
    log "gitea: new API token for $GITEA_ADMIN"
    gitea_save_token "$GITEA_ADMIN" "$GITEA_ADMIN_SCOPES" "$(gitea_cli admin user generate-access-token \
      --username "$GITEA_ADMIN" --token-name "$GITEA_TOKEN_NAME_PREFIX-$(date +%s%N)" --scopes "$GITEA_ADMIN_SCOPES" --raw)"
    gitea_token_ok "$GITEA_ADMIN" "$GITEA_ADMIN_SCOPES" || gitea_expect 200 "GET /user with the new admin token"
  fi
  gitea_ensure_password "$GITEA_ADMIN"
}

# The user exists, signs in with the password in its file, and must not change it first.
gitea_ensure_password() {
  local user=$1 body
  gitea_new_password "$user"
  gitea_api "basic:$user" GET /user
  [[ "$API_STATUS" == 200 ]] && return 0
  body=$(jq -n --arg u "$user" --arg e "$user@$BED_DOMAIN" --rawfile p "$(gitea_password_file "$user")" \
    '{username: $u, login_name: $u, source_id: 0, email: $e, password: ($p | rtrimstr("\n")), must_change_password: false, visibility: "public"}')
  gitea_api "token:$GITEA_ADMIN" GET "/users/$user"
  if [[ "$API_STATUS" == 404 ]]; then
    log "gitea: creating the user $user"
    gitea_api "token:$GITEA_ADMIN" POST /admin/users "$body"
    gitea_expect 201 "POST /admin/users ($user)"
  else
    gitea_expect 200 "GET /users/$user"
    log "gitea: setting the password of $user from its file"
    gitea_api "token:$GITEA_ADMIN" PATCH "/admin/users/$user" "$body"
    gitea_expect 200 "PATCH /admin/users/$user"
  fi
  gitea_api "basic:$user" GET /user
  gitea_expect 200 "GET /user as $user with its password"
}

gitea_ensure_token() {
  local user=$1 body
  gitea_token_ok "$user" "$GITEA_USER_SCOPES" && return 0
  log "gitea: new API token for $user"
  body=$(jq -n --arg n "$GITEA_TOKEN_NAME_PREFIX-$(date +%s%N)" --arg s "$GITEA_USER_SCOPES" '{name: $n, scopes: ($s | split(","))}')
  gitea_api "basic:$user" POST "/users/$user/tokens" "$body"
  gitea_expect 201 "POST /users/$user/tokens"
  gitea_save_token "$user" "$GITEA_USER_SCOPES" "$(jq -r .sha1 <<<"$API_BODY")"
  API_BODY=""
  gitea_token_ok "$user" "$GITEA_USER_SCOPES" || gitea_expect 200 "GET /user with the new token of $user"
}

# --- organization and repositories ------------------------------------------------------------

gitea_ensure_org() {
  gitea_api "token:$GITEA_ADMIN" GET "/orgs/$GITEA_ORG"
  [[ "$API_STATUS" == 200 ]] && return 0
  gitea_expect 404 "GET /orgs/$GITEA_ORG"
  log "gitea: creating the organization $GITEA_ORG"
  gitea_api "token:$GITEA_ADMIN" POST /orgs "$(jq -n --arg o "$GITEA_ORG" '{username: $o, visibility: "public"}')"
  gitea_expect 201 "POST /orgs ($GITEA_ORG)"
}

# git with the admin's token in an HTTP header that git reads from its environment (never argv).
gitea_git() {
  local header; header=$(gitea_auth_header "token:$GITEA_ADMIN")
  GIT_TERMINAL_PROMPT=0 GIT_CONFIG_COUNT=2 \
    GIT_CONFIG_KEY_0=http.extraHeader GIT_CONFIG_VALUE_0="${header%$'\n'}" \
    GIT_CONFIG_KEY_1=credential.helper GIT_CONFIG_VALUE_1="" \
    git "$@"
}

gitea_ensure_collaborators() {
  local repo=$1
  gitea_api "token:$GITEA_ADMIN" GET "/repos/$GITEA_ORG/$repo/collaborators/$GITEA_MAINTAINER/permission"
  gitea_expect 200 "GET the permission of $GITEA_MAINTAINER on $GITEA_ORG/$repo"
  if [[ "$(jq -r .permission <<<"$API_BODY")" != write ]]; then
    gitea_api "token:$GITEA_ADMIN" PUT "/repos/$GITEA_ORG/$repo/collaborators/$GITEA_MAINTAINER" '{"permission": "write"}'
    gitea_expect 204 "PUT $GITEA_MAINTAINER as write collaborator of $GITEA_ORG/$repo"
  fi
  gitea_api "token:$GITEA_ADMIN" GET "/repos/$GITEA_ORG/$repo/collaborators/$GITEA_OUTSIDER/permission"
  gitea_expect 200 "GET the permission of $GITEA_OUTSIDER on $GITEA_ORG/$repo"
  if [[ "$(jq -r .permission <<<"$API_BODY")" != read ]]; then
    gitea_api "token:$GITEA_ADMIN" DELETE "/repos/$GITEA_ORG/$repo/collaborators/$GITEA_OUTSIDER"
    gitea_expect 204 "DELETE $GITEA_OUTSIDER as collaborator of $GITEA_ORG/$repo"
  fi
}

# One public repository per fixture recipe, force-pushed (main and every annotated tag, stale tags
# pruned) whenever the recipes' source hash or the repository itself changed, or it is empty.
gitea_ensure_repo() {
  local repo=$1 source_hash=$2 id stamp_file="$BED_GITEA_DIR/pushed/$1"
  gitea_api "token:$GITEA_ADMIN" GET "/repos/$GITEA_ORG/$repo"
  if [[ "$API_STATUS" == 404 ]]; then
    log "gitea: creating $GITEA_ORG/$repo"
    gitea_api "token:$GITEA_ADMIN" POST "/orgs/$GITEA_ORG/repos" \
      "$(jq -n --arg r "$repo" '{name: $r, private: false, auto_init: false, default_branch: "main", description: "warmstack fixture recipe"}')"
    gitea_expect 201 "POST /orgs/$GITEA_ORG/repos ($repo)"
  else
    gitea_expect 200 "GET /repos/$GITEA_ORG/$repo"
  fi
  # A repository made again (a wiped database numbers them from 1 again) has a new creation time.
  local created empty
  read -r id created empty < <(jq -r '"\(.id) \(.created_at) \(.empty)"' <<<"$API_BODY")
  if [[ "$empty" == true || "$(cat "$stamp_file" 2>/dev/null)" != "$source_hash $id $created" ]]; then
    log "gitea: pushing $repo (main and $(git -C "$BED_RECIPES/$repo" tag | wc -l) tags)"
    gitea_git -C "$BED_RECIPES/$repo" push --quiet --force --prune "$GITEA_URL/$GITEA_ORG/$repo.git" \
      'refs/heads/main:refs/heads/main' 'refs/tags/*:refs/tags/*' >>"$BED_LOGS/gitea-push.log" 2>&1 \
      || die "git push of $repo to $GITEA_URL/$GITEA_ORG/$repo.git failed (see $BED_LOGS/gitea-push.log)"
    mkdir -p "$(dirname "$stamp_file")"
    echo "$source_hash $id $created" >"$stamp_file"
  fi
  gitea_ensure_collaborators "$repo"
}

# The hooks in each repository name the binary that wrote them: rewrite them when it changes.
gitea_ensure_hooks() {
  local stamp="$BED_GITEA_DIR/.hooks-binary"
  [[ "$(cat "$stamp" 2>/dev/null)" == "$GITEA_BINARY" ]] && return 0
  if [[ -d "$BED_GITEA_DIR/repositories" ]]; then
    log "gitea: regenerating the repositories' git hooks for $GITEA_BINARY"
    gitea_cli admin regenerate hooks >>"$BED_LOGS/gitea-stdout.log" 2>&1
  fi
  echo "$GITEA_BINARY" >"$stamp"
}

step_gitea() {
  [[ -x "$GITEA_BINARY" && -d "$GITEA_STATIC" ]] || die "no gitea binary at $GITEA_BINARY: run the gitea_binary step first"
  [[ -f "$BED_RECIPES/.source-hash" ]] || die "no fixture recipes in $BED_RECIPES: run the recipes step first"
  command -v jq >/dev/null || {
    apt-get update -q >>"$BED_LOGS/apt.log" 2>&1
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q jq >>"$BED_LOGS/apt.log" 2>&1
  }
  mkdir -p "$BED_GITEA_DIR/data" "$GITEA_SECRETS"
  chmod 0700 "$GITEA_SECRETS" "$BED_GITEA_DIR/data"
  gitea_app_secrets
  local config_changed
  config_changed=$(gitea_write_config)
  gitea_ensure_running "$config_changed"
  gitea_ensure_hooks
  gitea_ensure_admin
  local user recipe source_hash
  for user in "$GITEA_MAINTAINER" "$GITEA_OUTSIDER"; do
    gitea_ensure_password "$user"
    gitea_ensure_token "$user"
  done
  gitea_ensure_org
  source_hash=$(cat "$BED_RECIPES/.source-hash")
  for recipe in "$BED_RECIPES"/*/; do
    gitea_ensure_repo "$(basename "$recipe")" "$source_hash"
  done
  log "gitea $GITEA_URL: org $GITEA_ORG with $(find "$BED_RECIPES" -mindepth 1 -maxdepth 1 -type d | wc -l) recipe repositories; users ${GITEA_USERS[*]}"
}
