#!/usr/bin/env bash
# Builds every binary the offline kind cluster needs, from the Go module proxy: the
# Kubernetes server binaries and kubectl of one release (k8s/release.sh) into
# cluster/.cache/k8s-<version>/bin, and etcd, CoreDNS and kind into cluster/.cache/bin.
# Static (CGO_ENABLED=0), so they run in any image. Idempotent and cached by Go.
# STOCK=1 (the stock kind path, whose node image has the rest): kind, unless the one on PATH
# is the pinned version, kube-scheduler (tests/e2e/test_08_scheduler_config.py) and kubectl.
# Either way the release's kubectl is linked into .tools/bin, where the tests find it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-$here/.cache/bin}
. "$here/../versions.env"
. "$here/k8s/release.sh"
mkdir -p "$out" "$here/../.tools/bin"
link_kubectl() { ln -sfn "$K8S_BIN/kubectl" "$here/../.tools/bin/kubectl"; }
export CGO_ENABLED=0

if [ "${STOCK:-}" = 1 ]; then
  CMDS="kube-scheduler kubectl" bash "$here/k8s/build.sh"
  link_kubectl
  if kind version 2>/dev/null | grep "kind ${KIND_VERSION} " >/dev/null; then
    echo "kind: $KIND_VERSION on PATH"
  else
    GOBIN=$out go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kind@$KIND_VERSION"
  fi
  echo "binaries: ready in $out"
  exit 0
fi

bash "$here/k8s/build.sh"
link_kubectl

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
