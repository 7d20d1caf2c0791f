"""Chat generation with onnxruntime + tokenizers + numpy (no torch at runtime).

Runs the decoder-only SmolLM2-135M-Instruct exported by ``models.build``: the
prompt goes through the graph once, then one token per step with the
key/value cache the graph returns (``present.*`` fed back as ``past_key_values.*``).

Decoding is greedy, or sampled at a low temperature, with two guards against
the loops small models fall into: a repetition penalty on tokens already
generated (not on the prompt, so copying a fact from a passage is not
penalised) and a ban on repeating an n-gram of generated tokens.

Text comes out incrementally and never as broken UTF-8: a piece is emitted only
once the decoded text no longer ends in a partial multi-byte character.

One ``Generator`` may be shared by any number of threads; each ``stream`` call
keeps its own cache. ``stream`` checks ``stop`` before each step; a ``StopSignal``
also aborts the graph run in progress, so even a long prompt's first pass ends
as soon as it is set.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from models.embedder import _session_options, default_threads
from models.manifest import ModelManifest, read_manifest

__all__ = ["DecodeOptions", "Generator", "PromptTooLong", "StopSignal", "render_chat"]

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
# SmolLM2's own chat template adds this system message when none is given.
DEFAULT_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
_PARTIAL_UTF8 = "\ufffd"


class PromptTooLong(ValueError):
    """The prompt leaves no room for an answer in the model's context."""


class StopSignal(threading.Event):
    """A stop event that also terminates the onnxruntime run in progress when set."""

    def __init__(self) -> None:
        super().__init__()
        self.run_options = ort.RunOptions()

    def set(self) -> None:
        super().set()
        self.run_options.terminate = True


@dataclass(frozen=True)
class DecodeOptions:
    max_new_tokens: int = 384
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 0.9
    repetition_penalty: float = 1.0
    no_repeat_ngram: int = 6
    seed: int | None = None


def render_chat(messages: Sequence[tuple[str, str]]) -> str:
    """SmolLM2's chat template as text, ending with the assistant's turn opened.

    ``messages`` are (role, content) pairs. Rendering it here rather than with
    the GGUF-converted tokenizer avoids its extra start token.
    """
    parts = []
    if not messages or messages[0][0] != "system":
        parts.append(f"{IM_START}system\n{DEFAULT_SYSTEM}{IM_END}\n")
    for role, content in messages:
        parts.append(f"{IM_START}{role}\n{content}{IM_END}\n")
    parts.append(f"{IM_START}assistant\n")
    return "".join(parts)


