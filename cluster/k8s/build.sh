#!/usr/bin/env bash
# Compiles the Kubernetes server binaries and kubectl of one release (release.sh) into $OUT
# (default cluster/.cache/k8s-<version>/bin), statically, with the version stamped in so that
# kubeadm and the kubelet agree.
# Go's build cache makes a second run take seconds.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../versions.env"
. "$here/release.sh"
out=${OUT:-$K8S_BIN}
version=$K8S_VERSION
major=${version#v}; minor=${major#*.}; major=${major%%.*}; minor=${minor%%.*}
mkdir -p "$out"
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
version_of() {
  case "$(basename "$1")" in
    kubeadm) "$1" version -o short 2>/dev/null ;;
    kubectl) "$1" version --client -o json 2>/dev/null | sed -n 's/.*"gitVersion": "\(.*\)",/\1/p' ;;
    *) "$1" --version 2>/dev/null | awk '{print $NF}' ;;
  esac
}
cd "$K8S_MODULE"
stale=()
for cmd in ${CMDS:-kubeadm kubelet kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubectl}; do
  if [ -x "$out/$cmd" ] && [ "$(version_of "$out/$cmd")" = "$version" ] \
     && [ "$out/$cmd" -nt go.mod ]; then
    echo "k8s: $cmd $version already built"
  else
    stale+=("k8s.io/kubernetes/cmd/$cmd")
  fi
done
if [ ${#stale[@]} -gt 0 ]; then
  # One go build for all: the shared packages compile once and the links run side by side.
  start=$SECONDS
  CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out/" "${stale[@]}"
  echo "k8s: built ${stale[*]##*/} $version in $((SECONDS - start))s"
fi
