#!/bin/sh
# Used by docker/Dockerfile. `deps`: the runtime dependencies listed in pyproject.toml, pinned
# by constraints.txt (plus setuptools, to build the project offline later); `project`: the
# project itself, no dependencies, no network. Build secrets, when given: `pip_conf` (the build
# host's pip configuration: index, extra indexes, find-links) and `ca_bundle` (its CA bundle).
set -eu
if [ -s /run/secrets/pip_conf ]; then export PIP_CONFIG_FILE=/run/secrets/pip_conf; fi
if [ -s /run/secrets/ca_bundle ]; then export PIP_CERT=/run/secrets/ca_bundle; fi
case "$1" in
deps)
    python3 -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' >/tmp/requirements.txt
    echo "setuptools" >>/tmp/requirements.txt
    pip install -q -r /tmp/requirements.txt -c constraints.txt
    rm /tmp/requirements.txt
    ;;
project)
    pip install -q --no-deps --no-build-isolation --no-index .
    ;;
*)
    echo "usage: pip-install.sh deps|project" >&2
    exit 2
    ;;
esac