class Generator:
    """Thread-safe ONNX chat model. Build one with ``Generator.load``."""

    manifest: ModelManifest
    load_seconds: float
    model_dir: Path

    def __init__(
        self,
        *,
        model_dir: Path,
        manifest: ModelManifest,
        session: ort.InferenceSession,
        tokenizer: Tokenizer,
        load_seconds: float,
    ) -> None:
        self.model_dir = model_dir
        self.manifest = manifest
        self._session = session
        self._tokenizer = tokenizer
        self.load_seconds = load_seconds
        self.context_length = manifest.max_length
        end = tokenizer.token_to_id(IM_END)
        if end is None:
            raise ValueError(f"{model_dir}: tokenizer has no {IM_END} token")
        self.end_token_id = end
        inputs = {i.name: i for i in session.get_inputs()}
        self._input_names = frozenset(inputs)
        self._cache_names = sorted(
            (n for n in inputs if n.startswith("past_key_values.")),
            key=lambda n: (int(n.split(".")[1]), n.split(".")[2]),
        )
        first = inputs[self._cache_names[0]]
        self._cache_shape = (1, int(first.shape[1]), 0, int(first.shape[3]))
        self._cache_dtype = np.float16 if "float16" in first.type else np.float32
        self._present_names = ["present." + n.removeprefix("past_key_values.") for n in self._cache_names]

    @classmethod
    def load(cls, model_dir: Path | str, *, threads: int | None = None) -> Generator:
        model_dir = Path(model_dir)
        started = time.perf_counter()
        manifest = read_manifest(model_dir)
        if manifest.task != "generation":
            raise ValueError(f"{model_dir} holds a {manifest.task} model, not a generation model")
        session = ort.InferenceSession(
            str(model_dir / manifest.file),
            sess_options=_session_options(threads or default_threads()),
            providers=["CPUExecutionProvider"],
        )
        tokenizer = Tokenizer.from_file(str(model_dir / manifest.tokenizer_file))
        return cls(
            model_dir=model_dir,
            manifest=manifest,
            session=session,
            tokenizer=tokenizer,
            load_seconds=time.perf_counter() - started,
        )

    # ------------------------------------------------------------ tokens

    def encode(self, text: str) -> list[int]:
        return self._tokenizer.encode(text, add_special_tokens=False).ids

    def encode_chat(self, messages: Sequence[tuple[str, str]]) -> list[int]:
        return self.encode(render_chat(messages))

    def decode(self, ids: Sequence[int]) -> str:
        return self._tokenizer.decode(list(ids), skip_special_tokens=True)

    # ------------------------------------------------------------ the graph

    def _empty_cache(self) -> dict[str, np.ndarray]:
        return {name: np.zeros(self._cache_shape, dtype=self._cache_dtype) for name in self._cache_names}

    def _forward(
        self, ids: Sequence[int], cache: dict[str, np.ndarray], past: int, run_options: ort.RunOptions | None = None
    ) -> tuple[np.ndarray, dict]:
        """Logits (1, vocab) predicting the token after ``ids`` (which follow ``past`` cached
        tokens), and the new cache. The built graph projects only the last position."""
        n = len(ids)
        feeds = {
            "input_ids": np.asarray([ids], dtype=np.int64),
            "attention_mask": np.ones((1, past + n), dtype=np.int64),
            "position_ids": np.arange(past, past + n, dtype=np.int64)[None, :],
            **cache,
        }
        feeds = {k: v for k, v in feeds.items() if k in self._input_names}
        outputs = self._session.run(["logits", *self._present_names], feeds, run_options)
        new_cache = dict(zip(self._cache_names, outputs[1:], strict=True))
        return outputs[0][0], new_cache

    def teacher_forced_logits(self, prompt_ids: Sequence[int], continuation: Sequence[int]) -> np.ndarray:
        """Logits predicting each token of ``continuation``, fed one step at a time through the cache
        exactly as ``stream`` does. Row i predicts continuation[i]. Used by the parity checks."""
        logits, cache = self._forward(prompt_ids, self._empty_cache(), 0)
        rows = [logits[-1]]
        past = len(prompt_ids)
        for token in continuation[:-1]:
            logits, cache = self._forward([token], cache, past)
            past += 1
            rows.append(logits[-1])
        return np.stack(rows).astype(np.float32)

    # ------------------------------------------------------------ decoding

    def token_ids(
        self,
        prompt_ids: Sequence[int],
        options: DecodeOptions = DecodeOptions(),
        stop: threading.Event | None = None,
    ) -> Iterator[int]:
        """Generated token ids, up to (not including) <|im_end|> or ``max_new_tokens``."""
        if not prompt_ids:
            raise ValueError("empty prompt")
        room = self.context_length - len(prompt_ids)
        if room < 1:
            raise PromptTooLong(
                f"the prompt has {len(prompt_ids)} tokens; the model's context is {self.context_length}"
            )
        budget = min(options.max_new_tokens, room)
        rng = np.random.default_rng(options.seed)
        generated: list[int] = []
        cache = self._empty_cache()
        step_ids = list(prompt_ids)
        past = 0
        run_options = stop.run_options if isinstance(stop, StopSignal) else None
        while len(generated) < budget:
            if stop is not None and stop.is_set():
                return
            try:
                logits, cache = self._forward(step_ids, cache, past, run_options)
            except Exception:
                if stop is not None and stop.is_set():
                    return  # the run was terminated by the stop signal
                raise
            past += len(step_ids)
            token = self._choose(logits[-1].astype(np.float64), generated, options, rng)
            if token == self.end_token_id:
                return
            generated.append(token)
            yield token
            step_ids = [token]

    def _choose(self, logits: np.ndarray, generated: list[int], options: DecodeOptions, rng) -> int:
        if generated and options.repetition_penalty != 1.0:
            seen = np.unique(np.asarray(generated))
            values = logits[seen]
            logits[seen] = np.where(
                values > 0, values / options.repetition_penalty, values * options.repetition_penalty
            )
        n = options.no_repeat_ngram
        if n > 0 and len(generated) >= n:
            prefix = tuple(generated[-(n - 1) :])
            for i in range(len(generated) - n + 1):
                if tuple(generated[i : i + n - 1]) == prefix:
                    logits[generated[i + n - 1]] = -np.inf
        if options.temperature <= 0:
            return int(np.argmax(logits))
        scaled = (logits - logits.max()) / options.temperature
        probs = np.exp(scaled)
        probs /= probs.sum()
        order = np.argsort(-probs)
        keep = order[: int(np.searchsorted(np.cumsum(probs[order]), options.top_p)) + 1]
        kept = probs[keep] / probs[keep].sum()
        return int(rng.choice(keep, p=kept))

    def stream(
        self,
        prompt_ids: Sequence[int],
        options: DecodeOptions = DecodeOptions(),
        stop: threading.Event | None = None,
    ) -> Iterator[str]:
        """Text pieces as they are generated; never a partial UTF-8 character."""
        generated: list[int] = []
        emitted = 0
        for token in self.token_ids(prompt_ids, options, stop):
            generated.append(token)
            text = self.decode(generated)
            if text.endswith(_PARTIAL_UTF8):
                continue  # the rest of a multi-byte character is in the next token
            if len(text) > emitted:
                yield text[emitted:]
                emitted = len(text)
        text = self.decode(generated)
        if len(text) > emitted:  # the model stopped inside a character: flush what there is
            yield text[emitted:]
