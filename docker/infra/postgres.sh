#!/bin/bash
# PostgreSQL for the Dagster instance. Initialises PGDATA on first start; on every start sets
# POSTGRES_USER's password and creates POSTGRES_DB if missing (single-user mode, before the
# server listens), so rotating the password in the env file and restarting applies it.
set -euo pipefail
: "${POSTGRES_USER:?}" "${POSTGRES_PASSWORD:?}" "${POSTGRES_DB:?}"
bindir=$(ls -d /usr/lib/postgresql/*/bin | tail -n1)
export PGDATA=/var/lib/postgresql/data
as_pg() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }
mkdir -p "$PGDATA" && chown postgres:postgres "$PGDATA" && chmod 700 "$PGDATA"
if [[ ! -s "$PGDATA/PG_VERSION" ]]; then
    as_pg "$bindir/initdb" -D "$PGDATA" -U postgres --auth-local=peer --auth-host=scram-sha-256 >/dev/null
    echo "host all all 0.0.0.0/0 scram-sha-256" >>"$PGDATA/pg_hba.conf"
fi
quote() { printf "'%s'" "${1//\'/\'\'}"; }
as_pg "$bindir/postgres" --single -D "$PGDATA" -j postgres >/dev/null <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = $(quote "$POSTGRES_USER")) THEN
    EXECUTE format('CREATE ROLE %I LOGIN', $(quote "$POSTGRES_USER"));
  END IF;
  EXECUTE format('ALTER ROLE %I PASSWORD %L', $(quote "$POSTGRES_USER"), $(quote "$POSTGRES_PASSWORD"));
END \$\$;
;
SQL
if ! as_pg "$bindir/postgres" --single -D "$PGDATA" -j postgres </dev/null 2>/dev/null <<<"SELECT 1 FROM pg_database WHERE datname = $(quote "$POSTGRES_DB");" | grep -q '= 1'; then
    as_pg "$bindir/postgres" --single -D "$PGDATA" -j postgres >/dev/null \
        <<<"CREATE DATABASE \"$POSTGRES_DB\" OWNER \"$POSTGRES_USER\";"
fi
exec setpriv --reuid=postgres --regid=postgres --init-groups "$bindir/postgres" -D "$PGDATA" \
    -c listen_addresses='*' -c unix_socket_directories=/run/postgresql
