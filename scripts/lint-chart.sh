#!/usr/bin/env bash
# The chart checks chart-testing's `ct lint` makes (ct itself is not served here): yamllint over
# the chart's plain YAML (.yamllint.yaml), then `helm lint --strict` with the chart's defaults
# and with each values file under charts/neuron/ci/ and charts/neuron/examples/. Offline, so
# the cluster version the harness runs is given (the scheduler's default tag derives from it).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
. ./versions.env
kube_version=$KUBERNETES_VERSION
yamllint -c .yamllint.yaml --strict charts/neuron/Chart.yaml charts/neuron/values.yaml \
  charts/neuron/ci charts/neuron/examples kind-config.yaml deploy
helm lint --strict --kube-version "$kube_version" charts/neuron
for values in charts/neuron/ci/*.yaml charts/neuron/examples/*.yaml; do
  helm lint --strict --kube-version "$kube_version" charts/neuron -f "$values" >/dev/null ||
    { helm lint --strict --kube-version "$kube_version" charts/neuron -f "$values"; exit 1; }
  echo "helm lint --strict: $values"
done
