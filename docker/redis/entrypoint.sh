#!/bin/sh
# Write the configuration (the password stays in a file only the redis user reads, never on the
# command line), then run the server as the redis user.
set -eu
if [ ! -r "${REDIS_PASSWORD_FILE:-}" ]; then
  echo "REDIS_PASSWORD_FILE must name a readable file" >&2
  exit 1
fi
conf=/run/redis/redis.conf
mkdir -p /run/redis /data
chown redis:redis /run/redis /data
umask 077
{
  echo "port $REDIS_PORT"
  echo "bind * -::*"
  echo "dir /data"
  echo "appendonly yes"
  echo "save 300 10"
  echo "logfile \"\""
  printf 'requirepass "%s"\n' "$(head -n 1 "$REDIS_PASSWORD_FILE")"
} >"$conf"
chown redis:redis "$conf"
exec setpriv --reuid=redis --regid=redis --init-groups redis-server "$conf" "$@"
