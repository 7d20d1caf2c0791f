"""Train a text classifier from labelled rows and export it as one ONNX model.

``train`` splits the rows (stratified, seeded), scores every candidate by
cross-validated macro-F1 on the training part only, refits each on the whole
training part, reports all of them on the holdout, and exports the one with the
best cross-validated score. The export is checked against the in-memory model
on the holdout: every label must agree and every probability be within
``PARITY_TOLERANCE``, or the run fails with the report (``ParityError``).

Candidates:

* ``tfidf-lr``: TF-IDF of word 1-2-grams and character 3-5-grams, logistic
  regression. Tokens are ASCII letters and digits, case kept. That is the
  configuration skl2onnx converts exactly: a pattern made only of ASCII classes
  means the same to Python's ``re`` and onnxruntime's RE2, whereas the default
  ``\\b\\w\\w+\\b`` is rewritten by the converter into a different one; and
  lowercasing would go through onnxruntime's StringNormalizer, which needs an
  installed locale and folds some non-ASCII letters (Kelvin sign, dotted I)
  differently from ``str.lower``. sklearn's own character analyzers cannot be
  used: ``char`` collapses whitespace runs and ``char_wb`` does not convert, so
  character n-grams run over the stream of letters and digits (single-character
  tokens), which both engines produce alike. ``sublinear_tf`` stays off:
  skl2onnx 1.20 turns it into log(1 + tf) where scikit-learn computes 1 + log(tf).
* ``embedding-lr``: the built-in sentence embedder, logistic regression on its
  vectors (served as an ONNX head beside the embedder: see models.trained).

``baseline`` is what a user would otherwise pick: scikit-learn's default
TfidfVectorizer + LogisticRegression on the same split. It is reported, never
exported (its default token pattern does not convert exactly).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import onnx
from sklearn.base import clone
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support
from sklearn.model_selection import StratifiedKFold, cross_val_score, train_test_split
from sklearn.pipeline import FeatureUnion, Pipeline

from models.embedder import Embedder
from models.trained import INPUT_EMBEDDING, INPUT_TEXT, METADATA_PREFIX, TrainedClassifier

__all__ = [
    "CANDIDATES",
    "PARITY_TOLERANCE",
    "ParityError",
    "TrainingError",
    "TrainingResult",
    "baseline_pipeline",
    "check_parity",
    "export_model",
    "train",
]

PARITY_TOLERANCE = 1e-4
CANDIDATES = ("tfidf-lr", "embedding-lr")
MAX_FOLDS = 5
ONNX_OPSETS = {"": 17, "ai.onnx.ml": 3}

Progress = Callable[[float, str], None]


class TrainingError(ValueError):
    """The rows cannot be trained on; the message says why (a user error, not a bug)."""


class ParityError(RuntimeError):
    """The exported ONNX model does not reproduce the in-memory one on the holdout."""

    def __init__(self, report: dict) -> None:
        self.report = report
        super().__init__(
            f"the ONNX export disagrees with the trained model on the holdout: "
            f"{report['label_disagreements']} of {report['rows']} labels differ, "
            f"largest probability difference {report['max_abs_probability_difference']:.2e} "
            f"(tolerance {PARITY_TOLERANCE:g}); first rows: {report['examples']}"
        )


@dataclass
class TrainingResult:
    labels: list[str]
    chosen: str
    input_kind: str
    metrics: dict  # the chosen candidate's holdout report
    candidates: list[dict]  # every candidate: cross-validated and holdout scores, fit time
    baseline: dict  # sklearn defaults TF-IDF + LR on the same split, for reference
    parity: dict
    split: dict
    seconds: float
    embedder_sha256: str | None
    onnx_model: bytes = field(repr=False)
    holdout_rows: list[int] = field(repr=False)  # indices into the rows trained on

    def summary(self) -> dict:
        """Everything but the model bytes and the holdout's row indices, JSON-ready."""
        out = asdict(self)
        out.pop("onnx_model")
        out.pop("holdout_rows")
        return out


