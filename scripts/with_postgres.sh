#!/usr/bin/env bash
# Run a command with a private PostgreSQL server on a free loopback port, then stop the server.
#
#   scripts/with_postgres.sh make test
#
# Installs Debian's `postgresql` package when no server binaries are present, creates the cluster
# as a non-root user (PostgreSQL refuses to run as root), trusts local connections only, and exports
# AKD_TF_TEST_POSTGRES_URL for the tests. The server and its data directory are removed on exit.
set -euo pipefail

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

if [ -z "$(pg_bin)" ]; then
    echo "with_postgres: installing the postgresql package" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq postgresql >/dev/null
fi
PG_BIN=$(pg_bin)

as_pg_user() { "$@"; }
PG_USER=$(id -un)
if [ "$(id -u)" = 0 ]; then
    PG_USER=akd-pg
    id "$PG_USER" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$PG_USER"
    as_pg_user() { runuser -u "$PG_USER" -- "$@"; }
fi

PG_DIR=$(mktemp -d /tmp/akd-pg.XXXXXX)
chown "$PG_USER" "$PG_DIR"
PG_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

stop() {
    as_pg_user "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$PG_DIR"
}
trap stop EXIT

as_pg_user "$PG_BIN/initdb" -D "$PG_DIR/data" -U akd -A trust --no-sync >/dev/null
as_pg_user "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 \
    -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
echo "with_postgres: PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PG_PORT" >&2

export AKD_TF_TEST_POSTGRES_URL="postgresql+psycopg://akd@127.0.0.1:$PG_PORT/postgres"
"$@"
