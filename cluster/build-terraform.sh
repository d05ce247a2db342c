#!/usr/bin/env bash
# Prepares what tests/e2e/test_95_terraform.py runs, in cluster/.cache/terraform:
#   bin/terraform   the machine's Terraform (1.7 or newer, for `removed` blocks), or else
#                   OpenTofu built from the Go module proxy (HashiCorp's module cannot be built
#                   from the proxy: its replace directives point at nested modules the module
#                   archive leaves out)
#   mirror/         a filesystem mirror holding the gavinbunney/kubectl provider, built from the
#                   Go module proxy; the test's CLI config installs providers from it and nowhere
#                   else.
# Idempotent: a second run only checks versions.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-$here/.cache/terraform}
. "$here/../versions.env"
TOFU_VERSION=$OPENTOFU_VERSION
mkdir -p "$out/bin" "$out/build"
export CGO_ENABLED=0

# Terraform 1.7 added `removed` blocks, which docs/migration.md relies on.
new_enough() {  # binary
  "$1" version -json 2>/dev/null | python3 -c '
import json, sys
v = json.load(sys.stdin)["terraform_version"].split(".")
sys.exit(0 if (int(v[0]), int(v[1])) >= (1, 7) else 1)'
}
machine=$(PATH=${PATH//$out\/bin:/} command -v terraform || true)
if [ -n "$machine" ] && [ "$machine" != "$out/bin/terraform" ] && new_enough "$machine"; then
  ln -sf "$machine" "$out/bin/terraform"
  echo "terraform: using $machine"
else
  if ! "$out/build/tofu" version 2>/dev/null | grep "OpenTofu v${TOFU_VERSION#v}" >/dev/null; then
    start=$SECONDS
    dir=$(go mod download -json "github.com/opentofu/opentofu@$TOFU_VERSION" |
      python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
    # Built inside its own module, so that its go.mod's replace directive applies.
    (cd "$dir" && go build -trimpath -ldflags "-s -w" -o "$out/build/tofu" ./cmd/tofu)
    echo "opentofu: built $TOFU_VERSION in $((SECONDS - start))s"
  fi
  ln -sf "$out/build/tofu" "$out/bin/terraform"
  echo "terraform: using OpenTofu $TOFU_VERSION"
fi
new_enough "$out/bin/terraform" || { echo "terraform: $out/bin/terraform is older than 1.7" >&2; exit 1; }

provider=$out/build/terraform-provider-kubectl
have_provider() {
  [ -x "$provider" ] && go version -m "$provider" 2>/dev/null |
    grep -E >/dev/null "^[[:space:]]+mod[[:space:]]+github.com/gavinbunney/terraform-provider-kubectl[[:space:]]+$KUBECTL_PROVIDER_VERSION([[:space:]]|$)"
}
if ! have_provider; then
  start=$SECONDS
  GOBIN=$out/build go install -trimpath -ldflags "-s -w" \
    "github.com/gavinbunney/terraform-provider-kubectl@$KUBECTL_PROVIDER_VERSION"
  echo "kubectl provider: built $KUBECTL_PROVIDER_VERSION in $((SECONDS - start))s"
fi
# The unpacked mirror layout, under both registries' host names (Terraform's and OpenTofu's
# default for a source address without a host).
version=${KUBECTL_PROVIDER_VERSION#v}
for host in registry.terraform.io registry.opentofu.org; do
  dest=$out/mirror/$host/gavinbunney/kubectl/$version/linux_amd64
  mkdir -p "$dest"
  cmp -s "$provider" "$dest/terraform-provider-kubectl_v$version" ||
    install -m 755 "$provider" "$dest/terraform-provider-kubectl_v$version"
done
echo "terraform: ready in $out (kubectl provider $KUBECTL_PROVIDER_VERSION in $out/mirror)"
