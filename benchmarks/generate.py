"""Chat model speed: Strata's 4-bit ONNX SmolLM2 against llama.cpp on the same GGUF, in one run.

    python benchmarks/generate.py [--rounds 3] [--tokens 96]

llama.cpp is llama-cpp-python, installed on first use into its own cached
environment, ${STRATA_CACHE_DIR:-~/.cache/strata}/bench/llama-cpp-python-<version>-<SIMD levels>
(PyPI has only its source: building it needs cmake and a C++ compiler, e.g.
`apt-get install cmake g++`). It never enters Strata's own environment or `make test`.

Each engine runs in a process of its own (so each one's resident memory is its
own), with the same thread count, on the same prompt token ids (Strata's
tokenizer), greedy. Rounds alternate the engines and flip their order, because
the machine is shared and absolute numbers drift: compare the ratios. Prints
decode speed (tokens/s after the first, and the CPU time per token), time to the
first token on the short benchmark prompts and on a ~650-token grounded prompt,
resident memory (the process; what the engine's library takes once per process,
whatever the model; what loading and running the model added once an answer is
done, and its peaks while loading and while answering, with the key/value cache
and the prompt pass), and, per prompt, decode speed and how many greedy tokens each agrees on,
with each other and with the fp32 PyTorch reference the build recorded. Asserts
nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LLAMA_CPP = "llama-cpp-python==0.3.36"
# llama.cpp's x86 SIMD levels, each built in only where this CPU has it (/proc/cpuinfo's flags):
# a portable build with AVX-512 dies of an illegal instruction on an AVX2-only CPU, and
# -march=native compiles in the AMX matmul on Sapphire Rapids, which segfaults on this Q4_1
# model's first batch there. Without the multimodal library (mtmd: a third of the compile),
# which text decoding never loads.
LLAMA_SIMD_OPTIONS = {
    "GGML_AVX": ("avx",),
    "GGML_AVX2": ("avx2",),
    "GGML_FMA": ("fma",),
    "GGML_F16C": ("f16c",),
    "GGML_BMI2": ("bmi2",),
    "GGML_AVX_VNNI": ("avx_vnni",),
    "GGML_AVX512": ("avx512f", "avx512cd", "avx512vl", "avx512dq", "avx512bw"),
    "GGML_AVX512_VBMI": ("avx512vbmi",),
    "GGML_AVX512_VNNI": ("avx512_vnni",),
    "GGML_AVX512_BF16": ("avx512_bf16",),
}
SHORT, LONG = "short", "650"


def _cpu() -> tuple[str, set[str]]:
    """This CPU's model name and feature flags (Linux: /proc/cpuinfo)."""
    fields: dict[str, str] = {}
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    return fields.get("model name", "unknown CPU"), set(fields.get("flags", "").split())


def cpu_description() -> str:
    """The CPU and its widest SIMD level: the kernels of both engines differ by it, and so do the ratios."""
    name, flags = _cpu()
    widest = next((level for level in ("avx512f", "avx2", "avx") if level in flags), "no AVX")
    return f"{name}, {widest}" + (", AMX" if "amx_int8" in flags else "")


def _llama_simd_options() -> list[str]:
    """The GGML_* SIMD options this CPU supports, in LLAMA_SIMD_OPTIONS' order."""
    _, flags = _cpu()
    return [option for option, needs in LLAMA_SIMD_OPTIONS.items() if flags.issuperset(needs)]


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def _peak_rss_mb(*, reset: bool = False) -> float:
    """The process's highest resident memory since the last reset (VmHWM): the cache and the prompt
    pass included. ``reset`` starts a new peak from now on (Linux: clear_refs 5)."""
    with open("/proc/self/status") as fh:
        peak = next(int(line.split()[1]) * 1024 / 1e6 for line in fh if line.startswith("VmHWM:"))
    if reset:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    return peak


# ---------------------------------------------------------------- workers


