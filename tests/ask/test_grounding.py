"""The grounding checker on real cases: the Python FAQ's answer on making a script executable
(Debian python3.11-doc) as the passage, and answers a small model might write from it."""

import pytest

from app.core import ml
from app.core.settings import get_settings
from models.grounding import check_grounding, sentence_spans

# The Python 3.11 FAQ, "How do I make a Python script executable on Unix?" (faq/library.html).
EXECUTABLE_FAQ = (
    "You need to do two things: the script file’s mode must be executable and the first line must begin with #! "
    "followed by the path of the Python interpreter. The first is done by executing chmod +x scriptfile or perhaps "
    "chmod 755 scriptfile. The second can be done in a number of ways. The most straightforward way is to write "
    "#!/usr/local/bin/python as the very first line of your file, using the pathname for where the Python "
    "interpreter is installed on your platform."
)
# The same FAQ, "Why are Python strings immutable?" (faq/design.html): a second, unrelated passage.
STRINGS_FAQ = (
    "There are several advantages. One is performance: knowing that a string is immutable means we can allocate "
    "space for it at creation time, and the storage requirements are fixed and unchanging."
)
COPIED = "The first is done by executing chmod +x scriptfile or perhaps chmod 755 scriptfile [1]."
INVENTED = "Run python --make-executable script.py to register the script with the system launcher [1]."


def check(answer: str, passages=(EXECUTABLE_FAQ, STRINGS_FAQ), answer_threshold: float | None = None):
    settings = get_settings()
    return check_grounding(
        answer,
        list(passages),
        ml.embed,
        sentence_threshold=settings.grounding_sentence_threshold,
        answer_threshold=settings.grounding_answer_threshold if answer_threshold is None else answer_threshold,
    )


def test_a_sentence_copied_from_a_passage_is_supported_and_an_invented_command_is_not():
    report = check(f"{COPIED} {INVENTED}")
    copied, invented = report.sentences
    assert (copied.text, copied.supported) == (COPIED, True)
    assert copied.similarity > 0.95 and copied.overlap == 1.0
    assert (invented.text, invented.supported) == (INVENTED, False)
    assert invented.score < copied.score
    # Half the claims hold: weighed by their content words (8 and 10), the support is 8/18.
    assert report.support == pytest.approx(8 / 18, abs=1e-4)
    assert report.flagged is (report.support < get_settings().grounding_answer_threshold)


def test_an_answer_the_passages_hold_passes_and_one_they_do_not_is_flagged():
    held = check(f"{COPIED} One is performance: knowing that a string is immutable means we can allocate space for it.")
    assert held.support == 1.0 and not held.flagged
    invented = check(f"{INVENTED} Then use the pyexec tool to compile it into a binary for Windows.")
    assert invented.support == 0.0 and invented.flagged
    # Nor does a sentence about strings stand on an unrelated passage alone.
    assert check(held.sentences[1].text, passages=[EXECUTABLE_FAQ]).flagged


def test_citations_stay_with_their_sentence_and_spans_point_into_the_answer():
    answer = f"{COPIED} Yes. [2]\nIt also works with chmod 755 scriptfile [1][2]"
    report = check(answer)
    assert [answer[s.start : s.end] for s in report.sentences] == [s.text for s in report.sentences]
    assert [s.text for s in report.sentences] == [COPIED, "Yes. [2]", "It also works with chmod 755 scriptfile [1][2]"]
    # "Yes." claims nothing to check: it is kept, supported, and weighs nothing.
    assert report.sentences[1].supported and report.sentences[1].score == 0.0
    text = "Use it, e.g. chmod is used. Then run it."
    assert [text[a:b] for a, b in sentence_spans(text)] == ["Use it, e.g. chmod is used.", "Then run it."]


def test_an_answer_with_nothing_to_check_is_not_flagged():
    report = check("Yes. [1]")
    assert report.support == 1.0 and not report.flagged
