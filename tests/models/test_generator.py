"""The built chat model through the torch-free runtime decode loop (models.generator)."""

from __future__ import annotations

import threading

import pytest

from models.generator import IM_START, DecodeOptions, Generator, StopSignal, render_chat
from models.manifest import GENERATOR_NAME
from models.verify import verify_model


@pytest.fixture(scope="module")
def generator(models_dir, built_manifests) -> Generator:
    return Generator.load(models_dir / GENERATOR_NAME)


def test_build_recorded_greedy_parity_with_pytorch(built_manifests):
    manifest = next(m for m in built_manifests if m.name == GENERATOR_NAME)
    assert manifest.task == "generation"
    assert manifest.greedy_agreement == 1.0
    assert manifest.parity.min_cosine >= manifest.parity.threshold >= 0.999
    assert manifest.exporter["gguf"] and manifest.exporter["torch"]


def test_verify_replays_pytorch_tokens_and_measures_speed(models_dir, built_manifests):
    report = verify_model(models_dir / GENERATOR_NAME)
    assert report["passed"], report
    assert report["greedy_agreement"] == 1.0
    assert report["tokens_per_s"] > 0 and report["time_to_first_token_ms"] > 0


def test_chat_prompt_has_one_start_token_per_turn(generator):
    ids = generator.encode_chat([("user", "Hi")])
    start = generator.encode(IM_START)[0]
    assert ids[0] == start and ids[1] != start  # the GGUF tokenizer would have added a second one
    assert ids.count(start) == 3  # system, user, assistant
    assert generator.decode(ids) == render_chat([("user", "Hi")]).replace(IM_START, "").replace("<|im_end|>", "")


def test_grounded_answer_copies_the_fact(generator):
    ids = generator.encode_chat(
        [
            ("system", "Answer only from the passages and cite them like [1]."),
            (
                "user",
                "Passages:\n[1] The Lyon warehouse opens at 7:30 on weekdays.\n\nQuestion: When does the Lyon warehouse open?",
            ),
        ]
    )
    assert "7:30" in "".join(generator.stream(ids, DecodeOptions(max_new_tokens=40)))


def test_pieces_are_whole_characters_and_add_up_to_the_text(generator):
    ids = generator.encode_chat([("user", "Écris une phrase en français sur l'été, avec des emojis 🌞🏖️.")])
    tokens = list(generator.token_ids(ids, DecodeOptions(max_new_tokens=40)))
    pieces = list(generator.stream(ids, DecodeOptions(max_new_tokens=40)))
    assert "".join(pieces) == generator.decode(tokens)
    assert not any("\ufffd" in piece for piece in pieces)
    assert any(ord(ch) > 127 for ch in "".join(pieces))


def test_no_repeated_ngrams_even_when_asked_to_repeat(generator):
    ids = generator.encode_chat([("user", "List the days of the week, over and over again, at least five times.")])
    options = DecodeOptions(max_new_tokens=80, no_repeat_ngram=6)
    tokens = list(generator.token_ids(ids, options))
    grams = [tuple(tokens[i : i + 6]) for i in range(len(tokens) - 5)]
    assert len(grams) == len(set(grams))
    unguarded = list(generator.token_ids(ids, DecodeOptions(max_new_tokens=80, no_repeat_ngram=0)))
    unguarded_grams = [tuple(unguarded[i : i + 6]) for i in range(len(unguarded) - 5)]
    assert len(unguarded_grams) > len(set(unguarded_grams))  # the guard is what prevents the loop


def test_stop_event_ends_generation_at_the_next_token(generator):
    ids = generator.encode_chat([("user", "Write a long story about a lighthouse keeper.")])
    stop = threading.Event()
    produced = []
    for token in generator.token_ids(ids, DecodeOptions(max_new_tokens=200), stop):
        produced.append(token)
        if len(produced) == 3:
            stop.set()
    assert len(produced) == 3


def test_stop_signal_aborts_a_long_prompt_before_its_first_token(generator):
    # ~1900 prompt tokens: their single forward pass takes seconds on a 2-core CPU.
    text = " ".join(["Each delivery record lists the date, the driver, the goods and the signature."] * 110)
    ids = generator.encode_chat([("user", text + " Summarise the records.")])
    stop = StopSignal()
    timer = threading.Timer(0.2, stop.set)
    timer.start()
    produced = list(generator.token_ids(ids, DecodeOptions(max_new_tokens=5), stop))
    timer.join()
    # A plain Event would only be seen after the prompt pass, which yields a first token.
    assert produced == []
