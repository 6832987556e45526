#!/bin/bash
# nginx in front of the webservers, the stack's only published service:
#   :8080 -> UPSTREAM (the operator webserver): HTTP basic auth against a password file written
#            at start from OPERATOR_USER / OPERATOR_PASSWORD (bcrypt); the user passed on as
#            X-Forwarded-User with the shared secret PROXY_SECRET (X-Ingest-Proxy-Secret);
#   :8081 -> VIEWER_UPSTREAM (the read-only webserver);
#   :8082 -> LIVE_UPSTREAM (the live relay, which asks for its own tokens).
# TLS on all when /etc/ingest-tls holds tls.crt and tls.key; without them, only loopback
# publication is allowed (PUBLISH_BINDS: the host addresses the ports are published on).
set -euo pipefail
: "${OPERATOR_USER:?}" "${OPERATOR_PASSWORD:?}" "${UPSTREAM:?}" "${VIEWER_UPSTREAM:?}"
: "${PROXY_SECRET:?the shared secret of proxy and operator webserver (INGEST_PROXY_SECRET)}"
fail() { echo "proxy.sh: $*" >&2; exit 1; }
for value in "$OPERATOR_PASSWORD" "$PROXY_SECRET"; do
    [[ "$value" == change-me* ]] && fail "a placeholder from .env.example is still set: change it"
done
[[ "$PROXY_SECRET" =~ ^[A-Za-z0-9._~+/=-]{16,}$ ]] ||
    fail "INGEST_PROXY_SECRET: at least 16 characters of A-Z a-z 0-9 . _ ~ + / = -"
tls=/etc/ingest-tls
if [[ -s $tls/tls.crt && -s $tls/tls.key ]]; then
    listen_opts="ssl"
    tls_lines="ssl_certificate $tls/tls.crt; ssl_certificate_key $tls/tls.key; ssl_protocols TLSv1.2 TLSv1.3;"
else
    listen_opts=""
    tls_lines=""
    for bind in ${PUBLISH_BINDS:-127.0.0.1}; do
        case "$bind" in
        127.* | localhost | ::1 | '[::1]') ;;
        *) fail "published on $bind without TLS: put tls.crt and tls.key in INGEST_TLS_DIR, or publish on 127.0.0.1" ;;
        esac
    done
fi
install -m 640 -g www-data /dev/null /etc/nginx/operator.htpasswd
htpasswd -iB /etc/nginx/operator.htpasswd "$OPERATOR_USER" <<<"$OPERATOR_PASSWORD" 2>/dev/null
resolver=$(awk '/^nameserver/ {print $2; exit}' /etc/resolv.conf)
install -m 640 -g www-data /dev/null /etc/nginx/conf.d/operator.conf
sed -e "s|@UPSTREAM@|$UPSTREAM|g" -e "s|@VIEWER_UPSTREAM@|$VIEWER_UPSTREAM|g" \
    -e "s|@LIVE_UPSTREAM@|${LIVE_UPSTREAM:-live:8790}|g" \
    -e "s|@RESOLVER@|${resolver:-127.0.0.11}|g" -e "s|@LISTEN_OPTS@|$listen_opts|g" \
    -e "s|@TLS@|$tls_lines|g" -e "s|@PROXY_SECRET@|$PROXY_SECRET|g" \
    /etc/nginx/operator.conf.template >/etc/nginx/conf.d/operator.conf
exec nginx -g 'daemon off;'
