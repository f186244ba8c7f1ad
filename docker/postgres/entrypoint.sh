#!/bin/sh
# Create the cluster on first start (as root, then the server runs as the postgres user).
set -eu
: "${POSTGRES_USER:=amsw}" "${POSTGRES_DB:=amsw}"
as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }
mkdir -p "$PGDATA" /run/postgresql
chown postgres:postgres "$PGDATA" /run/postgresql
chmod 0700 "$PGDATA"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ ! -r "${POSTGRES_PASSWORD_FILE:-}" ]; then
    echo "POSTGRES_PASSWORD_FILE must name a readable file on the first start" >&2
    exit 1
  fi
  pwfile=$(mktemp)
  chown postgres "$pwfile"
  head -n 1 "$POSTGRES_PASSWORD_FILE" >"$pwfile"
  as_postgres initdb --username="$POSTGRES_USER" --pwfile="$pwfile" --encoding=UTF8 \
    --locale=C.UTF-8 --auth-local=peer --auth-host=scram-sha-256 >/dev/null
  rm -f "$pwfile"
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  echo "CREATE DATABASE \"$POSTGRES_DB\" OWNER \"$POSTGRES_USER\";" \
    | as_postgres postgres --single -D "$PGDATA" -j postgres >/dev/null
  echo "Created the cluster in $PGDATA with database $POSTGRES_DB"
fi
if [ "${1:-}" = postgres ]; then
  shift
  exec setpriv --reuid=postgres --regid=postgres --init-groups \
    postgres -D "$PGDATA" -c listen_addresses='*' "$@"
fi
exec "$@"
