#!/usr/bin/env bash
# checkov, one of the peer checkers scripts/peer-checks.py runs, in a virtualenv of its own under
# .tools/checkov, linked into .tools/bin. It pins its dependencies tightly (packaging<24 in
# 3.3.x, which pytest 9 refuses), so it cannot share tox's lint environment. Idempotent: the
# version is read back from the installed tool.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/versions.env"
venv=$root/.tools/checkov
bin=$root/.tools/bin
mkdir -p "$bin"
installed() { [ -x "$venv/bin/checkov" ] && [ "$("$venv/bin/checkov" --version 2>/dev/null)" = "$CHECKOV_VERSION" ]; }
if ! installed; then
  python3 -m venv --clear "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "checkov==$CHECKOV_VERSION"
fi
installed || { echo "checkov is not $CHECKOV_VERSION" >&2; exit 1; }
ln -sf "$venv/bin/checkov" "$bin/checkov"
echo "tools: checkov $CHECKOV_VERSION in $bin"
