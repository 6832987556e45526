#!/bin/bash
# Redis for live state, locks, rate limits and pub/sub: in memory only (the state rebuilds).
# Password required (REDISCLI_AUTH, from INGEST_REDIS_PASSWORD in docker/.env; clients use
# redis://:PASSWORD@redis:6379/0), protected mode on. The password goes to redis-server on its
# standard input, never on a command line (`ps` would show it).
set -euo pipefail
: "${REDISCLI_AUTH:?the Redis password (INGEST_REDIS_PASSWORD in docker/.env)}"
case "$REDISCLI_AUTH" in
*[[:space:]\"\']* | '') echo "redis.sh: the password must not hold spaces or quotes" >&2; exit 1 ;;
esac
exec setpriv --reuid=redis --regid=redis --init-groups redis-server - --bind 0.0.0.0 \
    --port 6379 --protected-mode yes --save '' --appendonly no --dir /tmp \
    <<<"requirepass \"$REDISCLI_AUTH\""
