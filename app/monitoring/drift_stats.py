"""Drift statistics: a window of predictions summarised as histograms and input sketches, and the
scores of a current window against a reference. numpy and scipy only (scikit-learn for the domain
classifier, already a dependency of training).

Which statistic for which signal, and why its default threshold:

| statistic | signal | what | default |
|---|---|---|---|
| `label_psi` | label mix | population stability index over labels | 0.25 |
| `label_js` | label mix | Jensen-Shannon distance (base 2, 0..1) | 0.2 |
| `confidence_ks` | confidence | Kolmogorov-Smirnov statistic over 20 bins | 0.25 |
| `confidence_wasserstein` | confidence | Wasserstein-1 distance (confidence units) | 0.1 |
| `length_ks` | text length | Kolmogorov-Smirnov statistic over half-octave bins | 0.25 |
| `length_wasserstein` | text length | Wasserstein-1 distance in octaves (log2 characters) | 1.0 |
| `oov_psi` | out-of-vocabulary share | PSI over 8 share buckets | 0.25 |
| `embedding_shift` | embedding | distance between the mean sketches / the reference's RMS spread | 0.3 |
| `embedding_auc` | embedding | ROC AUC of a domain classifier telling the windows apart | 0.75 |

Thresholds are on effect sizes, never on p-values (with many samples any difference is
"significant"); the chi-squared test of the label mix is reported beside them (`details`), not
judged. Each default sits well above what two samples of `STRATA_DRIFT_MIN_SAMPLES` (default 200)
rows from the same stream give: PSI's expectation under no change is about
(bins - 1) x (1/n + 1/m) = 0.04 for five labels, the KS statistic's 99.9% quantile 0.195, a mean
shift's sqrt(1/n + 1/m) = 0.1, a domain classifier's AUC 0.5 +- 0.03. Below the minimum the
result is "not enough data" and nothing is judged.

Histograms are computed by the database (app/monitoring/drift.py): KS is evaluated at the bin
edges (a lower bound of the exact statistic) and Wasserstein between bin centres (within half a
bin width of the exact value)."""

from dataclasses import dataclass, field

import numpy as np

from models.sketch import SKETCH_DIMENSIONS

DEFAULT_THRESHOLDS: dict[str, float] = {
    "label_psi": 0.25,
    "label_js": 0.2,
    "confidence_ks": 0.25,
    "confidence_wasserstein": 0.1,
    "length_ks": 0.25,
    "length_wasserstein": 1.0,
    "oov_psi": 0.25,
    "embedding_shift": 0.3,
    "embedding_auc": 0.75,
}
PREDICTION_STATISTICS = ("label_psi", "label_js", "confidence_ks", "confidence_wasserstein")
# Upper bounds a threshold may take (an AUC is at most 1; the others are open-ended, but a
# threshold beyond these could never fire).
THRESHOLD_MAXIMA: dict[str, float] = {"label_js": 1.0, "confidence_ks": 1.0, "length_ks": 1.0, "embedding_auc": 1.0}

CONFIDENCE_EDGES = [index / 20 for index in range(1, 20)]
# Half-octave edges from 2 to ~11,600 characters (inputs are at most 10,000).
LENGTH_EDGES = [2 ** (index / 2) for index in range(2, 28)]
OOV_EDGES = [0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5]
# Projections used for the embedding statistics, per window (a systematic sample beyond).
MAX_PROJECTIONS = 5000
DOMAIN_CLASSIFIER_FOLDS = 5
DOMAIN_CLASSIFIER_SEED = 0
# Counts added to every bin before PSI's logarithm, so that a bin empty on one side stays finite.
PSI_SMOOTHING = 0.5


def _centres(edges: list[float], low: float, high: float) -> np.ndarray:
    bounds = [low, *edges, high]
    return np.array([(a + b) / 2 for a, b in zip(bounds, bounds[1:], strict=False)])


CONFIDENCE_CENTRES = _centres(CONFIDENCE_EDGES, 0.0, 1.0)
LENGTH_CENTRES_OCTAVES = _centres([float(np.log2(edge)) for edge in LENGTH_EDGES], 0.0, 14.0)
OOV_BINS = len(OOV_EDGES) + 1


@dataclass
class Summary:
    """A window (or a training sample) as drift sees it. `rows`: served predictions; the input
    histograms count only rows with a sketch."""

    rows: int = 0
    labels: dict[str, int] = field(default_factory=dict)
    confidence: list[int] = field(default_factory=lambda: [0] * len(CONFIDENCE_CENTRES))
    length: list[int] = field(default_factory=lambda: [0] * len(LENGTH_CENTRES_OCTAVES))
    oov: list[int] = field(default_factory=lambda: [0] * OOV_BINS)
    projections: np.ndarray = field(default_factory=lambda: np.empty((0, SKETCH_DIMENSIONS)))

    @property
    def sketched(self) -> int:
        return sum(self.length)

    def histograms(self) -> dict:
        return {
            "rows": self.rows,
            "labels": self.labels,
            "confidence": self.confidence,
            "length": self.length,
            "oov": self.oov,
        }

    @classmethod
    def from_histograms(cls, stored: dict, projections: np.ndarray) -> "Summary":
        return cls(
            rows=stored["rows"],
            labels=dict(stored["labels"]),
            confidence=list(stored["confidence"]),
            length=list(stored["length"]),
            oov=list(stored["oov"]),
            projections=projections,
        )


