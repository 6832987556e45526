#!/usr/bin/env bash
# Debian packages the test bed needs: MariaDB, PostgreSQL and Redis server binaries (the
# tests start their own instances on random ports, see ingestion_pipelines_tests/testbed.py),
# plus make and python3-venv for `make install`. Debian 12, as root.
# `--deploy` adds what the container stack needs (`make images`, `make deploy-test`): Podman with
# runc, the CNI DNS plugin, podman-compose, debootstrap and curl.
#
# Idempotent and fast: when every binary is already there it only checks and exits (no root
# needed). Otherwise it runs `apt-get update` once and installs the missing packages without
# starting their system services, and makes sure they are not enabled at boot.
set -euo pipefail

PYTHON="${PYTHON:-python3}"

have() {
    command -v "$1" >/dev/null 2>&1 || [[ -x "/usr/sbin/$1" || -x "/usr/bin/$1" ]]
}

have_postgres() {
    local bindir
    for bindir in /usr/lib/postgresql/*/bin; do
        [[ -x "$bindir/postgres" && -x "$bindir/initdb" ]] && return 0
    done
    return 1
}

missing=()
{ have mariadbd || have mysqld; } && { have mariadb-install-db || have mysql_install_db; } ||
    missing+=(mariadb-server)
have redis-server || missing+=(redis-server)
have_postgres || missing+=(postgresql)
have make || missing+=(make)
have chromium || missing+=(chromium) # the live page's headless-browser test
have promtool || missing+=(prometheus) # `promtool check rules/config` in the monitoring tests
if ! have "$PYTHON"; then
    missing+=(python3 python3-venv)
elif ! "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1; then
    missing+=(python3-venv) # Debian ships `python3 -m venv` separately
fi

if [[ "${1:-}" == --deploy ]]; then
    have podman || missing+=(podman)
    have runc || missing+=(runc)
    have podman-compose || missing+=(podman-compose)
    have debootstrap || missing+=(debootstrap)
    have curl || missing+=(curl)
    [[ -x /usr/lib/cni/dnsname ]] || missing+=(golang-github-containernetworking-plugin-dnsname)
fi

if ((${#missing[@]} == 0)); then
    echo "system-deps: mariadb-server, postgresql, redis-server, make, python3-venv, chromium, promtool: present"
    exit 0
fi

echo "system-deps: installing ${missing[*]}"
sudo=()
if ((EUID != 0)); then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo=(sudo)
    else
        echo "system-deps: missing ${missing[*]}; run as root: sudo bash .ci/system-deps.sh" >&2
        exit 1
    fi
fi
as_root() { "${sudo[@]}" "$@"; }

# Do not let the packages start their system services: the test bed runs its own instances.
# policy-rc.d exit code 101 means "action forbidden"; maintainer scripts (invoke-rc.d,
# deb-systemd-invoke) treat it as a normal outcome, so the installation does not fail.
policy=/usr/sbin/policy-rc.d
if [[ ! -e "$policy" ]]; then
    as_root sh -c "printf '#!/bin/sh\n# temporary, from .ci/system-deps.sh\nexit 101\n' > $policy"
    as_root chmod 755 "$policy"
    trap 'as_root rm -f "$policy"' EXIT
fi

export DEBIAN_FRONTEND=noninteractive
apt_opts=(-o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
as_root env DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" update -q
as_root env DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" install -y -q \
    --no-install-recommends "${missing[@]}"

# Services of the packages just installed: not running, not started at boot.
services=()
for pkg in "${missing[@]}"; do
    case "$pkg" in
    mariadb-server) services+=(mariadb) ;;
    redis-server) services+=(redis-server) ;;
    postgresql) services+=(postgresql) ;;
    prometheus) services+=(prometheus prometheus-node-exporter) ;;
    esac
done
for service in "${services[@]}"; do
    if [[ -d /run/systemd/system ]]; then
        as_root systemctl disable --now "$service" >/dev/null 2>&1 || true
    elif command -v service >/dev/null 2>&1; then
        as_root service "$service" stop >/dev/null 2>&1 || true
    fi
done

# Check that everything is there now.
{ have mariadbd || have mysqld; } || { echo "system-deps: mariadbd still missing" >&2; exit 1; }
have redis-server || { echo "system-deps: redis-server still missing" >&2; exit 1; }
have_postgres || { echo "system-deps: postgres still missing" >&2; exit 1; }
have chromium || { echo "system-deps: chromium still missing" >&2; exit 1; }
have promtool || { echo "system-deps: promtool still missing" >&2; exit 1; }
echo "system-deps: done"
