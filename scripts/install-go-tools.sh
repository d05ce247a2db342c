#!/usr/bin/env bash
# The tools of `tox -e lint` that are built from the Go module proxy with the machine's Go
# (1.22 or newer), into .tools/bin: helm-docs, which generates charts/neuron/README.md
# (scripts/chart-docs.sh), kube-score, one of the peer checkers scripts/peer-checks.py runs
# (checkov comes from PyPI: scripts/install-checkov.sh), and actionlint, which checks
# .github/workflows (scripts/lint-workflows.sh). The unit tests need none of them. Idempotent: the
# module versions are read back from the binaries.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/.tools/bin
mkdir -p "$bin"
command -v go >/dev/null 2>&1 || { echo "these tools need Go to build: install Go" >&2; exit 1; }
. "$root/versions.env"

built() {  # binary module version
  [ -x "$bin/$1" ] && go version -m "$bin/$1" 2>/dev/null |
    grep -E >/dev/null "^[[:space:]]+mod[[:space:]]+$2[[:space:]]+$3([[:space:]]|$)"
}
build() {  # binary module package version
  if ! built "$1" "$2" "$4"; then
    GOBIN="$bin" GOFLAGS=-mod=mod go install "$3@$4"
  fi
  built "$1" "$2" "$4" || { echo "$1 is not $4" >&2; exit 1; }
  echo "tools: $1 $4 in $bin"
}
build helm-docs github.com/norwoodj/helm-docs github.com/norwoodj/helm-docs/cmd/helm-docs "$HELM_DOCS_VERSION"
build kube-score github.com/zegl/kube-score github.com/zegl/kube-score/cmd/kube-score "$KUBE_SCORE_VERSION"
build actionlint github.com/rhysd/actionlint github.com/rhysd/actionlint/cmd/actionlint "$ACTIONLINT_VERSION"
