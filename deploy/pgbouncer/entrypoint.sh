#!/bin/sh
# Writes PgBouncer's auth file from the environment at start (nothing secret in the image),
# readable by this user only, then becomes pgbouncer.
set -eu
: "${POSTGRES_USER:?POSTGRES_USER is required}"
: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is required}"
umask 077
mkdir -p /tmp/pgbouncer
printf '"%s" "%s"\n' "$POSTGRES_USER" "$POSTGRES_PASSWORD" > /tmp/pgbouncer/userlist.txt
exec pgbouncer /etc/pgbouncer/pgbouncer.ini
