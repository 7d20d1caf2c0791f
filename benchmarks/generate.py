"""Chat model speed: the shipped fp32 ONNX SmolLM2 vs an int8 (dynamic, per-channel) copy.

    python benchmarks/generate.py [--rounds 3] [--tokens 96]

Quantises the built model into a temporary folder with onnxruntime.quantization
(needs ``onnx``, from the build extra), then decodes the same prompts greedily
with both through models.generator, alternating rounds, and reports the median
decode speed (tokens/s after the first), the time to first token, the size on
disk, and how often int8's greedy tokens equal fp32's (a quality proxy: fp32
itself equals PyTorch token for token, see the manifest). Prints, asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from models.generator import DecodeOptions, Generator  # noqa: E402
from models.manifest import GENERATOR_NAME, read_manifest, write_manifest  # noqa: E402

PROMPTS = (
    "Explain in a few sentences why the sky is blue.",
    "Write a short paragraph about the history of bread.",
    "Passages:\n[1] The Lyon warehouse opens at 7:30 on weekdays and closes at 18:00.\n\n"
    "Question: When does the Lyon warehouse open and close?",
)


def quantise(model_dir: Path, out_dir: Path) -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    manifest = read_manifest(model_dir)
    out_dir.mkdir()
    for name in (manifest.tokenizer_file, manifest.reference_file):
        shutil.copy(model_dir / name, out_dir / name)
    target = out_dir / "model_int8.onnx"
    quantize_dynamic(
        model_dir / manifest.file,
        target,
        weight_type=QuantType.QInt8,
        per_channel=True,
        extra_options={"MatMulConstBOnly": True},
    )
    write_manifest(out_dir, manifest.model_copy(update={"file": target.name, "size_bytes": target.stat().st_size}))
    return out_dir


def run(generator: Generator, prompt: str, tokens: int) -> tuple[float, float, list[int]]:
    """(time to first token in s, decode tokens/s, token ids)"""
    ids = generator.encode_chat([("user", prompt)])
    options = DecodeOptions(max_new_tokens=tokens, no_repeat_ngram=0)
    started = time.perf_counter()
    produced, first = [], None
    for token in generator.token_ids(ids, options):
        produced.append(token)
        if first is None:
            first = time.perf_counter()
    finished = time.perf_counter()
    speed = (len(produced) - 1) / (finished - first) if len(produced) > 1 else float("nan")
    return first - started, speed, produced


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", default=os.environ.get("STRATA_MODELS_DIR", str(REPO / ".cache" / "models")))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=96)
    args = parser.parse_args()

    model_dir = Path(args.models_dir) / GENERATOR_NAME
    with tempfile.TemporaryDirectory(prefix="strata-bench-int8-") as tmp:
        started = time.perf_counter()
        int8_dir = quantise(model_dir, Path(tmp) / GENERATOR_NAME)
        print(f"int8 quantisation: {time.perf_counter() - started:.1f} s")
        engines = {"fp32": Generator.load(model_dir), "int8": Generator.load(int8_dir)}
        for name, engine in engines.items():
            size = (engine.model_dir / engine.manifest.file).stat().st_size
            print(f"{name}: {size / 1e6:.0f} MB, loads in {engine.load_seconds:.2f} s")
        for engine in engines.values():
            run(engine, PROMPTS[0], 8)  # warm-up
        ttft = {name: [] for name in engines}
        speed = {name: [] for name in engines}
        tokens = {name: {} for name in engines}
        for _ in range(args.rounds):
            for name, engine in engines.items():
                for prompt in PROMPTS:
                    first, rate, ids = run(engine, prompt, args.tokens)
                    ttft[name].append(first)
                    speed[name].append(rate)
                    tokens[name][prompt] = ids
        print(f"load average: {os.getloadavg()[0]:.2f} (2 cores shared)")
        for name in engines:
            print(
                f"{name}: decode {statistics.median(speed[name]):.1f} tok/s, "
                f"time to first token {statistics.median(ttft[name]) * 1000:.0f} ms (median of {len(speed[name])})"
            )
        print(
            f"int8/fp32 decode speed ratio: {statistics.median(speed['int8']) / statistics.median(speed['fp32']):.2f}"
        )
        for prompt in PROMPTS:
            a, b = tokens["fp32"][prompt], tokens["int8"][prompt]
            same = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
            print(f"greedy tokens equal for the first {same}/{len(a)}: {prompt[:40]!r}")
            print(f"   fp32: {engines['fp32'].decode(a)[:160]!r}")
            print(f"   int8: {engines['int8'].decode(b)[:160]!r}")


if __name__ == "__main__":
    main()