def bin_index(value: float, edges: list[float]) -> int:
    """The bin of `value` as the database's CASE tree numbers it (a value on an edge goes up)."""
    return int(np.searchsorted(edges, value, side="right"))


def psi(reference: np.ndarray, current: np.ndarray) -> float:
    """Population stability index: sum of (c - r) ln(c / r) over bins, on smoothed shares."""
    reference = np.asarray(reference, dtype=float) + PSI_SMOOTHING
    current = np.asarray(current, dtype=float) + PSI_SMOOTHING
    r, c = reference / reference.sum(), current / current.sum()
    return float(np.sum((c - r) * np.log(c / r)))


def binned_ks(reference: np.ndarray, current: np.ndarray) -> float:
    r = np.cumsum(reference) / np.sum(reference)
    c = np.cumsum(current) / np.sum(current)
    return float(np.max(np.abs(r - c)))


def binned_wasserstein(centres: np.ndarray, reference: np.ndarray, current: np.ndarray) -> float:
    # scipy on first use, like sklearn below: the web and the worker import this module at start.
    from scipy.stats import wasserstein_distance

    return float(wasserstein_distance(centres, centres, u_weights=reference, v_weights=current))


def embedding_shift(reference: np.ndarray, current: np.ndarray) -> float:
    """|mean(current) - mean(reference)| over the reference's RMS distance to its own mean."""
    centre = reference.mean(axis=0)
    spread = float(np.sqrt(np.mean(np.sum((reference - centre) ** 2, axis=1))))
    return float(np.linalg.norm(current.mean(axis=0) - centre) / max(spread, 1e-9))


def domain_auc(reference: np.ndarray, current: np.ndarray) -> float:
    """ROC AUC of a logistic regression telling current rows from reference rows, from seeded
    stratified cross-validation (every row scored by a model that did not see it): 0.5 when the
    windows cannot be told apart, 1 when they always can."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    features = np.vstack([reference, current])
    target = np.concatenate([np.zeros(len(reference)), np.ones(len(current))])
    folds = StratifiedKFold(n_splits=DOMAIN_CLASSIFIER_FOLDS, shuffle=True, random_state=DOMAIN_CLASSIFIER_SEED)
    scores = cross_val_predict(LogisticRegression(max_iter=1000), features, target, cv=folds, method="predict_proba")
    return float(roc_auc_score(target, scores[:, 1]))


def _label_scores(reference: Summary, current: Summary, details: dict) -> dict[str, float]:
    from scipy.spatial.distance import jensenshannon
    from scipy.stats import chi2_contingency

    names = sorted(set(reference.labels) | set(current.labels))
    r = np.array([reference.labels.get(name, 0) for name in names], dtype=float)
    c = np.array([current.labels.get(name, 0) for name in names], dtype=float)
    details["reference_labels"] = {name: int(n) for name, n in zip(names, r, strict=True)}
    details["current_labels"] = {name: int(n) for name, n in zip(names, c, strict=True)}
    if len(names) > 1:
        chi2, p_value, _, _ = chi2_contingency(np.vstack([r, c]))
        details["label_chi2"] = round(float(chi2), 3)
        details["label_chi2_p_value"] = float(p_value)
    return {"label_psi": psi(r, c), "label_js": float(jensenshannon(r, c, base=2))}


def scores(reference: Summary, current: Summary, min_samples: int) -> tuple[dict[str, float], dict]:
    """Every statistic both windows have enough data for (`min_samples` rows each: served
    predictions for the prediction statistics, sketched inputs for the input ones), rounded to 4
    places, and the informative details. Empty scores: not enough data for any."""
    found: dict[str, float] = {}
    details: dict = {}
    if min(reference.rows, current.rows) >= min_samples and (reference.labels or current.labels):
        found |= _label_scores(reference, current, details)
        found["confidence_ks"] = binned_ks(reference.confidence, current.confidence)
        found["confidence_wasserstein"] = binned_wasserstein(
            CONFIDENCE_CENTRES, reference.confidence, current.confidence
        )
    if min(reference.sketched, current.sketched) >= min_samples:
        found["length_ks"] = binned_ks(reference.length, current.length)
        found["length_wasserstein"] = binned_wasserstein(LENGTH_CENTRES_OCTAVES, reference.length, current.length)
        found["oov_psi"] = psi(reference.oov, current.oov)
    if min(len(reference.projections), len(current.projections)) >= min_samples:
        found["embedding_shift"] = embedding_shift(reference.projections, current.projections)
        found["embedding_auc"] = domain_auc(reference.projections, current.projections)
    details["reference_sketched"], details["current_sketched"] = reference.sketched, current.sketched
    return {name: round(value, 4) for name, value in found.items()}, details


def crossed(found: dict[str, float], thresholds: dict[str, float]) -> list[str]:
    """The statistics above their threshold (strictly: a threshold of 1 turns a statistic that
    cannot exceed 1 off)."""
    return [name for name, value in found.items() if value > thresholds[name]]
