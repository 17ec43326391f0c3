# Debian's PostgreSQL 15 on loopback, a cluster of the bed's own: the coordination backend and the
# Pulumi backend that several runners share (docs/scaling.md). Its password is generated once and
# kept in a 0600 file; nothing prints it.

PG_PORT=$(( BED_PORT_BASE + 4 ))
PG_DIR="$BED_CACHE/postgres"
PG_DATA="$PG_DIR/data"
PG_USER=warmstack
PG_DB=warmstack
PG_PASSWORD_FILE="$PG_DIR/password"

pg_bin() { echo "/usr/lib/postgresql/15/bin/$1"; }

pg_ready() { "$(pg_bin pg_isready)" -h 127.0.0.1 -p "$PG_PORT" -q; }

step_postgres() {
  if [[ ! -x "$(pg_bin initdb)" ]]; then
    log "installing Debian postgresql"
    apt-get update -q >>"$BED_LOGS/apt.log" 2>&1
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql-15 >>"$BED_LOGS/apt.log" 2>&1
  fi
  mkdir -p "$PG_DIR"
  if [[ ! -s "$PG_PASSWORD_FILE" ]]; then
    (umask 077; head -c 24 /dev/urandom | base64 | tr -d '/+=\n' >"$PG_PASSWORD_FILE")
  fi
  if [[ ! -f "$PG_DATA/PG_VERSION" ]]; then
    rm -rf "$PG_DATA"
    install -d -o postgres -g postgres -m 0700 "$PG_DATA"
    local pwfile; pwfile=$(mktemp); chown postgres "$pwfile"; chmod 0600 "$pwfile"
    cp "$PG_PASSWORD_FILE" "$pwfile"
    runuser -u postgres -- "$(pg_bin initdb)" -D "$PG_DATA" -U "$PG_USER" --auth=scram-sha-256 --pwfile="$pwfile" >"$BED_LOGS/postgres-initdb.log" 2>&1
    rm -f "$pwfile"
  fi
  if ! pg_ready; then
    holder=$(ss -Hltnp "sport = :$PG_PORT" 2>/dev/null || true)
    [[ -z "$holder" ]] || die "port $PG_PORT (postgres: WARMSTACK_BED_PORT_BASE + 4) is already in use by another process; set WARMSTACK_BED_PORT_BASE to a free range"
    log "starting postgres on 127.0.0.1:$PG_PORT (log: $BED_LOGS/postgres.log)"
    touch "$BED_LOGS/postgres.log"; chown postgres "$BED_LOGS/postgres.log"
    runuser -u postgres -- "$(pg_bin pg_ctl)" -D "$PG_DATA" -l "$BED_LOGS/postgres.log" -w -t 60 \
      -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -k /tmp -c max_connections=200" start >/dev/null
    wait_for "postgres to accept connections" 60 pg_ready
  fi
  if ! PGPASSWORD=$(cat "$PG_PASSWORD_FILE") psql -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" -d postgres -tAc "select 1 from pg_database where datname = '$PG_DB'" | grep -q 1; then
    PGPASSWORD=$(cat "$PG_PASSWORD_FILE") psql -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" -d postgres -qc "create database $PG_DB" >/dev/null
  fi
  log "postgres $(PGPASSWORD=$(cat "$PG_PASSWORD_FILE") psql -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" -d "$PG_DB" -tAc 'show server_version') on 127.0.0.1:$PG_PORT"
}
