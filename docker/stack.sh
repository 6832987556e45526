#!/usr/bin/env bash
# The compose stack on this host with Podman: `docker/stack.sh up|down|ps|logs [service]`.
#   up    starts the Docker-compatible API socket (`podman system service`, for the daemon's
#         DockerRunLauncher) unless DOCKER_SOCKET already answers, then `podman-compose up -d`;
#   down  removes the stack's containers and the run containers it launched (volumes kept;
#         `down -v` removes them too) and stops the socket service it started.
# Settings and secrets: STACK_DIR/.env (default docker/.env, from docker/.env.example).
# STACK_DIR may be another folder holding a copy of compose.yaml and its own .env (the
# deploy test does this); PROJECT names the compose project (default `ingest`); STACK_REPLAY=1
# adds compose.replay.yaml (use it for `down` too).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$here/podman/containers.conf}"
stack_dir="${STACK_DIR:-$here}"
project="${PROJECT:-ingest}"
state="${STACK_STATE:-/run/ingest-stack-$project}"
compose=(podman-compose -p "$project" -f "$stack_dir/compose.yaml")
# STACK_REPLAY=1: the recorded sources as a service, every worker pointed at them.
[[ "${STACK_REPLAY:-0}" == 1 ]] && compose+=(-f "$stack_dir/compose.replay.yaml")

env_value() { sed -nE "s/^$1=(.*)$/\1/p" "$stack_dir/.env" | tail -n1; }

socket_up() {
    local socket
    socket="$(env_value DOCKER_SOCKET)"
    socket="${socket:-/run/podman/podman.sock}"
    if curl -sf --unix-socket "$socket" http://d/_ping >/dev/null 2>&1; then return 0; fi
    mkdir -p "$state" "$(dirname "$socket")"
    podman system service --time=0 "unix://$socket" >"$state/podman-service.log" 2>&1 &
    echo $! >"$state/podman-service.pid"
    for _ in $(seq 50); do
        if curl -sf --unix-socket "$socket" http://d/_ping >/dev/null 2>&1; then
            # The daemon container's user reaches it through this group, nobody else.
            gid="$(env_value DOCKER_SOCKET_GID)"
            chgrp "${gid:-10001}" "$socket" && chmod 660 "$socket"
            return 0
        fi
        sleep 0.2
    done
    echo "stack: the Docker API socket $socket did not come up" >&2
    return 1
}

# Refuse what .env.example ships as placeholders, and publication beyond this host without TLS.
check_env() {
    local name value bad=0
    for name in INGEST_DB_PASSWORD DAGSTER_DB_PASSWORD OPERATOR_PASSWORD INGEST_REDIS_PASSWORD \
        INGEST_PROXY_SECRET INGEST_LIVE_JWT_SECRET; do
        value="$(env_value "$name")"
        if [[ -z "$value" || "$value" == change-me* ]]; then
            echo "stack: $name in $stack_dir/.env is ${value:-empty}: set a real secret" \
                "(e.g. \`openssl rand -base64 24 | tr -d '/+='\`)" >&2
            bad=1
        fi
    done
    # HS256: a key shorter than the hash is guessable offline (the live relay refuses it too).
    value="$(env_value INGEST_LIVE_JWT_SECRET)"
    if [[ -n "$value" && ${#value} -lt 32 ]]; then
        echo "stack: INGEST_LIVE_JWT_SECRET has ${#value} characters: at least 32" \
            "(e.g. \`openssl rand -hex 32\`)" >&2
        bad=1
    fi
    value="$(env_value INGEST_REDIS_PASSWORD)"
    if [[ -n "$value" && ! "$value" =~ ^[A-Za-z0-9._~-]+$ ]]; then
        echo "stack: INGEST_REDIS_PASSWORD goes into a URL: use only A-Z a-z 0-9 . _ ~ -" >&2
        bad=1
    fi
    local tls_dir
    tls_dir="$(env_value INGEST_TLS_DIR)"
    tls_dir="${tls_dir:-./tls}"
    [[ "$tls_dir" == /* ]] || tls_dir="$stack_dir/$tls_dir"
    mkdir -p "$tls_dir"
    for name in INGEST_VIEWER_BIND INGEST_OPERATOR_BIND INGEST_LIVE_BIND; do
        value="$(env_value "$name")"
        case "${value:-127.0.0.1}" in
        127.* | localhost | ::1 | '[::1]') ;;
        *)
            if [[ ! -s "$tls_dir/tls.crt" || ! -s "$tls_dir/tls.key" ]]; then
                echo "stack: $name=$value publishes beyond this host: the passwords would cross" \
                    "the network in clear; put tls.crt and tls.key in $tls_dir (INGEST_TLS_DIR)" \
                    "or publish on 127.0.0.1" >&2
                bad=1
            fi
            ;;
        esac
    done
    return "$bad"
}

socket_down() {
    [[ -f "$state/podman-service.pid" ]] || return 0
    kill "$(cat "$state/podman-service.pid")" 2>/dev/null || true
    rm -rf "$state"
}

case "${1:-}" in
up)
    [[ -f "$stack_dir/.env" ]] || {
        echo "stack: no $stack_dir/.env: cp docker/.env.example docker/.env and set the secrets" >&2
        exit 1
    }
    check_env || exit 1
    socket_up
    "${compose[@]}" up -d >"${STACK_LOG:-/dev/stdout}" 2>&1
    ;;
down)
    network="$(env_value COMPOSE_NETWORK)"
    network="${network:-ingest}"
    runs=$(podman ps -aq --filter label=ingest.role=run --filter "network=$network" 2>/dev/null || true)
    [[ -z "$runs" ]] || podman rm -f $runs >/dev/null
    "${compose[@]}" down ${2:+"$2"} >"${STACK_LOG:-/dev/stdout}" 2>&1 || true
    if [[ "${2:-}" == -v ]]; then
        vols=$(podman volume ls -q --filter "label=io.podman.compose.project=$project")
        [[ -z "$vols" ]] || podman volume rm -f $vols >/dev/null
    fi
    # The runs' artifacts volume is made by the daemon's launches, not by compose.
    [[ "${2:-}" == -v ]] && { podman volume rm -f "$network-artifacts" >/dev/null 2>&1 || true; }
    podman network rm -f "$network" "$network-front" >/dev/null 2>&1 || true
    socket_down
    ;;
ps) "${compose[@]}" ps ;;
logs) shift; "${compose[@]}" logs "$@" ;;
*)
    echo "usage: docker/stack.sh up|down [-v]|ps|logs [service]" >&2
    exit 2
    ;;
esac
