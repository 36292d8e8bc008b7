#!/bin/sh
# Initialise $PGDATA when empty (trust authentication: a lab on a private network), then run
# PostgreSQL in the foreground as the postgres user. POSTGRES_DB names a database to create.
set -eu
: "${PGDATA:=/var/lib/postgresql/data}"
mkdir -p "$PGDATA" /var/run/postgresql
chown postgres:postgres "$PGDATA" /var/run/postgresql
chmod 0700 "$PGDATA"
as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    as_postgres initdb --auth=trust --username=postgres --encoding=UTF8 -D "$PGDATA" >/dev/null
    echo "listen_addresses = '*'" >> "$PGDATA/postgresql.conf"
    echo "host all all 0.0.0.0/0 trust" >> "$PGDATA/pg_hba.conf"
    if [ -n "${POSTGRES_DB:-}" ]; then
        as_postgres postgres --single -D "$PGDATA" postgres >/dev/null <<SQL
CREATE DATABASE "$POSTGRES_DB";
SQL
    fi
fi
exec setpriv --reuid=postgres --regid=postgres --init-groups postgres -D "$PGDATA" "$@"
