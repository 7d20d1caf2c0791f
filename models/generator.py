"""Chat generation with onnxruntime + tokenizers + numpy (no torch at runtime).

Runs the 4-bit SmolLM2-135M-Instruct graph that ``models.generator_graph`` writes
from the GGUF: the prompt goes through the graph once, then one token per step,
or a drafted run of tokens checked in one pass (see ``Generator.token_ids``).
The graph's vocabulary projection rounds its input to int8, so its logits are
approximate; each step computes in fp32 the logits of every token that could be
the best one (see ``Generator._scores``) and chooses among those, which is the
fp32 model's choice.
Each sequence allocates its key/value cache once, for its whole length, and binds
it to the graph's past and present alike (IOBinding): attention appends in place,
so a step copies no cache and allocates nothing but its embedding row. The token
embedding is looked up here, in numpy, from a memory-mapped table.

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

import mmap
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import zip_longest
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from models.manifest import ModelManifest
from models.runtime import open_model, release_freed_memory

__all__ = ["DecodeOptions", "Generator", "PromptTooLong", "StopSignal", "render_chat"]

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
# SmolLM2's own chat template adds this system message when none is given.
DEFAULT_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
_PARTIAL_UTF8 = "\ufffd"
# The Q8_0 token embedding (written by models.generator_graph), memory-mapped so that only the
# rows of tokens actually used are paged in: int8 q (vocab, hidden) and fp32 d (vocab, hidden/32).
EMBEDDING_FILES = ("embedding_q.npy", "embedding_scales.npy")
EMBEDDING_BLOCK = 32
# The graph's approximate logits and the projection's input, from which the runtime computes exact ones.
HEAD_OUTPUTS = ("logits", "last_position")
# The graph input saying how many of a pass's last positions get logits.
LOGIT_POSITIONS = "logit_positions"
# Drafts come from the latest earlier occurrence of the last this many tokens (see _Lookup).
DRAFT_MATCH = 4
# Per block of 32 inputs, the largest squared norm of any token's head weights there (float64).
HEAD_BLOCK_NORMS = "head_block_norms.npy"
# Rounding a block of 32 inputs to int8 (scale max|x|/127) errs uniformly within half a step, so a
# logit's error is a sum of 576 small independent terms with standard deviation sigma
# (``Generator._head_sigma``). Measured here over 414 steps x 49,152 tokens: at most 5 sigma. At 15
# sigma even Hoeffding's bound for such sums (2·exp(-15²/6) per token) leaves no practical chance.
HEAD_MARGIN_SIGMAS = 15.0
# When sampling, tokens within this many temperatures of the best are re-scored too: the others'
# odds against it are below e^-8 (3 in 10,000).
SAMPLING_SPAN = 8.0
# Prompt tokens per pass through the graph (see _Decoder.forward). Measured on a 661-token prompt:
# 64 answers as soon as 128 does (0.87 s), at a peak 35 MB lower; 32 lowers it no further and is slower.
PROMPT_CHUNK = 64


def _map_table(path: Path) -> tuple[np.ndarray, mmap.mmap]:
    """A read-only .npy array backed by the file's pages, and its mapping (to hand the pages back)."""
    with open(path, "rb") as fh:
        version = np.lib.format.read_magic(fh)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f"{path}: .npy format {version} is not supported")
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran_order, dtype = read_header(fh)
        if fortran_order or dtype.hasobject:
            raise ValueError(f"{path}: not a plain C-ordered array")
        offset = fh.tell()
        mapping = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    count = int(np.prod(shape))
    return np.frombuffer(mapping, dtype=dtype, count=count, offset=offset).reshape(shape), mapping


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
    # Tokens drafted from the prompt and the answer so far, checked in one pass (0: one token a pass).
    draft_tokens: int = 8
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


class _Lookup:
    """Drafts for an answer's next tokens: those that followed the latest earlier occurrence, in the
    prompt or the answer so far, of its last ``DRAFT_MATCH`` tokens. Kept as an index of every
    such run of tokens to where it ended, so a draft costs one lookup."""

    def __init__(self, prompt_ids: Sequence[int]) -> None:
        self._tokens = list(prompt_ids)
        self._ends = {
            tuple(self._tokens[end - DRAFT_MATCH : end]): end for end in range(DRAFT_MATCH, len(self._tokens))
        }

    def append(self, token: int) -> None:
        length = len(self._tokens)
        if length >= DRAFT_MATCH:
            self._ends[tuple(self._tokens[length - DRAFT_MATCH :])] = length
        self._tokens.append(token)

    def draft(self, limit: int) -> list[int]:
        end = self._ends.get(tuple(self._tokens[-DRAFT_MATCH:]))
        return [] if end is None else self._tokens[end : end + limit]