def _tfidf_lr(seed: int) -> Pipeline:
    word = TfidfVectorizer(
        lowercase=False, token_pattern=r"[a-zA-Z0-9]{2,}", ngram_range=(1, 2), min_df=2,
        max_features=100_000, dtype=np.float32,
    )  # fmt: skip
    char = TfidfVectorizer(
        lowercase=False, token_pattern=r"[a-zA-Z0-9]", ngram_range=(3, 5), min_df=2,
        max_features=100_000, dtype=np.float32,
    )  # fmt: skip
    return Pipeline(
        [
            ("features", FeatureUnion([("word", word), ("char", char)])),
            ("lr", LogisticRegression(C=10.0, max_iter=2000, random_state=seed)),
        ]
    )


def _embedding_lr(seed: int) -> LogisticRegression:
    return LogisticRegression(C=10.0, max_iter=2000, random_state=seed)


def baseline_pipeline() -> Pipeline:
    return Pipeline([("tfidf", TfidfVectorizer()), ("lr", LogisticRegression(max_iter=1000))])


def holdout_report(truth: np.ndarray, predicted: np.ndarray, labels: Sequence[str]) -> dict:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix (rows: truth)."""
    index = list(range(len(labels)))
    precision, recall, f1, support = precision_recall_fscore_support(truth, predicted, labels=index, zero_division=0)
    return {
        "accuracy": float(accuracy_score(truth, predicted)),
        "macro_f1": float(f1_score(truth, predicted, labels=index, average="macro", zero_division=0)),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(labels)
        },
        "confusion_matrix": confusion_matrix(truth, predicted, labels=index).tolist(),
    }


def _check_inputs(texts: Sequence[str], labels: Sequence[str], holdout_fraction: float) -> None:
    if len(texts) != len(labels):
        raise TrainingError(f"{len(texts)} texts but {len(labels)} labels")
    for i, (text, label) in enumerate(zip(texts, labels, strict=True)):
        if not isinstance(text, str):
            raise TrainingError(f"row {i + 1}: the text is {type(text).__name__}, not a string")
        if not isinstance(label, str) or not label.strip():
            raise TrainingError(f"row {i + 1}: the label is empty")
    if not 0.05 <= holdout_fraction <= 0.5:
        raise TrainingError(f"the holdout fraction must be between 0.05 and 0.5, got {holdout_fraction}")
    names, counts = np.unique(np.asarray(labels, dtype=object), return_counts=True)
    if len(names) < 2:
        raise TrainingError(f"training needs at least two labels, the label column has {len(names)}")
    rare = [f"{n!r} ({c})" for n, c in zip(names, counts, strict=True) if c * (1 - holdout_fraction) < 2.5]
    if rare:
        raise TrainingError(
            "too few rows to split and cross-validate these labels (each needs at least 3 "
            f"in the training part): {', '.join(rare)}"
        )
    if len(texts) * holdout_fraction < len(names):
        raise TrainingError(
            f"a holdout of {holdout_fraction:g} x {len(texts)} rows cannot hold one row of each of {len(names)} labels"
        )


def _onnx_text_model(pipeline: Pipeline) -> onnx.ModelProto:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import StringTensorType

    # No converter options: with any, skl2onnx walks every attribute of the pipeline, each
    # vocabulary entry included, which took minutes. The ZipMap it then adds is cut off below.
    proto = to_onnx(pipeline, initial_types=[("text", StringTensorType([None, 1]))], target_opset=ONNX_OPSETS)
    return _without_zipmap(proto)


def _without_zipmap(proto: onnx.ModelProto) -> onnx.ModelProto:
    """The probabilities as a plain [N, labels] tensor named "probabilities", as the head gives them."""
    graph = proto.graph
    (zipmap,) = [node for node in graph.node if node.op_type == "ZipMap"]
    graph.node.remove(zipmap)
    if zipmap.input[0] != "probabilities":
        graph.node.append(onnx.helper.make_node("Identity", [zipmap.input[0]], ["probabilities"]))
    (old,) = [output for output in graph.output if output.name == zipmap.output[0]]
    graph.output.remove(old)
    graph.output.append(onnx.helper.make_tensor_value_info("probabilities", onnx.TensorProto.FLOAT, [None, None]))
    return proto


def _onnx_head(model: LogisticRegression, dimensions: int) -> onnx.ModelProto:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    return to_onnx(
        model,
        initial_types=[("embedding", FloatTensorType([None, dimensions]))],
        options={LogisticRegression: {"zipmap": False}},
        target_opset=ONNX_OPSETS,
    )


def export_model(model, labels: Sequence[str], candidate: str, *, embedder: Embedder | None = None) -> bytes:
    """The ONNX bytes of a fitted text pipeline, or of a head over ``embedder``'s vectors, with their metadata."""
    if embedder is None:
        proto = _onnx_text_model(model)
        metadata = {"input": INPUT_TEXT}
    else:
        proto = _onnx_head(model, embedder.dimensions)
        metadata = {"input": INPUT_EMBEDDING, "embedder_sha256": embedder.manifest.sha256}
    metadata |= {"labels": json.dumps(list(labels)), "candidate": candidate}
    onnx.helper.set_model_props(proto, {METADATA_PREFIX + k: v for k, v in metadata.items()})
    return proto.SerializeToString()


