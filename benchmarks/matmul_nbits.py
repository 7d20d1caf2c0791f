"""The chat model's 4-bit projections with fp32 activations (as shipped) against int8 activations.

    python benchmarks/matmul_nbits.py [--threads N] [--rounds 5]

Takes the first layer's projections (the fused q/k/v, the output projection, the fused gate/up,
the down projection) out of the built SmolLM2 graph, with their real weights, and runs each
alone as onnxruntime's MatMulNBits at accuracy level 0 (fp32 activations: the model's greedy
tokens stay the fp32 model's) and at level 4 (activations rounded to int8 per block of 32, as
llama.cpp does: faster, but the tokens leave the fp32 model's), for 1 position (a decode step),
2, 9 (a step with a draft) and 64 (a prompt chunk). The levels alternate within each round;
prints the median time per call and level 0's time over level 4's. How far the shipped
kernel is from the int8 one depends on the CPU's SIMD level, which the first line names.
Asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROJECTIONS = ("qkv", "o_proj", "gate_up", "down")
POSITIONS = (1, 2, 9, 64)
CALLS_PER_ROUND = 50
LEVELS = (0, 4)


def _single_node_model(model, node, accuracy_level: int) -> bytes:
    from onnx import TensorProto, helper

    weights = {init.name: init for init in model.graph.initializer}
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    attrs["accuracy_level"] = accuracy_level
    matmul = helper.make_node("MatMulNBits", ["x", *node.input[1:]], ["y"], domain=node.domain, **attrs)
    graph = helper.make_graph(
        [matmul],
        node.name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "positions", attrs["K"]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, "positions", attrs["N"]])],
        [weights[name] for name in node.input[1:] if name],
    )
    onnx_model = helper.make_model(graph, opset_imports=list(model.opset_import))
    onnx_model.ir_version = model.ir_version
    return onnx_model.SerializeToString()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", default=os.environ.get("STRATA_MODELS_DIR", str(REPO / ".cache" / "models")))
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    sys.path.insert(0, str(REPO))
    import numpy as np
    import onnx
    import onnxruntime as ort
    from generate import cpu_description

    from models.manifest import GENERATOR_NAME, read_manifest
    from models.runtime import session_options

    model_dir = Path(args.models_dir) / GENERATOR_NAME
    model = onnx.load(str(model_dir / read_manifest(model_dir).file))
    nodes = {node.name: node for node in model.graph.node}
    print(f"CPU: {cpu_description()}; {args.threads} threads; onnxruntime {ort.__version__}")
    print(f"{'projection':>10} {'K':>5} {'N':>5} {'positions':>9} {'level 0 us':>11} {'level 4 us':>11} {'0/4':>6}")
    totals = {level: dict.fromkeys(POSITIONS, 0.0) for level in LEVELS}
    for projection in PROJECTIONS:
        node = nodes[f"layers.0.{projection}/MatMulNBits"]
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        models = {level: _single_node_model(model, node, level) for level in LEVELS}
        rng = np.random.default_rng(0)
        inputs = {n: {"x": rng.standard_normal((1, n, attrs["K"])).astype(np.float32)} for n in POSITIONS}
        times = {(level, n): [] for level in LEVELS for n in POSITIONS}
        for _ in range(args.rounds):
            for level in LEVELS:
                # One session at a time: an idle session's spinning threads would take the cores.
                session = ort.InferenceSession(
                    models[level], session_options(args.threads, spinning=True), providers=["CPUExecutionProvider"]
                )
                for n, x in inputs.items():
                    session.run(None, x)  # warm-up
                    started = time.perf_counter()
                    for _ in range(CALLS_PER_ROUND):
                        session.run(None, x)
                    times[level, n].append((time.perf_counter() - started) / CALLS_PER_ROUND * 1e6)
                del session
        for n in POSITIONS:
            medians = {level: statistics.median(times[level, n]) for level in LEVELS}
            for level, value in medians.items():
                totals[level][n] += value
            print(
                f"{projection:>10} {attrs['K']:>5} {attrs['N']:>5} {n:>9} "
                f"{medians[0]:>11.1f} {medians[4]:>11.1f} {medians[0] / medians[4]:>6.2f}"
            )
    layers = sum(1 for name in nodes if name.endswith(".qkv/MatMulNBits"))
    for positions in POSITIONS:
        print(
            f"{layers} layers' projections, {positions} positions: level 0 {totals[0][positions] * layers / 1e3:.1f} ms, "
            f"level 4 {totals[4][positions] * layers / 1e3:.1f} ms (x{totals[0][positions] / totals[4][positions]:.2f})"
        )


if __name__ == "__main__":
    main()
