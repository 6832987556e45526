#!/usr/bin/env bash
# `make images`: every image of the stack, built here without any registry.
#   1. localhost/ingest-base:bookworm   Debian from debootstrap (docker/base_image.sh), once;
#   2. localhost/ingest-infra:latest    MariaDB, PostgreSQL, Redis, nginx from Debian packages;
#   3. localhost/ingestion-pipelines:latest   the project (docker/Dockerfile), every process.
# Python packages come from the index this machine's pip uses: its index-url, extra-index-url
# and find-links are read from `pip config list` at build time and handed to the build as a
# secret, with the CA bundle; local (file://) indexes are mounted read-only. Nothing of it is
# committed or baked into a layer. Prints the seconds each step took.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$here/podman/containers.conf}"
base="${BASE_IMAGE:-localhost/ingest-base:bookworm}"
infra="${INFRA_IMAGE:-localhost/ingest-infra:latest}"
image="${INGEST_IMAGE:-localhost/ingestion-pipelines:latest}"
pip_cmd="${PIP:-}"
if [[ -z "$pip_cmd" ]]; then
    if [[ -x "$root/.venv/bin/pip" ]]; then pip_cmd="$root/.venv/bin/pip"; else pip_cmd="python3 -m pip"; fi
fi
ca_bundle="${CA_BUNDLE:-${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}}"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
step_start=$SECONDS
step() { printf 'images: %-28s %4d s\n' "$1" $((SECONDS - step_start)); step_start=$SECONDS; }

# The build host's pip index settings -> a pip.conf for the build, and the folders to mount.
mounts=()
{
    echo "[global]"
    $pip_cmd config list 2>/dev/null | sed -nE "s/^[^.]*\.(index-url|extra-index-url|find-links|timeout|default-timeout)='(.*)'$/\1 \2/p" |
        sort -u -k1,1 | while read -r key value; do
            echo "$key = $value"
        done
} >"$tmp/pip.conf"
for location in $(sed -nE 's/^(index-url|extra-index-url|find-links) = //p' "$tmp/pip.conf"); do
    path="${location#file://}"
    [[ "$path" == /* && -e "$path" ]] || continue
    [[ "$(basename "$path")" == simple ]] && path="$(dirname "$path")" # files sit beside simple/
    mounts+=(--volume "$path:$path:ro")
done
secrets=(--secret "id=pip_conf,src=$tmp/pip.conf")
[[ -s "$ca_bundle" ]] && secrets+=(--secret "id=ca_bundle,src=$ca_bundle")

BASE_IMAGE="$base" bash "$here/base_image.sh"
step "base image"
podman build -q --layers --build-arg "BASE_IMAGE=$base" -t "$infra" \
    -f "$here/infra/Dockerfile" "$here/infra" >/dev/null
step "infra image"
podman build -q --layers --build-arg "BASE_IMAGE=$base" "${secrets[@]}" "${mounts[@]}" \
    -t "$image" -f "$here/Dockerfile" "$root" >/dev/null
step "project image"
podman run --rm "$image" ingest replay --help >/dev/null
echo "images: $base, $infra, $image ready"
