#!/usr/bin/env bash
# The build steps of .github/workflows/release.yml, on this machine and without pushing:
#   scripts/release-build.sh vX.Y.Z [--arch amd64|arm64|all] [--buildx]
# 1. the tag is checked against the chart and the package (scripts/release-version.sh);
# 2. the wheel (pip wheel plugin-src) and the chart package (helm package charts/neuron) go to
#    dist/release/;
# 3. the neuron-k8s image: with --buildx, the workflow's own build (docker buildx, the same
#    Dockerfile, context and platforms) written to an OCI tarball, which needs a registry to pull
#    the Dockerfile's base image from; without it, the offline image builder, which needs none:
#    amd64 from cluster/build-images.sh (the image the e2e suite runs: Debian's python3, not
#    the Dockerfile's base), arm64 the same way on an arm64 Debian root filesystem
#    (debootstrap --foreign, completed under qemu-user-static through binfmt_misc).
# Prints each file it built with its size and sha256, and each image's config digest (its ID).
# Needs root for the offline image (chroot, mounts); run it alone, not beside an e2e run: it
# shares cluster/.cache with the harness.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

# What the workflow's image job builds; tests/tooling/test_release_workflow.py holds these to
# the workflow's build-push-action inputs.
CONTEXT=plugin-src
DOCKERFILE=plugin-src/Dockerfile
PLATFORMS=linux/amd64,linux/arm64
CHART=charts/neuron

usage() { echo "usage: $0 vX.Y.Z [--arch amd64|arm64|all] [--buildx]" >&2; exit 2; }
tag=${1:-}
case $tag in "" | -*) usage ;; esac
shift
arch=amd64 buildx=0
while [ $# -gt 0 ]; do
  case $1 in
    --arch) arch=${2:-}; shift 2 || usage ;;
    --buildx) buildx=1; shift ;;
    *) usage ;;
  esac
done
case $arch in amd64 | arm64 | all) ;; *) usage ;; esac

version=$(bash scripts/release-version.sh "$tag")
dist=$root/dist/release
rm -rf "$dist" && mkdir -p "$dist"
log() { echo "release: $*"; }
built() {  # file [what]
  log "built $(basename "$1") ($(stat -c %s "$1") bytes, sha256:$(sha256sum "$1" | cut -d' ' -f1))${2:+ $2}"
}
image_id() {  # docker-archive tarball: its config digest and tags
  python3 - "$1" <<'PY'
import json, sys, tarfile
with tarfile.open(sys.argv[1]) as tar:
    manifest = json.load(tar.extractfile("manifest.json"))[0]
    config = json.load(tar.extractfile(manifest["Config"]))
print(f"image {' '.join(manifest['RepoTags'])} {config['os']}/{config['architecture']}"
      f" id sha256:{manifest['Config'].removesuffix('.json')}")
PY
}