def check_parity(model_bytes: bytes, expected: np.ndarray, inputs, embedder_sha256: str | None = None) -> dict:
    """Run the exported model on ``inputs`` (texts, or vectors for a head) and compare with ``expected``
    (the in-memory probabilities). Returns the report, or raises ParityError with it."""
    served = TrainedClassifier.from_bytes(model_bytes)
    if served.input_kind == INPUT_EMBEDDING:
        actual = served.probabilities_from_vectors(inputs, embedder_sha256)
    else:
        actual = served.probabilities_from_texts(inputs)
    parity = _parity(expected, actual)
    if not parity["ok"]:
        raise ParityError(parity)
    return parity


def _parity(expected: np.ndarray, actual: np.ndarray) -> dict:
    disagree = np.flatnonzero(expected.argmax(axis=1) != actual.argmax(axis=1))
    difference = float(np.abs(expected - actual).max()) if expected.size else 0.0
    return {
        "rows": int(len(expected)),
        "label_disagreements": int(len(disagree)),
        "max_abs_probability_difference": difference,
        "tolerance": PARITY_TOLERANCE,
        "examples": [int(i) for i in disagree[:10]],
        "ok": bool(len(disagree) == 0 and difference <= PARITY_TOLERANCE),
    }


def split_rows(labels: Sequence[str], holdout_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The sorted row indices of the training part and the holdout: seeded and stratified, so that
    drift detection (app/monitoring/drift_reference.py) finds a trained version's holdout again."""
    names = sorted(set(labels))
    y = np.array([names.index(label) for label in labels])
    rows = np.arange(len(labels))
    train_rows, holdout_rows = train_test_split(rows, test_size=holdout_fraction, random_state=seed, stratify=y)
    return np.sort(train_rows), np.sort(holdout_rows)


def train(
    texts: Sequence[str],
    labels: Sequence[str],
    *,
    holdout_fraction: float = 0.2,
    seed: int = 0,
    embedder: Embedder | None,
    on_progress: Progress | None = None,
    folds: int = MAX_FOLDS,
) -> TrainingResult:
    """Fit the candidates, choose by cross-validated macro-F1, export the winner, check ONNX parity.

    ``embedder`` None leaves out the embedding candidate (recorded as skipped).
    Raises TrainingError for rows that cannot be trained on and ParityError if
    the export disagrees with the in-memory model.
    """
    started = time.perf_counter()
    report = on_progress or (lambda fraction, message: None)
    texts, labels = list(texts), list(labels)
    _check_inputs(texts, labels, holdout_fraction)

    names = sorted(set(labels))
    y = np.array([names.index(label) for label in labels])
    train_rows, holdout_rows = split_rows(labels, holdout_fraction, seed)
    smallest = int(np.bincount(y[train_rows]).min())
    splitter = StratifiedKFold(n_splits=max(2, min(folds, smallest)), shuffle=True, random_state=seed)
    train_texts = [texts[i] for i in train_rows]
    holdout_texts = [texts[i] for i in holdout_rows]
    y_train, y_holdout = y[train_rows], y[holdout_rows]
    split = {
        "seed": seed,
        "holdout_fraction": holdout_fraction,
        "train_rows": len(train_rows),
        "holdout_rows": len(holdout_rows),
        "folds": splitter.get_n_splits(),
        "stratified": True,
    }
    report(0.02, f"split {len(train_rows)} training / {len(holdout_rows)} holdout rows")

    candidates: list[dict] = []
    fitted: dict[str, object] = {}

    def score(name: str, model, x_train, x_holdout, low: float, high: float) -> None:
        report(low, f"{name}: cross-validating on {split['folds']} folds")
        t0 = time.perf_counter()
        cv = cross_val_score(clone(model), x_train, y_train, cv=splitter, scoring="f1_macro")
        cv_seconds = time.perf_counter() - t0
        report(low + (high - low) * 0.8, f"{name}: fitting on the training part")
        t0 = time.perf_counter()
        model.fit(x_train, y_train)
        fit_seconds = time.perf_counter() - t0
        predicted = model.predict(x_holdout)
        fitted[name] = model
        candidates.append(
            {
                "name": name,
                "cv_macro_f1": float(cv.mean()),
                "cv_macro_f1_std": float(cv.std()),
                "cv_seconds": cv_seconds,
                "fit_seconds": fit_seconds,
                "holdout": holdout_report(y_holdout, predicted, names),
            }
        )

    score("tfidf-lr", _tfidf_lr(seed), train_texts, holdout_texts, 0.05, 0.40)

    vectors = None
    if embedder is None:
        candidates.append({"name": "embedding-lr", "skipped": "no embedder available"})
    else:
        t0 = time.perf_counter()
        vectors = np.empty((len(texts), embedder.dimensions), dtype=np.float32)
        chunk = 256
        for start in range(0, len(texts), chunk):
            report(0.40 + 0.35 * start / len(texts), f"embedding rows {start + 1}-{min(start + chunk, len(texts))}")
            vectors[start : start + chunk] = embedder.embed(texts[start : start + chunk])
        embed_seconds = time.perf_counter() - t0
        score("embedding-lr", _embedding_lr(seed), vectors[train_rows], vectors[holdout_rows], 0.75, 0.85)
        candidates[-1]["embed_seconds"] = embed_seconds

    report(0.86, "baseline: scikit-learn's default TF-IDF + logistic regression")
    t0 = time.perf_counter()
    baseline_model = baseline_pipeline().fit(train_texts, y_train)
    baseline = {
        "name": "baseline sklearn TfidfVectorizer() + LogisticRegression()",
        "fit_seconds": time.perf_counter() - t0,
        "holdout": holdout_report(y_holdout, baseline_model.predict(holdout_texts), names),
    }

    scored = [c for c in candidates if "cv_macro_f1" in c]
    chosen = max(scored, key=lambda c: c["cv_macro_f1"])["name"]
    winner = fitted[chosen]
    report(0.9, f"exporting {chosen} to ONNX")
    if chosen == "embedding-lr":
        input_kind, embedder_sha256 = INPUT_EMBEDDING, embedder.manifest.sha256
        holdout_inputs = vectors[holdout_rows]
        model_bytes = export_model(winner, names, chosen, embedder=embedder)
    else:
        input_kind, embedder_sha256 = INPUT_TEXT, None
        holdout_inputs = holdout_texts
        model_bytes = export_model(winner, names, chosen)
    report(0.95, "checking the ONNX model against the trained one on the holdout")
    parity = check_parity(model_bytes, winner.predict_proba(holdout_inputs), holdout_inputs, embedder_sha256)

    result = TrainingResult(
        labels=names,
        chosen=chosen,
        input_kind=input_kind,
        metrics=next(c["holdout"] for c in candidates if c["name"] == chosen),
        candidates=candidates,
        baseline=baseline,
        parity=parity,
        split=split,
        seconds=time.perf_counter() - started,
        embedder_sha256=embedder_sha256,
        onnx_model=model_bytes,
        holdout_rows=[int(i) for i in holdout_rows],
    )
    report(1.0, f"chose {chosen}: holdout macro-F1 {result.metrics['macro_f1']:.3f}")
    return result
