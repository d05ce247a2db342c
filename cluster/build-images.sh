#!/usr/bin/env bash
# Builds, without any container registry, every image the offline kind cluster runs:
#   - a kind node image (Debian trixie with systemd, containerd, runc, CNI plugins, kubeadm,
#     kubelet, kubectl, and the control-plane images preloaded),
#   - the control-plane images kubeadm expects (registry.k8s.io names and tags),
#   - this project's image neuron-k8s:<version> (the device plugin and the extender).
# Everything comes from Debian's packages, the Go module proxy (cluster/build-binaries.sh) and
# PyPI. Outputs are docker-archive tarballs: the Kubernetes release's own (control plane,
# kube-proxy, node image; k8s/release.sh) under cluster/.cache/k8s-<version>/images, the
# others under cluster/.cache/images; each is rebuilt only when its inputs change.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
cache=$here/.cache
bin=$cache/bin
out=$cache/images
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=trixie
. "$root/versions.env"
. "$here/k8s/release.sh"
kbin=$K8S_BIN kout=$K8S_IMAGES
APP_VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/plugin-src/pyproject.toml")
NODE_IMAGE=${NODE_IMAGE:-neuron-k8s/kind-node:$K8S_VERSION}
APP_IMAGE=neuron-k8s:$APP_VERSION
NODE_PACKAGES=systemd,systemd-sysv,dbus,containerd,runc,containernetworking-plugins,iptables,nftables,iproute2,conntrack,ethtool,util-linux,mount,kmod,libseccomp2,pigz,ca-certificates,procps,socat,bash
APP_PACKAGES=python3,python3-venv,ca-certificates,iptables,nftables,conntrack,iproute2
mkdir -p "$out" "$kout"
mkimage() { python3 "$here/mkimage.py" "$@"; }
folder_layer() { python3 -c 'import sys; sys.path.insert(0, sys.argv[3]); import mkimage; mkimage.folder_to_layer(sys.argv[1], sys.argv[2])' "$1" "$2" "$here"; }
log() { echo "images: $*"; }

# A stamp holds the hash of an output's inputs; an output is current when its stamp matches.
inputs_hash() { for x in "$@"; do if [ -e "$x" ]; then find "$x" -type f -print0 | sort -z | xargs -0 sha256sum; else echo "$x"; fi; done | sha256sum | cut -c1-16; }
current() { [ -f "$1" ] && [ -f "$1.stamp" ] && [ "$(cat "$1.stamp")" = "$2" ]; }
stamp() { echo "$2" >"$1.stamp"; }

