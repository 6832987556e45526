#!/bin/bash
# Redis for live state, locks, rate limits and pub/sub: in memory only (the state rebuilds).
set -euo pipefail
exec setpriv --reuid=redis --regid=redis --init-groups redis-server --bind 0.0.0.0 --port 6379 \
    --protected-mode no --save '' --appendonly no --dir /tmp