@dataclass(frozen=True)
class _Penalties:
    """What the decoding options do to the logits of the next token after ``generated``: the
    repetition penalty scales the logits of the tokens ``seen``, the n-gram ban rules out those
    ``banned``. Both touch a few tokens, so they apply in place, to all logits or to a few."""

    penalty: float
    seen: np.ndarray
    banned: np.ndarray

    @classmethod
    def after(cls, generated: list[int], options: DecodeOptions) -> _Penalties:
        # Plain Python on purpose: right after a graph run numpy's array machinery is out of the
        # CPU's caches, and this ran 20x slower than warm (0.38 ms a token) with sliding windows.
        penalty = options.repetition_penalty
        seen = sorted(set(generated)) if penalty != 1.0 else []
        n = options.no_repeat_ngram
        banned: list[int] = []
        if n == 1:
            banned = sorted(set(generated))
        elif n > 1 and len(generated) >= n:
            # Every token that followed an earlier occurrence of the last n-1 tokens.
            prefix, last = generated[len(generated) - n + 1 :], generated[-1]
            banned = [
                generated[i + 1]
                for i in range(n - 2, len(generated) - 1)
                if generated[i] == last and generated[i - n + 2 : i + 1] == prefix
            ]
        return cls(penalty, np.array(seen, dtype=np.int64), np.array(banned, dtype=np.int64))

    @property
    def stretch(self) -> float:
        """The most the penalty scales a logit, and so its error, by."""
        return max(self.penalty, 1 / self.penalty)

    def apply(self, logits: np.ndarray, tokens: np.ndarray | None = None) -> np.ndarray:
        """``logits``, the scores of ``tokens`` (of every token when None), penalised in place."""
        seen, banned = self.seen, self.banned
        if tokens is not None:
            seen, banned = (np.flatnonzero(np.isin(tokens, ids)) for ids in (seen, banned))
        if seen.size:
            values = logits[seen]
            logits[seen] = np.where(values > 0, values / self.penalty, values * self.penalty)
        logits[banned] = -np.inf
        return logits


NO_PENALTIES = _Penalties(1.0, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))


