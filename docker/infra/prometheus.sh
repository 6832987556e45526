#!/bin/bash
# Prometheus scraping the stack, served under /prometheus/, not published (docs/deployment.md):
#   ingest-sidecar  SIDECAR_TARGETS (host:port, space-separated), their /metrics
#   ingest-live     LIVE_TARGET's /metrics, with a viewer token it signs itself from
#                   LIVE_JWT_SECRET (HS256, `sub` prometheus, 24 h, signed again every 12 h into a
#                   file only it reads)
#   ingest-crawls   METRICS_TARGETS: `ingest metrics`, the crawls' metrics (when set)
#   prometheus      itself
# Job names and `component` labels as in deploy/prometheus/prometheus.yml, which its rules use.
# Rule files: every *.yml under /etc/prometheus/rules (compose mounts deploy/prometheus/rules.yml).
set -euo pipefail
: "${SIDECAR_TARGETS:?}" "${LIVE_TARGET:?}" "${LIVE_JWT_SECRET:?the secret of the live relay, INGEST_LIVE_JWT_SECRET}"
state=/var/lib/prometheus/stack
mkdir -p "$state" /var/lib/prometheus/data
chown -R prometheus:prometheus /var/lib/prometheus
b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
sign_token() {
    local now header payload signature
    now=$(date +%s)
    header=$(printf '{"alg":"HS256","typ":"JWT"}' | b64url)
    payload=$(printf '{"sub":"prometheus","role":"viewer","iat":%d,"exp":%d}' "$now" $((now + 86400)) | b64url)
    signature=$(printf '%s.%s' "$header" "$payload" |
        openssl dgst -sha256 -mac HMAC -macopt "key:$LIVE_JWT_SECRET" -binary | b64url)
    install -m 600 -o prometheus /dev/null "$state/live.jwt.new"
    printf '%s.%s.%s' "$header" "$payload" "$signature" >"$state/live.jwt.new"
    mv "$state/live.jwt.new" "$state/live.jwt"
}
sign_token
(while sleep 43200; do sign_token; done) &
yaml_list() { local t out=""; for t in $1; do out+="'$t', "; done; printf '[%s]' "${out%, }"; }
{
    cat <<YAML
global:
  scrape_interval: ${SCRAPE_INTERVAL:-15s}
  evaluation_interval: ${SCRAPE_INTERVAL:-15s}
  external_labels: {platform: ingestion_pipelines}
rule_files: ['/etc/prometheus/rules/*.yml']
scrape_configs:
  - job_name: ingest-sidecar
    static_configs: [{targets: $(yaml_list "$SIDECAR_TARGETS"), labels: {component: sidecar}}]
  - job_name: ingest-live
    authorization: {credentials_file: $state/live.jwt}
    static_configs: [{targets: $(yaml_list "$LIVE_TARGET"), labels: {component: live}}]
  - job_name: prometheus
    metrics_path: /prometheus/metrics
    static_configs: [{targets: ['localhost:9090'], labels: {component: prometheus}}]
YAML
    if [[ -n "${METRICS_TARGETS:-}" ]]; then
        cat <<YAML
  - job_name: ingest-crawls
    static_configs: [{targets: $(yaml_list "$METRICS_TARGETS"), labels: {component: crawls}}]
YAML
    fi
} >"$state/prometheus.yml"
mkdir -p /etc/prometheus/rules
exec setpriv --reuid=prometheus --regid=prometheus --init-groups /usr/bin/prometheus \
    --config.file="$state/prometheus.yml" --storage.tsdb.path=/var/lib/prometheus/data \
    --storage.tsdb.retention.time="${RETENTION:-15d}" --web.listen-address=0.0.0.0:9090 \
    --web.external-url=/prometheus/ --web.route-prefix=/prometheus
