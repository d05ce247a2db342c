#!/usr/bin/env bash
# kube-score (one of the peer checkers scripts/peer-checks.py runs) from the Go module proxy,
# into .tools/bin; checkov comes from PyPI through tox. Needs Go 1.22 or newer on the PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
KUBE_SCORE_VERSION=v1.20.0
bin=.tools/bin/kube-score
if [ -x "$bin" ] && go version -m "$bin" | grep -q "github.com/zegl/kube-score[[:space:]]*${KUBE_SCORE_VERSION}"; then
  exit 0
fi
mkdir -p .tools/bin
GOBIN="$PWD/.tools/bin" GOFLAGS=-mod=mod go install "github.com/zegl/kube-score/cmd/kube-score@${KUBE_SCORE_VERSION}"
go version -m "$bin" | head -2
