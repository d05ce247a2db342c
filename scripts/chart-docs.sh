#!/usr/bin/env bash
# Generates charts/neuron/README.md from the chart's values.yaml comments with helm-docs
# (pinned in scripts/install-go-tools.sh); CHART_DIR points it at another chart directory.
# With --check, writes nothing and fails when the committed README differs from what
# helm-docs would generate.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
chart=${CHART_DIR:-$root/charts/neuron}
helm_docs=${HELM_DOCS:-}
if [ -z "$helm_docs" ]; then
  if [ -x "$root/.tools/bin/helm-docs" ]; then
    helm_docs=$root/.tools/bin/helm-docs
  else
    helm_docs=$(command -v helm-docs || true)
  fi
fi
[ -n "$helm_docs" ] || { echo "helm-docs not found: run scripts/install-go-tools.sh" >&2; exit 2; }

args=(--chart-search-root "$chart" --template-files README.md.gotmpl
      --sort-values-order file --skip-version-footer --log-level warning)
case "${1:-}" in
  --check)
    expected=$(mktemp)
    trap 'rm -f "$expected"' EXIT
    "$helm_docs" "${args[@]}" --dry-run > "$expected"
    if ! diff -u "$chart/README.md" "$expected"; then
      echo "charts/neuron/README.md is stale: run scripts/chart-docs.sh and commit the result" >&2
      exit 1
    fi
    echo "charts/neuron/README.md is current"
    ;;
  "")
    "$helm_docs" "${args[@]}"
    echo "wrote charts/neuron/README.md"
    ;;
  *)
    echo "usage: $0 [--check]" >&2
    exit 2
    ;;
esac