# Debian root filesystems, cached as folders and as reproducible layer tarballs.
rootfs() {  # name packages
  local dir=$cache/rootfs-$1 tarball=$cache/rootfs-$1.tar want
  want=$(echo "$SUITE $2" | sha256sum | cut -c1-16)
  if current "$tarball" "$want"; then return; fi
  local start=$SECONDS
  rm -rf "$dir"
  debootstrap --variant=minbase --include="$2" "$SUITE" "$dir" "$MIRROR" >"$cache/debootstrap-$1.log" 2>&1 \
    || { tail -20 "$cache/debootstrap-$1.log" >&2; exit 1; }
  chroot "$dir" apt-get clean
  rm -rf "$dir"/var/lib/apt/lists/* "$dir"/usr/share/{doc,man,info,locale}/* "$dir"/var/log/*.log
  folder_layer "$dir" "$tarball"
  stamp "$tarball" "$want"
  log "rootfs $1 ($SUITE) in $((SECONDS - start))s"
}

# Static binaries need no more than a passwd file and a /tmp.
scratch_layer() {
  local dir=$cache/scratch
  rm -rf "$dir" && mkdir -p "$dir/etc" "$dir/tmp" && chmod 1777 "$dir/tmp"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/:/sbin/nologin\n' >"$dir/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\n' >"$dir/etc/group"
  folder_layer "$dir" "$cache/scratch.tar"
}

static_image() {  # dir file tag binary [entrypoint...]
  local name=${2%.tar} file=$1/$2 tag=$3 binary=$4; shift 4
  local want; want=$(inputs_hash "$binary" "$here/mkimage.py" "$tag" "$*")
  if current "$file" "$want"; then return; fi
  local dir=$cache/layer-$name
  rm -rf "$dir" && mkdir -p "$dir/usr/local/bin"
  cp "$binary" "$dir/usr/local/bin/"
  local args=(--tag "$tag" --layer "$cache/scratch.tar" --layer "$dir" --out "$file")
  [ $# -gt 0 ] && args+=(--entrypoint "$@")
  mkimage "${args[@]}"
  stamp "$file" "$want"
  log "$tag"
}

pause_image() {
  local file=$out/pause.tar tag=registry.k8s.io/pause:$PAUSE_VERSION
  local want; want=$(inputs_hash "$here/images/pause.c" "$here/mkimage.py" "$tag")
  if current "$file" "$want"; then return; fi
  local dir=$cache/layer-pause
  rm -rf "$dir" && mkdir -p "$dir"
  gcc -Os -static -o "$dir/pause" "$here/images/pause.c"
  mkimage --tag "$tag" --layer "$dir" --entrypoint /pause --out "$file"
  stamp "$file" "$want"
  log "$tag"
}

# Run a command in a throwaway overlay on a root filesystem; the overlay's upper folder is what
# the command added: exactly one image layer.
in_overlay() {  # base-dir upper-dir command...
  local base=$1 upper=$2; shift 2
  local work=$upper.work merged=$upper.merged
  rm -rf "$upper" "$work" "$merged" && mkdir -p "$upper" "$work" "$merged"
  mount -t overlay overlay -o "lowerdir=$base,upperdir=$upper,workdir=$work" "$merged"
  mount -t proc proc "$merged/proc"
  cp /etc/resolv.conf "$merged/etc/resolv.conf"
  # Trust what this machine trusts (its package registries may sit behind its own CA), and use
  # its pip index when it names one.
  cp /etc/ssl/certs/ca-certificates.crt "$merged/tmp/host-ca.crt"
  local rc=0
  chroot "$merged" env -u PIP_FIND_LINKS PIP_CERT=/tmp/host-ca.crt SSL_CERT_FILE=/tmp/host-ca.crt \
    ${PIP_INDEX_URL:+PIP_INDEX_URL="$PIP_INDEX_URL"} "$@" || rc=$?
  umount "$merged/proc"
  umount "$merged"
  rm -rf "$work" "$merged" "$upper/etc/resolv.conf" "$upper/root/.cache" "$upper/tmp"/* 2>/dev/null || true
  return $rc
}

app_image() {
  local file=$out/neuron-k8s.tar
  local want; want=$(inputs_hash "$root/plugin-src/src" "$root/plugin-src/proto" \
    "$root/plugin-src/pyproject.toml" "$root/plugin-src/setup.py" "$here/mkimage.py" \
    "$cache/rootfs-app.tar.stamp")
  if current "$file" "$want"; then return; fi
  local start=$SECONDS dist=$cache/dist upper=$cache/layer-app
  rm -rf "$dist" && mkdir -p "$dist"
  python3 -m pip wheel --quiet --no-deps --wheel-dir "$dist" "$root/plugin-src"
  mkdir -p "$cache/rootfs-app/wheels"
  rm -f "$cache"/rootfs-app/wheels/*.whl && cp "$dist"/*.whl "$cache/rootfs-app/wheels/"
  in_overlay "$cache/rootfs-app" "$upper" /bin/sh -ec '
    python3 -m venv /opt/neuron-k8s
    /opt/neuron-k8s/bin/pip install --quiet --no-cache-dir --disable-pip-version-check /wheels/*.whl
    /opt/neuron-k8s/bin/neuron-device-plugin --help >/dev/null && /opt/neuron-k8s/bin/neuron-dra-driver --help >/dev/null
    /opt/neuron-k8s/bin/neuron-scheduler-extender --help >/dev/null'
  mkimage --tag "$APP_IMAGE" --layer "$cache/rootfs-app.tar" --layer "$upper" \
    --env PATH=/opt/neuron-k8s/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env PYTHONUNBUFFERED=1 --out "$file"
  stamp "$file" "$want"
  log "$APP_IMAGE in $((SECONDS - start))s"
}

proxy_image() {
  local file=$kout/kube-proxy.tar tag=registry.k8s.io/kube-proxy:$K8S_VERSION
  local want; want=$(inputs_hash "$kbin/kube-proxy" "$here/mkimage.py" "$cache/rootfs-app.tar.stamp" "$tag")
  if current "$file" "$want"; then return; fi
  local dir=$cache/layer-kube-proxy
  rm -rf "$dir" && mkdir -p "$dir/usr/local/bin" && cp "$kbin/kube-proxy" "$dir/usr/local/bin/"
  mkimage --tag "$tag" --layer "$cache/rootfs-app.tar" --layer "$dir" --out "$file"
  stamp "$file" "$want"
  log "$tag"
}

node_image() {
  local file=$kout/kind-node.tar
  local preload=("$out"/{pause,etcd,coredns}.tar "$kout"/{kube-apiserver,kube-controller-manager,kube-scheduler,kube-proxy}.tar)
  local want; want=$(inputs_hash "$here/node-image" "$kbin/kubeadm" "$kbin/kubelet" \
    "$kbin/kubectl" "$here/mkimage.py" "$cache/rootfs-node.tar.stamp" \
    "${preload[@]/%/.stamp}" "$NODE_IMAGE" "$PAUSE_VERSION")
  if current "$file" "$want"; then return; fi
  local start=$SECONDS dir=$cache/layer-node
  rm -rf "$dir" && mkdir -p "$dir"
  cp -a "$here/node-image/files/." "$dir/"
  sed -i "s/@PAUSE_VERSION@/$PAUSE_VERSION/" "$dir/etc/containerd/config.toml"
  mkdir -p "$dir/usr/bin" "$dir/kind/images" "$dir/opt/cni" "$dir/etc/kubernetes/manifests" \
    "$dir/etc/systemd/system/multi-user.target.wants" "$dir/etc/cni/net.d"
  cp "$kbin/kubeadm" "$kbin/kubelet" "$kbin/kubectl" "$dir/usr/bin/"
  cp "${preload[@]}" "$dir/kind/images/"
  echo "$K8S_VERSION" >"$dir/kind/version"
  ln -s /usr/lib/cni "$dir/opt/cni/bin"
  # No login prompts (a getty on the console also silences the boot status kind waits for),
  # and no apt timers in a node.
  for unit in console-getty.service getty@.service serial-getty@.service apt-daily.timer \
    apt-daily-upgrade.timer dpkg-db-backup.timer; do
    ln -s /dev/null "$dir/etc/systemd/system/$unit"
  done
  for unit in kubelet.service kind-images.service; do
    ln -s "/etc/systemd/system/$unit" "$dir/etc/systemd/system/multi-user.target.wants/$unit"
  done
  mkimage --tag "$NODE_IMAGE" --layer "$cache/rootfs-node.tar" --layer "$dir" \
    --entrypoint /usr/local/bin/entrypoint /sbin/init \
    --env container=docker --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --stop-signal SIGRTMIN+3 --out "$file"
  stamp "$file" "$want"
  log "$NODE_IMAGE in $((SECONDS - start))s"
}

rootfs node "$NODE_PACKAGES"
rootfs app "$APP_PACKAGES"
scratch_layer
pause_image
static_image "$out" etcd.tar "registry.k8s.io/etcd:$ETCD_IMAGE_TAG" "$bin/etcd"
static_image "$out" coredns.tar "registry.k8s.io/coredns/coredns:$COREDNS_VERSION" "$bin/coredns" /usr/local/bin/coredns
for c in kube-apiserver kube-controller-manager kube-scheduler; do
  static_image "$kout" "$c.tar" "registry.k8s.io/$c:$K8S_VERSION" "$kbin/$c"
done
proxy_image
node_image
if [ "${SKIP_APP_IMAGE:-}" != 1 ]; then app_image; fi
log "ready in $out and $kout"
