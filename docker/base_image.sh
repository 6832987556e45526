#!/usr/bin/env bash
# Build the Debian base image `localhost/ingest-base:bookworm` without any registry:
# debootstrap --variant=minbase into a temporary folder, then `podman import`. Idempotent: does
# nothing when the image exists (FORCE=1 rebuilds). Needs root and debootstrap.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$here/podman/containers.conf}"
image="${BASE_IMAGE:-localhost/ingest-base:bookworm}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

if [[ "${FORCE:-0}" != 1 ]] && podman image exists "$image"; then
    echo "base image: $image present"
    exit 0
fi
root="$(mktemp -d /var/tmp/ingest-base.XXXXXX)"
trap 'rm -rf "$root"' EXIT
echo "base image: debootstrap bookworm from $mirror"
debootstrap --variant=minbase bookworm "$root" "$mirror" >"$root.log" 2>&1 ||
    { tail -n 30 "$root.log" >&2; rm -f "$root.log"; exit 1; }
rm -f "$root.log"
cat >"$root/etc/apt/sources.list" <<SOURCES
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
SOURCES
# Keep images small: no docs, no apt caches.
cat >"$root/etc/dpkg/dpkg.cfg.d/01-nodoc" <<'NODOC'
path-exclude /usr/share/doc/*
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
NODOC
echo 'APT::Install-Recommends "false";' >"$root/etc/apt/apt.conf.d/01-norecommends"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/*
tar -C "$root" -c . | podman import \
    --change 'CMD ["/bin/bash"]' --change 'ENV LANG=C.UTF-8' - "$image" >/dev/null
echo "base image: $image built"
