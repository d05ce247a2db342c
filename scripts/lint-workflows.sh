#!/usr/bin/env bash
# yamllint (.yamllint.yaml), then actionlint over .github/workflows (built by
# scripts/install-go-tools.sh, pinned in versions.env), which runs shellcheck over each `run:`
# block. shellcheck comes from Debian's packages (installed here when missing, as root; GitHub's
# runners have it): without it actionlint would leave the blocks unchecked, so this refuses.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
actionlint=$root/.tools/bin/actionlint
[ -x "$actionlint" ] || actionlint=$(command -v actionlint || true)
[ -n "$actionlint" ] || { echo "actionlint not found: run scripts/install-go-tools.sh" >&2; exit 2; }
yamllint -c .yamllint.yaml --strict .github/workflows
if ! command -v shellcheck >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q shellcheck >/dev/null 2>&1 ||
    { apt-get update -q >/dev/null && apt-get install -y -q shellcheck >/dev/null; }
fi
command -v shellcheck >/dev/null 2>&1 || {
  echo "lint-workflows: shellcheck is not on PATH, so actionlint would not check the run: blocks; install it (apt-get install shellcheck)" >&2
  exit 2
}
echo "actionlint: with $(shellcheck --version | sed -n 's/^version: /shellcheck /p') over run: blocks"
"$actionlint" .github/workflows/*.yml
echo "actionlint: .github/workflows clean"