class _Decoder:
    """One sequence's pass through the graph: its key/value cache, allocated once for the whole
    sequence and bound in place (the graph reads past and writes present into the same buffer),
    and the logits buffer. Not shared between threads."""

    def __init__(
        self, generator: Generator, capacity: int, run_options: ort.RunOptions | None, positions: int = 1
    ) -> None:
        self._generator = generator
        self._run_options = run_options
        self._binding = generator._session.io_binding()
        shape = (1, generator._kv_heads, capacity, generator._head_dim)
        # np.zeros maps untouched pages lazily: memory grows with the tokens actually cached.
        self._buffers = [np.zeros(shape, dtype=np.float32) for _ in range(2 * generator._layers)]
        for layer in range(generator._layers):
            for j, kind in enumerate(("key", "value")):
                buffer = self._buffers[2 * layer + j]
                self._bind(f"past_key_values.{layer}.{kind}", buffer, output=False)
                self._bind(f"present.{layer}.{kind}", buffer, output=True)
        # Room for the logits of ``positions`` positions; a pass binds the rows it asks for.
        self.logits = np.zeros((1, positions, generator.vocab_size), dtype=np.float32)
        self.last_position = np.zeros((1, positions, generator._hidden), dtype=np.float32)
        self._logit_positions = np.zeros(1, dtype=np.int64)
        self._bind(LOGIT_POSITIONS, self._logit_positions, output=False)
        self._bound_positions = 0
        self._seqlens = np.zeros(1, dtype=np.int32)
        self._total = np.zeros((), dtype=np.int32)
        self._bind("seqlens_k", self._seqlens, output=False)
        self._bind("total_sequence_length", self._total, output=False)
        self.capacity = capacity
        self.length = 0

    def _bind(self, name: str, array: np.ndarray, *, output: bool) -> None:
        bind = self._binding.bind_output if output else self._binding.bind_input
        bind(name, "cpu", 0, array.dtype, list(array.shape), array.ctypes.data)

    def _bind_positions(self, positions: int) -> None:
        if positions != self._bound_positions:
            logits_name, last_name = HEAD_OUTPUTS
            self._bind(logits_name, self.logits[:, :positions], output=True)
            self._bind(last_name, self.last_position[:, :positions], output=True)
            self._logit_positions[0] = self._bound_positions = positions

    def forward(self, ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """The approximate logits (vocab,) predicting the token after ``ids``, which follow the cached
        tokens, and the vocabulary projection's input (hidden,) they came from.

        A long prompt goes through in chunks: the graph's intermediate tensors (attention
        scores above all) grow with the tokens of one pass, and the memory they took stays
        with the process after it."""
        self._check_room(len(ids))
        self._bind_positions(1)
        for start in range(0, len(ids), PROMPT_CHUNK):
            self._run(ids[start : start + PROMPT_CHUNK])
        return self.logits[0, 0], self.last_position[0, 0]

    def verify(self, ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Like ``forward``, in one pass, for every position of ``ids``: (len(ids), vocab) logits,
        row i predicting the token after ids[i], and (len(ids), hidden) projection inputs."""
        self._check_room(len(ids))
        if len(ids) > self.logits.shape[1]:
            raise ValueError(f"{len(ids)} positions do not fit the logits of {self.logits.shape[1]}")
        self._bind_positions(len(ids))
        self._run(ids)
        return self.logits[0, : len(ids)], self.last_position[0, : len(ids)]

    def rewind(self, length: int) -> None:
        """Forget the cached tokens after the first ``length`` (a draft's rejected tokens): the next
        pass writes over them."""
        self.length = length

    def _check_room(self, tokens: int) -> None:
        if self.length + tokens > self.capacity:
            raise ValueError(f"{self.length + tokens} tokens do not fit a cache of {self.capacity}")

    def _run(self, ids: Sequence[int]) -> None:
        embeds = self._generator._embed(ids)  # bound by address: it must live until the run ends
        self._bind("inputs_embeds", embeds, output=False)
        self.length += len(ids)
        self._seqlens[0] = self.length - 1
        self._total[...] = self.length
        self._generator._session.run_with_iobinding(self._binding, self._run_options)


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
        embedding: tuple[np.ndarray, np.ndarray],
        embedding_mappings: Sequence[mmap.mmap],
        head_block_norms: np.ndarray,
        load_seconds: float,
    ) -> None:
        self.model_dir = model_dir
        self.manifest = manifest
        self._session = session
        self._tokenizer = tokenizer
        self._embedding_q, self._embedding_scales = embedding
        self._embedding_mappings = embedding_mappings
        self._head_block_norms = head_block_norms
        self.load_seconds = load_seconds
        self.context_length = manifest.max_length
        end = tokenizer.token_to_id(IM_END)
        if end is None:
            raise ValueError(f"{model_dir}: tokenizer has no {IM_END} token")
        self.end_token_id = end
        inputs = {i.name: i for i in session.get_inputs()}
        outputs = {o.name for o in session.get_outputs()}
        wanted = {"inputs_embeds", "seqlens_k", "total_sequence_length", LOGIT_POSITIONS}
        missing = (wanted - set(inputs)) | (set(HEAD_OUTPUTS) - outputs)
        if missing:
            raise ValueError(f"{model_dir / manifest.file}: not a Strata 4-bit chat graph (no {sorted(missing)})")
        self._layers = sum(1 for name in inputs if name.startswith("past_key_values.") and name.endswith(".key"))
        first = inputs["past_key_values.0.key"]
        self._kv_heads, self._head_dim = int(first.shape[1]), int(first.shape[3])
        self.vocab_size, self._hidden = self._embedding_q.shape
        if head_block_norms.shape != (self._hidden // EMBEDDING_BLOCK,):
            raise ValueError(f"{model_dir / HEAD_BLOCK_NORMS}: {head_block_norms.shape} does not fit the embedding")

    @classmethod
    def load(cls, model_dir: Path | str, *, threads: int | None = None) -> Generator:
        model_dir = Path(model_dir)
        started = time.perf_counter()
        # A long prompt's pass needs tens of MB of intermediate tensors that a decode step does
        # not: no arena to keep them (see also release_freed_memory).
        manifest, session, tokenizer, _ = open_model(
            model_dir, task="generation", threads=threads, arena=False, spinning=True
        )
        (q, q_mapping), (scales, scales_mapping) = (_map_table(model_dir / name) for name in EMBEDDING_FILES)
        head_block_norms = np.load(model_dir / HEAD_BLOCK_NORMS, allow_pickle=False)
        release_freed_memory()  # the model file's bytes, parsed and copied into the session
        return cls(
            model_dir=model_dir,
            manifest=manifest,
            session=session,
            tokenizer=tokenizer,
            embedding=(q, scales),
            embedding_mappings=(q_mapping, scales_mapping),
            head_block_norms=head_block_norms,
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

    def _weights(self, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """(len(ids), hidden): the Q8_0 rows of ``ids`` de-quantised (d·q, exact in fp32). The token
        embedding and, tied to it, the vocabulary projection."""
        rows = np.asarray(ids, dtype=np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= self.vocab_size):
            raise ValueError(f"token ids must be in [0, {self.vocab_size})")
        q = self._embedding_q[rows].astype(np.float32).reshape(len(rows), -1, EMBEDDING_BLOCK)
        return (q * self._embedding_scales[rows][..., None]).reshape(len(rows), self._hidden)

    def _embed(self, ids: Sequence[int]) -> np.ndarray:
        return self._weights(ids)[None]

    def _head_sigma(self, last_position: np.ndarray) -> float:
        """The largest standard deviation of any logit's error from the head's int8 rounding of
        ``last_position``: each block of 32 is rounded in steps of max|x|/127."""
        steps = np.abs(last_position.reshape(-1, EMBEDDING_BLOCK)).max(axis=1).astype(np.float64) / 127
        return float(np.sqrt(self._head_block_norms @ (steps * steps / 12)))

    def teacher_forced_logits(self, prompt_ids: Sequence[int], continuation: Sequence[int]) -> np.ndarray:
        """Logits predicting each token of ``continuation``, fed one step at a time through the cache
        exactly as ``stream`` does (``_scores``, without penalties). Row i predicts continuation[i].
        Used by the parity checks."""
        decoder = _Decoder(self, len(prompt_ids) + len(continuation), None)
        rows = [
            self._scores(*decoder.forward(ids), NO_PENALTIES)
            for ids in [prompt_ids, *([token] for token in continuation[:-1])]
        ]
        return np.stack(rows)

    # ------------------------------------------------------------ decoding

    def first_departure(self, prompt_ids: Sequence[int], continuation: Sequence[int]) -> int | None:
        """Where greedy decoding, as answers are decoded (drafts and all), first leaves
        ``continuation``, a reference's tokens (ending with <|im_end|> when it stopped), or None
        when it gives exactly those. Used by the build's and the verifier's parity checks."""
        wanted = [token for token in continuation if token != self.end_token_id]
        options = DecodeOptions(max_new_tokens=len(continuation), repetition_penalty=1.0, no_repeat_ngram=0)
        decoded = self.token_ids(prompt_ids, options)
        return next((i for i, (got, want) in enumerate(zip_longest(decoded, wanted)) if got != want), None)

    def token_ids(
        self,
        prompt_ids: Sequence[int],
        options: DecodeOptions = DecodeOptions(),
        stop: threading.Event | None = None,
    ) -> Iterator[int]:
        """Generated token ids, up to (not including) <|im_end|> or ``max_new_tokens``.

        Each pass feeds the last token and, when the prompt or the answer so far has the same last
        ``DRAFT_MATCH`` tokens earlier, a draft of the tokens that followed there: one pass scores
        them all, and the answer takes them for as long as they are the tokens it chooses anyway
        (prompt lookup decoding). A grounded answer copies its passages, so it often takes several
        tokens a pass; the tokens are those of one token a pass, as is the random draw of each."""
        if not prompt_ids:
            raise ValueError("empty prompt")
        if options.draft_tokens < 0:
            raise ValueError(f"draft_tokens must be >= 0, got {options.draft_tokens}")
        room = self.context_length - len(prompt_ids)
        if room < 1:
            raise PromptTooLong(
                f"the prompt has {len(prompt_ids)} tokens; the model's context is {self.context_length}"
            )
        budget = min(options.max_new_tokens, room)
        rng = np.random.default_rng(options.seed)
        generated: list[int] = []
        run_options = stop.run_options if isinstance(stop, StopSignal) else None
        # The last generated token is never fed back, so the cache holds at most this many.
        decoder = _Decoder(self, len(prompt_ids) + budget - 1, run_options, positions=options.draft_tokens + 1)
        scores = np.empty(self.vocab_size, dtype=np.float32)  # one buffer, not an allocation per step
        lookup = _Lookup(prompt_ids) if options.draft_tokens > 0 else None
        try:
            step_ids, draft = list(prompt_ids), []
            while len(generated) < budget:
                if stop is not None and stop.is_set():
                    return
                try:
                    if draft:
                        approximate, last_positions = decoder.verify(step_ids + draft)
                    else:
                        approximate, last_positions = (rows[None] for rows in decoder.forward(step_ids))
                except Exception:
                    if stop is not None and stop.is_set():
                        return  # the run was terminated by the stop signal
                    raise
                if not generated:
                    release_freed_memory()
                for taken, (logits, last_position) in enumerate(zip(approximate, last_positions, strict=True)):
                    penalties = _Penalties.after(generated, options)
                    self._scores(logits, last_position, penalties, temperature=options.temperature, out=scores)
                    token = self._choose(scores, options, rng)
                    if token == self.end_token_id:
                        return
                    generated.append(token)
                    if lookup is not None:
                        lookup.append(token)
                    yield token
                    if taken == len(draft) or token != draft[taken] or len(generated) == budget:
                        break
                # The pass cached the last token and the whole draft; the answer holds `taken` of it.
                decoder.rewind(decoder.length - (len(draft) - taken))
                step_ids = [token]
                limit = min(options.draft_tokens, budget - len(generated) - 1, decoder.capacity - decoder.length - 1)
                draft = lookup.draft(limit) if lookup is not None and limit > 0 else []
        finally:
            del decoder  # its cache
            release_freed_memory()
            self._release_embedding_pages()

    def _release_embedding_pages(self) -> None:
        """Unmap the embedding rows an answer read (its tokens, the re-scored candidates: up to the
        whole 32 MB table over many answers) from this process; the page cache keeps them for the
        next. Safe while other threads read the table: a released page maps in again on access."""
        for mapping in self._embedding_mappings:
            mapping.madvise(mmap.MADV_DONTNEED)

    def _scores(
        self,
        approximate: np.ndarray,
        last_position: np.ndarray,
        penalties: _Penalties,
        *,
        temperature: float = 0.0,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """What ``_choose`` picks from (into ``out`` when given): the penalised logits, in fp32 for
        every token the head's int8 rounding could have put behind the best one, so the best is the
        fp32 model's, and, when sampling, for every token within ``SAMPLING_SPAN`` temperatures of it.
        The others keep the head's logits (off by up to a few tenths).

        A token is re-scored when its penalised approximate score is within twice the error margin of
        the best one; the penalty stretches the margin as much as it scales a score."""
        scores = np.empty_like(approximate) if out is None else out
        np.copyto(scores, approximate)
        penalties.apply(scores)
        margin = 2 * HEAD_MARGIN_SIGMAS * penalties.stretch * self._head_sigma(last_position)
        if temperature > 0:
            margin += SAMPLING_SPAN * temperature
        candidates = np.flatnonzero(scores >= scores.max() - margin)
        scores[candidates] = penalties.apply(self._weights(candidates) @ last_position, candidates)
        return scores

    @staticmethod
    def _choose(logits: np.ndarray, options: DecodeOptions, rng) -> int:
        if options.temperature <= 0:
            return int(np.argmax(logits))
        scaled = (logits.astype(np.float64) - logits.max()) / options.temperature
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
        *,
        generated: list[int] | None = None,
    ) -> Iterator[str]:
        """Text pieces as they are generated; never a partial UTF-8 character. Each generated
        token id is appended to ``generated`` when given (callers count the tokens there)."""
        generated = [] if generated is None else generated
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
