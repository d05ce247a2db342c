#!/usr/bin/env bash
# Builds every binary the offline kind cluster needs, from the Go module proxy, into
# cluster/.cache/bin: the Kubernetes server binaries, etcd, CoreDNS and kind itself.
# Static (CGO_ENABLED=0), so they run in any image. Idempotent and cached by Go.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-$here/.cache/bin}
ETCD_VERSION=v3.6.5
COREDNS_VERSION=v1.12.1
KIND_VERSION=v0.33.0
mkdir -p "$out"
export CGO_ENABLED=0

OUT=$out bash "$here/k8s/build.sh"

if ! "$out/etcd" --version 2>/dev/null | grep >/dev/null "etcd Version: ${ETCD_VERSION#v}"; then
  start=$SECONDS
  (cd "$here/etcd" && go build -trimpath -ldflags "-s -w" -o "$out/etcd" go.etcd.io/etcd/server/v3)
  echo "etcd: built $ETCD_VERSION in $((SECONDS - start))s"
fi

# CoreDNS and kind have no replace directives, so `go install` builds them as published.
gobin_install() {  # name module version check-string
  # grep without -q reads all: with pipefail, an early exit would fail the pipeline.
  if ! "$out/$1" --version 2>/dev/null | grep "$4" >/dev/null; then
    start=$SECONDS
    GOBIN=$out go install -trimpath -ldflags "-s -w" "$2@$3"
    echo "$1: built $3 in $((SECONDS - start))s"
  fi
}
gobin_install coredns github.com/coredns/coredns "$COREDNS_VERSION" "CoreDNS-${COREDNS_VERSION#v}"
gobin_install kind sigs.k8s.io/kind "$KIND_VERSION" "kind version ${KIND_VERSION#v}"
echo "binaries: ready in $out"
