#!/bin/bash
# Imports every archive under /kind/images into containerd's k8s.io namespace, once per boot,
# then leaves /run/kind-images.done for the kubelet unit, which waits for it.
set -o errexit -o nounset -o pipefail
for _ in $(seq 1 100); do ctr version >/dev/null 2>&1 && break; sleep 0.2; done
for archive in /kind/images/*.tar; do
  [ -e "$archive" ] || continue
  ctr --namespace=k8s.io images import --snapshotter=overlayfs "$archive" >/dev/null
  echo "imported $(basename "$archive")"
done
touch /run/kind-images.done
