"""SmolLM2's decoder as a 4-bit ONNX graph, written straight from the blocks of its GGUF.

The GGUF stores every projection as Q4_1: each block of 32 weights along the
input dimension is ``d·q + m`` with q in 0..15 and fp16 ``d`` and ``m``. ONNX
Runtime's fast 4-bit kernel (``MatMulNBits``) takes integer zero points only,
which cannot express ``m``, so each projection is split exactly::

    A·W = MatMulNBits(A; q, scale=d, zero point 8) + (per-block sums of A)·Mᵀ

where M holds the blocks' m + 8d (exact in fp32): a tiny fp32 MatMul over K/32 columns. The
token embedding is Q8_0 (``d·q``, q in -128..127); the vocabulary projection,
tied to it, is ``MatMulNBits`` at 8 bits with q+128 against its default zero
point, 128. No weight is rounded that the GGUF had not rounded already;
``write_graph`` checks every de-quantised weight against transformers' own
de-quantisation, bit for bit.

The decoder layers compute in fp32 (accuracy level 0). The vocabulary
projection computes with int8 activations (level 4), which is 2.6x faster here
but gives approximate logits: the graph also returns the projection's input
(``last_position``), and the runtime (models.generator) computes in fp32 the
logits of every token the int8 rounding could have put behind the best one.

The rest is ONNX Runtime's fused CPU kernels: (Skip)SimplifiedLayerNormalization
for RMSNorm and the residual adds, GroupQueryAttention with rotary embedding and
a key/value cache that is read and written in place (past and present share one
buffer, so a step copies nothing), and the vocabulary projection of the last
``logit_positions`` positions only: one, or a draft's (see models.generator).
The embedding lookup happens outside the graph, in numpy, from a memory-mapped
table (models.generator), so its 28 MB are paged in per token rather than held.

Build-time only: imports onnx and gguf.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.generator import EMBEDDING_FILES, HEAD_BLOCK_NORMS, HEAD_OUTPUTS, LOGIT_POSITIONS

__all__ = ["GraphConfig", "write_graph"]

BLOCK = 32
MS_DOMAIN = "com.microsoft"
# int8 activations: the runtime re-scores in fp32 whatever the rounding could have reordered.
HEAD_ACCURACY_LEVEL = 4


@dataclass(frozen=True)
class GraphConfig:
    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    rms_eps: float
    rope_theta: float
    max_positions: int
    accuracy_level: int


def _q4_1(tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(q uint8 (N, K/32, 32), d float32 (N, K/32), m float32 (N, K/32)) of a GGUF Q4_1 tensor."""
    k, n = (int(x) for x in tensor.shape)
    raw = np.asarray(tensor.data, dtype=np.uint8).reshape(n, k // BLOCK, 20)
    d = raw[..., 0:2].copy().view(np.float16)[..., 0].astype(np.float32)
    m = raw[..., 2:4].copy().view(np.float16)[..., 0].astype(np.float32)
    packed = raw[..., 4:]
    # GGUF packs element j in the low nibble and element j+16 in the high nibble of byte j.
    q = np.concatenate([packed & 0x0F, packed >> 4], axis=-1)
    return q, d, m


def _q8_0(tensor) -> tuple[np.ndarray, np.ndarray]:
    """(q int8 (N, K), d float32 (N, K/32)) of a GGUF Q8_0 tensor."""
    k, n = (int(x) for x in tensor.shape)
    raw = np.asarray(tensor.data, dtype=np.uint8).reshape(n, k // BLOCK, 34)
    d = raw[..., 0:2].copy().view(np.float16)[..., 0].astype(np.float32)
    q = raw[..., 2:].copy().view(np.int8).reshape(n, k)
    return q, d


def _reverse_permute_rows(rows: int, heads: int) -> np.ndarray:
    """Row order that undoes llama.cpp's q/k permutation (as transformers' GGUF loader does)."""
    index = np.arange(rows)
    half = rows // heads // 2
    return index.reshape(heads, half, 2).swapaxes(1, 2).reshape(rows)


def _pack_nibbles(q: np.ndarray) -> np.ndarray:
    """MatMulNBits' 4-bit layout: element 2i in the low nibble of byte i, 2i+1 in the high one."""
    return (q[..., 0::2] | (q[..., 1::2] << 4)).astype(np.uint8)


class _Graph:
    def __init__(self) -> None:
        from onnx import helper, numpy_helper

        self.helper = helper
        self.numpy_helper = numpy_helper
        self.nodes: list = []
        self.initializers: list = []

    def constant(self, name: str, array: np.ndarray) -> str:
        self.initializers.append(self.numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(self, op: str, inputs: list[str], outputs: list[str], name: str, domain: str = "", **attrs) -> list[str]:
        self.nodes.append(self.helper.make_node(op, inputs, outputs, name=name, domain=domain or None, **attrs))
        return outputs

    def q4_matmul(self, x: str, name: str, q, d, m, accuracy_level: int) -> str:
        """x·W for Q4_1 blocks (see the module docstring); q, d, m are (N, K/32[, 32])."""
        n, blocks = d.shape
        k = blocks * BLOCK
        # MatMulNBits' default zero point, 8, saves storing one: d·q + m = d·(q - 8) + (m + 8d), and
        # m + 8d is exact in fp32 (two fp16 values), which this checks.
        shifted = m + 8 * d
        if not np.array_equal(shifted.astype(np.float64) - 8 * d.astype(np.float64), m.astype(np.float64)):
            raise ValueError(f"{name}: a block minimum plus 8 scales is not exact in fp32")
        (main,) = self.node(
            "MatMulNBits",
            [x, self.constant(f"{name}.q4", _pack_nibbles(q)), self.constant(f"{name}.scales", d.reshape(-1))],
            [f"{name}/main"],
            f"{name}/MatMulNBits",
            MS_DOMAIN,
            K=k,
            N=n,
            bits=4,
            block_size=BLOCK,
            accuracy_level=accuracy_level,
        )
        (blocked,) = self.node(
            "Reshape",
            [x, self.constant(f"{name}.block_shape", np.array([0, 0, blocks, BLOCK]))],
            [f"{name}/blocked"],
            f"{name}/Reshape",
        )
        (sums,) = self.node(
            "ReduceSum",
            [blocked, self.constant(f"{name}.block_axis", np.array([-1]))],
            [f"{name}/block_sums"],
            f"{name}/ReduceSum",
            keepdims=0,
        )
        (minimums,) = self.node(
            "MatMul", [sums, self.constant(f"{name}.minimums", shifted.T)], [f"{name}/minimums"], f"{name}/MatMul"
        )
        return self.node("Add", [main, minimums], [f"{name}/out"], f"{name}/Add")[0]


def _rotary_cache(config: GraphConfig) -> tuple[np.ndarray, np.ndarray]:
    """cos/sin (positions, head_dim/2) computed as transformers' LlamaRotaryEmbedding does (fp32, torch)."""
    import torch

    inv_freq = 1.0 / (
        config.rope_theta ** (torch.arange(0, config.head_dim, 2, dtype=torch.int64).float() / config.head_dim)
    )
    positions = torch.arange(config.max_positions, dtype=torch.int64).float()
    freqs = (inv_freq[:, None].float() @ positions[None, :].float()).T
    return freqs.cos().numpy(), freqs.sin().numpy()


def write_graph(gguf_path: Path, reference_state: dict, config: GraphConfig, out_dir: Path, onnx_file: str) -> None:
    """Write ``out_dir/onnx_file`` and the ``EMBEDDING_FILES`` from the GGUF.

    ``reference_state`` is transformers' de-quantised state dict (name -> fp32 numpy array): every
    weight the graph uses must de-quantise to exactly that, or this raises ValueError.
    """
    import onnx
    from gguf import GGUFReader
    from onnx import TensorProto, helper

    tensors = {t.name: t for t in GGUFReader(str(gguf_path)).tensors}
    graph = _Graph()

    def check(name: str, dequantised: np.ndarray) -> None:
        expected = reference_state[name]
        if dequantised.shape != expected.shape or not np.array_equal(dequantised, expected):
            worst = float(np.max(np.abs(dequantised - expected))) if dequantised.shape == expected.shape else None
            raise ValueError(f"{name}: the GGUF blocks do not give transformers' weights (max diff {worst})")

    def projection(gguf_names: list[str], hf_names: list[str], permute: list[int | None]):
        qs, ds, ms = [], [], []
        for gguf_name, hf_name, heads in zip(gguf_names, hf_names, permute, strict=True):
            q, d, m = _q4_1(tensors[gguf_name])
            if heads is not None:
                order = _reverse_permute_rows(q.shape[0], heads)
                q, d, m = q[order], d[order], m[order]
            check(hf_name, (d[..., None] * q.astype(np.float32) + m[..., None]).reshape(q.shape[0], -1))
            qs.append(q)
            ds.append(d)
            ms.append(m)
        return np.concatenate(qs), np.concatenate(ds), np.concatenate(ms)

    embed_q, embed_d = _q8_0(tensors["token_embd.weight"])
    embedding = (embed_q.reshape(config.vocab, -1, BLOCK).astype(np.float32) * embed_d[..., None]).reshape(
        config.vocab, -1
    )
    check("model.embed_tokens.weight", embedding)
    check("lm_head.weight", embedding)
    # Per block of 32 inputs, the largest squared norm of any token's weights there.
    block_norms = np.square(embedding.reshape(config.vocab, -1, BLOCK)).sum(axis=-1).max(axis=0)
    del embedding
    np.save(out_dir / EMBEDDING_FILES[0], embed_q)
    np.save(out_dir / EMBEDDING_FILES[1], embed_d)
    np.save(out_dir / HEAD_BLOCK_NORMS, block_norms.astype(np.float64))

    cos, sin = _rotary_cache(config)
    cos_name = graph.constant("rotary.cos", cos)
    sin_name = graph.constant("rotary.sin", sin)
    level = config.accuracy_level
    inputs = [
        helper.make_tensor_value_info("inputs_embeds", TensorProto.FLOAT, [1, "sequence", config.hidden]),
        helper.make_tensor_value_info("seqlens_k", TensorProto.INT32, [1]),
        helper.make_tensor_value_info("total_sequence_length", TensorProto.INT32, []),
        # How many of the pass's last positions get logits: 1, or a draft's tokens and one more.
        helper.make_tensor_value_info(LOGIT_POSITIONS, TensorProto.INT64, [1]),
    ]
    logits_name, last_name = HEAD_OUTPUTS
    outputs = [
        helper.make_tensor_value_info(logits_name, TensorProto.FLOAT, [1, "positions", config.vocab]),
        helper.make_tensor_value_info(last_name, TensorProto.FLOAT, [1, "positions", config.hidden]),
    ]
    cache_shape = [1, config.kv_heads, "cache_length", config.head_dim]

    residual, hidden = "inputs_embeds", None
    for i in range(config.layers):
        prefix, hf = f"layers.{i}", f"model.layers.{i}"
        norm = graph.constant(f"{prefix}.attn_norm", reference_state[f"{hf}.input_layernorm.weight"])
        if hidden is None:
            (x,) = graph.node(
                "SimplifiedLayerNormalization",
                [residual, norm],
                [f"{prefix}/attn_norm"],
                f"{prefix}/attn_norm",
                axis=-1,
                epsilon=config.rms_eps,
                stash_type=1,
            )
        else:
            x, residual = _skip_norm(graph, hidden, residual, norm, f"{prefix}/attn_norm", config.rms_eps)
        q, d, m = projection(
            [f"blk.{i}.attn_q.weight", f"blk.{i}.attn_k.weight", f"blk.{i}.attn_v.weight"],
            [f"{hf}.self_attn.q_proj.weight", f"{hf}.self_attn.k_proj.weight", f"{hf}.self_attn.v_proj.weight"],
            [config.heads, config.kv_heads, None],
        )
        qkv = graph.q4_matmul(x, f"{prefix}.qkv", q, d, m, level)
        for kind in ("key", "value"):
            inputs.append(helper.make_tensor_value_info(f"past_key_values.{i}.{kind}", TensorProto.FLOAT, cache_shape))
            outputs.append(helper.make_tensor_value_info(f"present.{i}.{kind}", TensorProto.FLOAT, cache_shape))
        (attention, _, _) = graph.node(
            "GroupQueryAttention",
            [
                qkv,
                "",
                "",
                f"past_key_values.{i}.key",
                f"past_key_values.{i}.value",
                "seqlens_k",
                "total_sequence_length",
                cos_name,
                sin_name,
            ],
            [f"{prefix}/attention", f"present.{i}.key", f"present.{i}.value"],
            f"{prefix}/GroupQueryAttention",
            MS_DOMAIN,
            num_heads=config.heads,
            kv_num_heads=config.kv_heads,
            do_rotary=1,
            rotary_interleaved=0,
            scale=float(config.head_dim**-0.5),
        )
        q, d, m = projection([f"blk.{i}.attn_output.weight"], [f"{hf}.self_attn.o_proj.weight"], [None])
        attended = graph.q4_matmul(attention, f"{prefix}.o_proj", q, d, m, level)

        norm = graph.constant(f"{prefix}.ffn_norm", reference_state[f"{hf}.post_attention_layernorm.weight"])
        x, residual = _skip_norm(graph, attended, residual, norm, f"{prefix}/ffn_norm", config.rms_eps)
        q, d, m = projection(
            [f"blk.{i}.ffn_gate.weight", f"blk.{i}.ffn_up.weight"],
            [f"{hf}.mlp.gate_proj.weight", f"{hf}.mlp.up_proj.weight"],
            [None, None],
        )
        gate_up = graph.q4_matmul(x, f"{prefix}.gate_up", q, d, m, level)
        gate, up = graph.node(
            "Split",
            [gate_up, graph.constant(f"{prefix}.split", np.array([config.intermediate] * 2))],
            [f"{prefix}/gate", f"{prefix}/up"],
            f"{prefix}/Split",
            axis=-1,
        )
        (sigmoid,) = graph.node("Sigmoid", [gate], [f"{prefix}/sigmoid"], f"{prefix}/Sigmoid")
        (silu,) = graph.node("Mul", [gate, sigmoid], [f"{prefix}/silu"], f"{prefix}/SiLU")
        (act,) = graph.node("Mul", [silu, up], [f"{prefix}/act"], f"{prefix}/Mul")
        q, d, m = projection([f"blk.{i}.ffn_down.weight"], [f"{hf}.mlp.down_proj.weight"], [None])
        hidden = graph.q4_matmul(act, f"{prefix}.down", q, d, m, level)

    norm = graph.constant("final_norm", reference_state["model.norm.weight"])
    final, _ = _skip_norm(graph, hidden, residual, norm, "final_norm", config.rms_eps)
    (starts,) = graph.node("Neg", [LOGIT_POSITIONS], ["last.starts"], "lm_head/starts")
    (last,) = graph.node(
        "Slice",
        [
            final,
            starts,
            graph.constant("last.ends", np.array([np.iinfo(np.int64).max])),
            graph.constant("last.axes", np.array([1])),
        ],
        [last_name],
        "lm_head/last_position",
    )
    _q8_matmul(graph, last, "lm_head", embed_q, embed_d, logits_name)
    model = helper.make_model(
        helper.make_graph(graph.nodes, "smollm2_q4", inputs, outputs, graph.initializers),
        opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid(MS_DOMAIN, 1)],
        producer_name="strata models.generator_graph",
    )
    model.ir_version = 10
    onnx.save(model, str(out_dir / onnx_file))


def _skip_norm(graph: _Graph, x: str, residual: str, gamma: str, name: str, eps: float) -> tuple[str, str]:
    """RMSNorm(x + residual) and the new residual (x + residual), in one fused kernel."""
    out, _, _, summed = graph.node(
        "SkipSimplifiedLayerNormalization",
        [x, residual, gamma],
        [f"{name}/out", "", "", f"{name}/residual"],
        name,
        MS_DOMAIN,
        epsilon=eps,
    )
    return out, summed


def _q8_matmul(graph: _Graph, x: str, name: str, q: np.ndarray, d: np.ndarray, output: str) -> str:
    """x·W for Q8_0 blocks (W = d·q, q int8): MatMulNBits at 8 bits, q+128 against its default zero
    point 128, which is the same value. At level 4 only: at level 0 this kernel is ~100x slower here."""
    n, k = q.shape
    unsigned = (q.astype(np.int16) + 128).astype(np.uint8).reshape(n, k // BLOCK, BLOCK)
    return graph.node(
        "MatMulNBits",
        [x, graph.constant(f"{name}.q8", unsigned), graph.constant(f"{name}.scales", d.reshape(-1))],
        [output],
        f"{name}/MatMulNBits",
        MS_DOMAIN,
        K=k,
        N=n,
        bits=8,
        block_size=BLOCK,
        accuracy_level=HEAD_ACCURACY_LEVEL,
    )[0]
