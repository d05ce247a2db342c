#!/usr/bin/env bash
# Builds Prometheus from the Go module proxy (no image registry), for the e2e test that
# evaluates every dashboard query against the kind cluster (tests/e2e/test_31_metrics_prometheus.py).
# The binary runs on the host, into cluster/.cache/bin (OUT overrides). Built in a throwaway
# module so Prometheus's own go.mod is read as a dependency's; with every service discovery
# but file and HTTP left out (the test scrapes static targets), which halves the build.
# Idempotent: the module version is read back from the binary, and a matching one is kept.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${OUT:-$root/cluster/.cache/bin}
. "$root/versions.env"
command -v go >/dev/null 2>&1 || { echo "Prometheus needs Go to build: install Go" >&2; exit 1; }
module=github.com/prometheus/prometheus
mkdir -p "$out"

built() {
  # grep without -q reads all: with pipefail, an early exit would fail the pipeline.
  [ -x "$out/prometheus" ] && go version -m "$out/prometheus" 2>/dev/null |
    grep -E >/dev/null "^[[:space:]]+(mod|dep)[[:space:]]+$module[[:space:]]+$PROMETHEUS_VERSION([[:space:]]|$)"
}

if ! built; then
  start=$SECONDS
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  (
    cd "$work"
    export GOFLAGS=-mod=mod CGO_ENABLED=0
    go mod init neuron-k8s.local/prometheus-build >/dev/null 2>&1
    go get "$module@$PROMETHEUS_VERSION"
    go build -trimpath -tags netgo,remove_all_sd \
      -ldflags "-s -w -X github.com/prometheus/common/version.Version=$PROMETHEUS_VERSION" \
      -o "$out/prometheus" "$module/cmd/prometheus"
  )
  echo "prometheus: built $PROMETHEUS_VERSION in $((SECONDS - start))s"
fi
built || { echo "prometheus in $out is not $PROMETHEUS_VERSION" >&2; exit 1; }
echo "prometheus: $PROMETHEUS_VERSION in $out"
