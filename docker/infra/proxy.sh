#!/bin/bash
# nginx in front of the operator webserver: HTTP basic auth against a password file written
# at start from OPERATOR_USER / OPERATOR_PASSWORD (bcrypt), identity passed on as
# X-Forwarded-User. UPSTREAM is host:port of the operator webserver.
set -euo pipefail
: "${OPERATOR_USER:?}" "${OPERATOR_PASSWORD:?}" "${UPSTREAM:?}"
install -m 640 -g www-data /dev/null /etc/nginx/operator.htpasswd
htpasswd -iB /etc/nginx/operator.htpasswd "$OPERATOR_USER" <<<"$OPERATOR_PASSWORD" 2>/dev/null
resolver=$(awk '/^nameserver/ {print $2; exit}' /etc/resolv.conf)
sed -e "s|@UPSTREAM@|$UPSTREAM|g" -e "s|@RESOLVER@|${resolver:-127.0.0.11}|g" \
    /etc/nginx/operator.conf.template >/etc/nginx/conf.d/operator.conf
exec nginx -g 'daemon off;'
