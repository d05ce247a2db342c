#!/usr/bin/env bash
# The version a release tag publishes, or a refusal: `release-version.sh vX.Y.Z` prints X.Y.Z
# when charts/neuron/Chart.yaml's version and appVersion and plugin-src/pyproject.toml's version
# are all X.Y.Z. The chart is pushed as version X.Y.Z and the image as neuron-k8s:X.Y.Z; the
# chart's default neuron-k8s image tag is its appVersion, and the wheel in the image carries the
# package's version, so a release where any of them differs would install an image that was
# never pushed. Used by .github/workflows/release.yml and scripts/release-build.sh.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tag=${1:-}
if [ -z "$tag" ]; then
  echo "usage: $0 vX.Y.Z" >&2
  exit 2
fi
if ! [[ $tag =~ ^v[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.+-]+)?$ ]]; then
  echo "release: tag '$tag' is not vMAJOR.MINOR.PATCH" >&2
  exit 1
fi
want=${tag#v}
chart_yaml=$root/charts/neuron/Chart.yaml
field() { sed -n "s/^$1:[[:space:]]*\"\{0,1\}\([^\"[:space:]]*\)\"\{0,1\}[[:space:]]*$/\1/p" "$2"; }
chart=$(field version "$chart_yaml")
app=$(field appVersion "$chart_yaml")
package=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/plugin-src/pyproject.toml")
bad=()
[ "$chart" = "$want" ] || bad+=("charts/neuron/Chart.yaml version is '$chart'")
[ "$app" = "$want" ] || bad+=("charts/neuron/Chart.yaml appVersion is '$app'")
[ "$package" = "$want" ] || bad+=("plugin-src/pyproject.toml version is '$package'")
if [ ${#bad[@]} -gt 0 ]; then
  echo "release: tag $tag publishes $want, but:" >&2
  printf '  - %s\n' "${bad[@]}" >&2
  echo "release: set all three to $want (the chart's default image tag is its appVersion), commit, and tag that commit" >&2
  exit 1
fi
echo "$want"
