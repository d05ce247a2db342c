#!/usr/bin/env bash
# Prepares this machine to run kind with no container registry: Debian's packages for building
# images and running containers, and a Docker engine that can start privileged containers.
# Bookworm's docker.io (20.10) cannot (its runc refuses the capability set of these machines),
# so the engine comes from Debian sid's docker.io, unpacked beside the system, with bookworm's
# containerd and runc. Idempotent; starts dockerd when it is not running.
set -euo pipefail
SID=${NEURON_SID_DIR:-/opt/neuron-sid}
DOCKER_LOG=${NEURON_DOCKERD_LOG:-/var/log/neuron-dockerd.log}
export DEBIAN_FRONTEND=noninteractive

need_pkgs=()
for p in containerd runc debootstrap iptables gcc libc6-dev tmux; do
  dpkg -s "$p" >/dev/null 2>&1 || need_pkgs+=("$p")
done
if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "host: installing ${need_pkgs[*]}"
  apt-get update -qq
  apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

if [ ! -x "$SID/root/usr/sbin/dockerd" ] || [ ! -x "$SID/root/usr/bin/docker" ]; then
  echo "host: fetching docker.io, docker-cli and tini from Debian sid"
  mkdir -p "$SID/lists/partial" "$SID/debs"
  echo "deb http://deb.debian.org/debian sid main" >"$SID/sources.list"
  apt_sid=(-oDir::Etc::sourcelist="$SID/sources.list" -oDir::Etc::sourceparts=-
           -oDir::State::Lists="$SID/lists" -oAPT::Get::List-Cleanup=0)
  apt-get "${apt_sid[@]}" update -qq
  (cd "$SID/debs" && apt-get "${apt_sid[@]}" download docker.io docker-cli tini 2>&1 | grep -v '^W:' || true)
  for deb in "$SID"/debs/*.deb; do dpkg -x "$deb" "$SID/root"; done
fi
export PATH=$SID/root/usr/sbin:$SID/root/usr/bin:$PATH

if ! docker info >/dev/null 2>&1; then
  echo "host: starting dockerd (log: $DOCKER_LOG)"
  # docker-init and docker-proxy are looked up on PATH; setsid keeps it alive after this shell.
  setsid env PATH="$PATH" dockerd --host unix:///var/run/docker.sock >>"$DOCKER_LOG" 2>&1 </dev/null &
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || { tail -20 "$DOCKER_LOG" >&2; echo "host: dockerd did not start" >&2; exit 1; }
fi
echo "host: docker $(docker version --format '{{.Server.Version}}') ready; add $SID/root/usr/sbin:$SID/root/usr/bin to PATH"