def _serve(start_runtime, load, generate) -> None:
    """Worker loop: one JSON request per stdin line, one JSON answer per stdout line.

    ``start_runtime`` does what the engine's library does once per process, whatever the model
    (onnxruntime's environment and kernel registry, ggml's backends): in Strata's web process the
    embedder has always done it. Its memory is reported apart from the model's."""
    bare = _rss_mb()
    start_runtime()
    before = _rss_mb()
    engine = load()
    # Loading parses the whole graph file before it packs the weights: a peak of its own, kept apart.
    loaded = {
        "runtime_mb": before - bare,
        "loaded_mb": _rss_mb() - before,
        "load_peak_mb": _peak_rss_mb(reset=True) - before,
    }
    print(json.dumps(loaded), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        started = time.perf_counter()
        tokens, arrivals, cpu = [], [], []
        for token in generate(engine, request["ids"], request["tokens"], request["end"]):
            tokens.append(token)
            arrivals.append(time.perf_counter())
            cpu.append(time.process_time())
        steps = len(arrivals) - 1
        decode = steps / (arrivals[-1] - arrivals[0]) if steps else None
        # CPU seconds this process spent per decoded token, all its threads together: on a busy
        # machine it moves far less than the wall clock (but counts a spin-waiting thread's time).
        cpu_ms = (cpu[-1] - cpu[0]) * 1000 / steps if steps else None
        answer = {"ttft": arrivals[0] - started, "decode": decode, "cpu_ms": cpu_ms, "tokens": tokens}
        memory = {"rss_mb": _rss_mb(), "model_mb": _rss_mb() - before, "peak_model_mb": _peak_rss_mb() - before}
        print(json.dumps({**answer, **memory}), flush=True)


def _strata_worker(models_dir: str, threads: int) -> None:
    sys.path.insert(0, str(REPO))
    from models.generator import DecodeOptions, Generator
    from models.manifest import GENERATOR_NAME

    def start_runtime():
        import onnxruntime as ort
        from onnxruntime.datasets import get_example

        ort.InferenceSession(get_example("sigmoid.onnx"), providers=["CPUExecutionProvider"])

    def generate(generator, ids, tokens, end):
        yield from generator.token_ids(ids, DecodeOptions(max_new_tokens=tokens, no_repeat_ngram=0))

    _serve(start_runtime, lambda: Generator.load(Path(models_dir) / GENERATOR_NAME, threads=threads), generate)


def _llama_worker(gguf: str, threads: int) -> None:
    from llama_cpp import Llama, llama_backend_init

    def load():
        return Llama(model_path=gguf, n_ctx=2048, n_threads=threads, n_threads_batch=threads, verbose=False)

    def generate(llm, ids, tokens, end):
        llm.reset()  # no reuse of the previous prompt's cache: every prompt is computed whole
        for n, token in enumerate(llm.generate(ids, top_k=1, temp=0.0, repeat_penalty=1.0, reset=True)):
            if token == end or n == tokens:
                return
            yield token

    _serve(llama_backend_init, load, generate)


# ---------------------------------------------------------------- driver


def _llama_python() -> Path:
    version = LLAMA_CPP.split("==")[1]
    root = Path(os.environ.get("STRATA_CACHE_DIR") or Path.home() / ".cache" / "strata") / "bench"
    simd = _llama_simd_options()
    simd_tag = "-".join(option.removeprefix("GGML_").lower() for option in simd) or "generic"
    env = root / f"llama-cpp-python-{version}-{simd_tag}"
    python = env / "bin" / "python"
    if python.is_file():
        return python
    missing = [tool for tool in ("cmake", "c++") if shutil.which(tool) is None]
    if missing:
        sys.exit(f"building {LLAMA_CPP} from source needs {' and '.join(missing)}: apt-get install cmake g++")
    print(f"installing {LLAMA_CPP} into {env} (compiles llama.cpp: several minutes)", flush=True)
    partial = env.with_name(env.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    subprocess.run([sys._base_executable, "-m", "venv", str(partial)], check=True)
    cmake_args = ["-DLLAVA_BUILD=OFF", "-DGGML_NATIVE=OFF"]
    cmake_args += [f"-D{option}={'ON' if option in simd else 'OFF'}" for option in LLAMA_SIMD_OPTIONS]
    cmake_args += ["-DGGML_AMX_TILE=OFF", "-DGGML_AMX_INT8=OFF", "-DGGML_AMX_BF16=OFF"]
    build_env = {**os.environ, "CMAKE_ARGS": " ".join([os.environ.get("CMAKE_ARGS", ""), *cmake_args]).strip()}
    # No wheel cache: pip keys a built wheel by the sdist alone, not by CMAKE_ARGS.
    install = [str(partial / "bin" / "python"), "-m", "pip", "install", "-q", "--no-cache-dir", LLAMA_CPP]
    subprocess.run(install, check=True, env=build_env)
    partial.rename(env)  # a venv's python runs from any path; pip is only ever run as `python -m pip`
    return python


class _Engine:
    def __init__(self, name: str, command: list[str]) -> None:
        self.name = name
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        loaded = json.loads(self.process.stdout.readline())
        self.runtime_mb, self.loaded_mb, self.load_peak_mb = (
            loaded["runtime_mb"],
            loaded["loaded_mb"],
            loaded["load_peak_mb"],
        )
        self.ttft: dict[str, list[float]] = {SHORT: [], LONG: []}
        self.decode: list[float] = []
        self.decode_by_prompt: dict[str, list[float]] = {}
        self.cpu_ms: list[float] = []
        self.tokens: dict[str, list[int]] = {}
        self.rss_mb = self.model_mb = self.peak_model_mb = 0.0

    def run(self, ids: list[int], tokens: int, end: int) -> dict:
        self.process.stdin.write(json.dumps({"ids": ids, "tokens": tokens, "end": end}) + "\n")
        self.process.stdin.flush()
        answer = json.loads(self.process.stdout.readline())
        self.rss_mb = max(self.rss_mb, answer["rss_mb"])
        self.model_mb = max(self.model_mb, answer["model_mb"])
        self.peak_model_mb = max(self.peak_model_mb, answer["peak_model_mb"])
        return answer

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=60)


def _same_prefix(a: list[int], b: list[int]) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", default=os.environ.get("STRATA_MODELS_DIR", str(REPO / ".cache" / "models")))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=96)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--worker", choices=["strata", "llama"], help=argparse.SUPPRESS)
    parser.add_argument("--gguf", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == "strata":
        return _strata_worker(args.models_dir, args.threads)
    if args.worker == "llama":
        return _llama_worker(args.gguf, args.threads)

    sys.path.insert(0, str(REPO))
    import numpy as np
    from tokenizers import Tokenizer

    from models.export_generator import BENCHMARK_PROMPTS, LONG_GROUNDED_PROMPT, _generator_gguf
    from models.generator import IM_END, render_chat
    from models.manifest import GENERATOR_NAME, read_manifest

    model_dir = Path(args.models_dir) / GENERATOR_NAME
    manifest = read_manifest(model_dir)
    tokenizer = Tokenizer.from_file(str(model_dir / manifest.tokenizer_file))
    end = tokenizer.token_to_id(IM_END)

    def encode(messages) -> list[int]:
        return tokenizer.encode(render_chat(messages), add_special_tokens=False).ids

    prompts = {render_chat(m): encode(m) for m in BENCHMARK_PROMPTS}
    long_ids = encode(LONG_GROUNDED_PROMPT)
    with np.load(model_dir / manifest.reference_file, allow_pickle=False) as ref:
        continuations = np.split(ref["continuations"], np.cumsum(ref["continuation_lengths"])[:-1])
        fp32 = {str(p): [int(t) for t in c if t != end] for p, c in zip(ref["prompts"], continuations, strict=True)}

    me = [sys.executable, __file__, "--threads", str(args.threads), "--models-dir", args.models_dir]
    llama = [str(_llama_python()), __file__, "--threads", str(args.threads), "--gguf", str(_generator_gguf())]
    engines = [_Engine("strata", [*me, "--worker", "strata"]), _Engine("llama.cpp", [*llama, "--worker", "llama"])]
    try:
        for engine in engines:
            engine.run(next(iter(prompts.values())), 8, end)  # warm-up
        for round_number in range(args.rounds):
            for engine in engines if round_number % 2 == 0 else engines[::-1]:
                for text, ids in prompts.items():
                    answer = engine.run(ids, args.tokens, end)
                    engine.ttft[SHORT].append(answer["ttft"])
                    if answer["decode"]:
                        engine.decode.append(answer["decode"])
                        engine.decode_by_prompt.setdefault(text, []).append(answer["decode"])
                        engine.cpu_ms.append(answer["cpu_ms"])
                    engine.tokens[text] = answer["tokens"]
                engine.ttft[LONG].append(engine.run(long_ids, 1, end)["ttft"])
    finally:
        for engine in engines:
            engine.close()

    print(
        f"{args.rounds} rounds, {args.threads} threads, {args.tokens} greedy tokens per prompt; "
        f"load average {os.getloadavg()[0]:.2f} (the machine is shared: compare ratios)"
    )
    print(f"CPU: {cpu_description()}")
    print(f"long prompt: {len(long_ids)} tokens")
    for engine in engines:
        print(
            f"{engine.name:>9}: decode {statistics.median(engine.decode):6.1f} tok/s "
            f"({statistics.median(engine.cpu_ms):5.1f} ms of CPU per token) | "
            f"first token {statistics.median(engine.ttft[SHORT]) * 1000:5.0f} ms short, "
            f"{statistics.median(engine.ttft[LONG]) * 1000:5.0f} ms at {len(long_ids)} tokens | "
            f"RSS {engine.rss_mb:.0f} MB, of which the runtime {engine.runtime_mb:.0f} MB and the model "
            f"{engine.model_mb:.0f} MB after the answers ({engine.loaded_mb:.0f} MB once loaded; peaks "
            f"{engine.load_peak_mb:.0f} MB loading, {engine.peak_model_mb:.0f} MB answering)"
        )
    strata, cpp = engines
    print(
        f"strata/llama.cpp: decode speed x{statistics.median(strata.decode) / statistics.median(cpp.decode):.2f}, "
        f"first token x{statistics.median(cpp.ttft[SHORT]) / statistics.median(strata.ttft[SHORT]):.2f} short and "
        f"x{statistics.median(cpp.ttft[LONG]) / statistics.median(strata.ttft[LONG]):.2f} at {len(long_ids)} tokens "
        "(above 1: Strata faster)"
    )
    for text in prompts:
        ours, theirs, reference = strata.tokens[text], cpp.tokens[text], fp32.get(text)
        line = f"llama.cpp {_same_prefix(ours, theirs)}/{len(ours)}"
        if reference is not None:
            line += f", fp32 reference {_same_prefix(ours, reference)}/{len(ours)} (llama.cpp {_same_prefix(theirs, reference)})"
        question = text.split("<|im_start|>user\n")[-1].split("<|im_end|>")[0]
        speeds = [statistics.median(engine.decode_by_prompt.get(text) or [0.0]) for engine in engines]
        print(
            f"{question[:40]!r}: decode {speeds[0]:.1f} tok/s against {speeds[1]:.1f} "
            f"(x{speeds[0] / speeds[1] if speeds[1] else 0:.2f}); greedy tokens Strata shares with {line}"
        )


if __name__ == "__main__":
    main()