# The wheel the image installs; --no-deps: its dependencies come from PyPI at install time.
python3 -m pip wheel --quiet --no-deps --wheel-dir "$dist" "$root/$CONTEXT"
for wheel in "$dist"/*.whl; do built "$wheel"; done

# The chart, as the workflow packages it; the file name carries the chart's version.
helm=$root/.tools/bin/helm
[ -x "$helm" ] || helm=$(command -v helm || true)
[ -n "$helm" ] || { echo "release: helm not found: run scripts/install-tools.sh" >&2; exit 1; }
"$helm" package "$CHART" --destination "$dist" >/dev/null
chart=$dist/neuron-$version.tgz
[ -f "$chart" ] || { echo "release: helm package wrote no $(basename "$chart")" >&2; exit 1; }
built "$chart"

if [ "$buildx" = 1 ]; then
  case $arch in amd64) platforms=linux/amd64 ;; arm64) platforms=linux/arm64 ;; *) platforms=$PLATFORMS ;; esac
  out=$dist/neuron-k8s-$version.oci.tar
  docker buildx build --platform "$platforms" --file "$DOCKERFILE" --tag "neuron-k8s:$version" \
    --output "type=oci,dest=$out" "$CONTEXT"
  built "$out" "(OCI layout, $platforms)"
  exit 0
fi

[ "$(id -u)" = 0 ] || { echo "release: the offline image builder needs root (chroot, mounts)" >&2; exit 1; }

# amd64: cluster/build-images.sh, which rebuilds only what changed (the app image is its last step).
if [ "$arch" != arm64 ]; then
  # Called by its physical path: the builder keys its caches by the paths of their inputs.
  builder=$(cd cluster && pwd -P)
  bash "$builder/build-images.sh"
  out=$dist/neuron-k8s-$version-linux-amd64.tar
  cp "$builder/.cache/images/neuron-k8s.tar" "$out"
  built "$out" "($(image_id "$out"))"
fi
[ "$arch" = amd64 ] && exit 0

# arm64: the app image's steps of cluster/build-images.sh on an arm64 root filesystem. Debian's
# arm64 packages are unpacked here (debootstrap --foreign) and configured by running them
# under qemu-user-static, which the kernel starts for arm64 binaries through binfmt_misc.
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=trixie
packages=$(sed -n 's/^APP_PACKAGES=//p' cluster/build-images.sh)
cache=$root/.cache/release/arm64
mkdir -p "$cache"
qemu=/usr/bin/qemu-aarch64-static
binfmt=/proc/sys/fs/binfmt_misc
if [ ! -x "$qemu" ]; then
  echo "release: arm64 needs qemu-user-static (apt-get install qemu-user-static)" >&2
  exit 1
fi
if [ ! -e "$binfmt/register" ]; then
  mount -t binfmt_misc binfmt_misc "$binfmt" ||
    { echo "release: arm64: cannot mount binfmt_misc, so arm64 binaries cannot run here" >&2; exit 1; }
fi
if [ ! -e "$binfmt/qemu-aarch64" ]; then
  # Debian's registration; F opens the interpreter now, so it also serves inside chroots.
  cat /usr/lib/binfmt.d/qemu-aarch64.conf >"$binfmt/register" ||
    { echo "release: arm64: the kernel refused qemu-aarch64's binfmt_misc entry" >&2; exit 1; }
fi

base=$cache/rootfs.tar want=$(echo "$SUITE $packages arm64" | sha256sum | cut -c1-16)
if ! { [ -f "$base" ] && [ "$(cat "$base.stamp" 2>/dev/null)" = "$want" ]; }; then
  start=$SECONDS dir=$cache/rootfs
  rm -rf "$dir"
  # The second stage reads the mirror's whole Packages file (56 MB) with an emulated perl once
  # per dependency round, for minutes each: cut it to the packages the first stage fetched.
  { debootstrap --arch=arm64 --foreign --variant=minbase --include="$packages" "$SUITE" "$dir" "$MIRROR" &&
    python3 - "$dir/debootstrap/debpaths" "$dir"/var/lib/apt/lists/*_Packages <<'PY' &&
import re, sys
fetched = {line.split()[0] for line in open(sys.argv[1]) if line.strip()}
for path in sys.argv[2:]:
    stanzas = open(path, encoding="utf-8").read().split("\n\n")
    name = [re.search(r"^Package: (\S+)$", s, re.M) for s in stanzas]
    kept = [s.strip("\n") for s, n in zip(stanzas, name) if n and n.group(1) in fetched]
    open(path, "w", encoding="utf-8").write("\n\n".join(kept) + "\n\n")
PY
    chroot "$dir" /debootstrap/debootstrap --second-stage; } >"$cache/debootstrap.log" 2>&1 ||
    { tail -20 "$cache/debootstrap.log" >&2; echo "release: arm64 root filesystem failed (log: $cache/debootstrap.log)" >&2; exit 1; }
  chroot "$dir" apt-get clean
  rm -rf "$dir"/var/lib/apt/lists/* "$dir"/usr/share/{doc,man,info,locale}/* "$dir"/var/log/*.log
  python3 -c 'import sys; sys.path.insert(0, sys.argv[3]); import mkimage; mkimage.folder_to_layer(sys.argv[1], sys.argv[2])' \
    "$dir" "$base" "$root/cluster"
  echo "$want" >"$base.stamp"
  log "arm64 root filesystem ($SUITE) in $((SECONDS - start))s"
fi

# The wheel installed into a venv in a throwaway overlay; the overlay's upper folder is the layer.
start=$SECONDS upper=$cache/layer-app
work=$upper.work merged=$upper.merged
rm -rf "$upper" "$work" "$merged" && mkdir -p "$upper" "$work" "$merged" "$cache/rootfs/wheels"
rm -f "$cache"/rootfs/wheels/*.whl && cp "$dist"/*.whl "$cache/rootfs/wheels/"
mount -t overlay overlay -o "lowerdir=$cache/rootfs,upperdir=$upper,workdir=$work" "$merged"
mount -t proc proc "$merged/proc"
cp /etc/resolv.conf "$merged/etc/resolv.conf"
cp /etc/ssl/certs/ca-certificates.crt "$merged/tmp/host-ca.crt"
rc=0
# shellcheck disable=SC2016 # expanded by the chroot's shell
chroot "$merged" env -u PIP_FIND_LINKS PIP_CERT=/tmp/host-ca.crt SSL_CERT_FILE=/tmp/host-ca.crt \
  ${PIP_INDEX_URL:+PIP_INDEX_URL="$PIP_INDEX_URL"} /bin/sh -ec '
    python3 -m venv /opt/neuron-k8s
    /opt/neuron-k8s/bin/pip install --quiet --no-cache-dir --disable-pip-version-check /wheels/*.whl
    /opt/neuron-k8s/bin/neuron-device-plugin --help >/dev/null && /opt/neuron-k8s/bin/neuron-dra-driver --help >/dev/null
    /opt/neuron-k8s/bin/neuron-scheduler-extender --help >/dev/null
    test "$(uname -m)" = aarch64' || rc=$?
umount "$merged/proc"
umount "$merged"
rm -rf "$work" "$merged" "$upper/etc/resolv.conf" "$upper/root/.cache" "$upper/tmp"/* 2>/dev/null || true
[ "$rc" = 0 ] || { echo "release: arm64: installing the wheel under emulation failed" >&2; exit 1; }
out=$dist/neuron-k8s-$version-linux-arm64.tar
python3 cluster/mkimage.py --architecture arm64 --tag "neuron-k8s:$version" --layer "$base" --layer "$upper" \
  --env PATH=/opt/neuron-k8s/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --env PYTHONUNBUFFERED=1 --out "$out"
log "arm64 image in $((SECONDS - start))s"
built "$out" "($(image_id "$out"))"
