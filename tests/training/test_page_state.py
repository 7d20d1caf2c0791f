"""The Experiments page's handlers, called as the browser would call them: viewers list,
filter, sort, page, open and compare runs; only staff start and cancel them, even when a
viewer sends those events themselves."""

import app.app  # noqa: F401 - builds every page and state
from app.core.db import session_scope
from app.datasets import service as datasets_service
from app.training import service
from app.training.page import experiments_page
from app.training.state import ALL, PAGE_SIZE, ExperimentsState
from tests.datasets.test_page_state import PickedFile
from tests.predict.test_state import send, signed_in
from tests.training.conftest import RUNS, as_csv, sample, store_dataset_versions, store_run

VIEWER_HANDLERS = {
    "load",
    "filter_runs",
    "sort_runs",
    "flip_order",
    "previous_page",
    "next_page",
    "mark_for_compare",
    "compare",
    "close_comparison",
    "open_run",
    "close_run",
}
STAFF_HANDLERS = {
    "cancel_run",
    "pick_dataset",
    "pick_version",
    "pick_text_column",
    "pick_label_column",
    "name_model",
    "choose_holdout",
    "choose_seed",
    "start_run",
}


def test_every_handler_checks_its_role():
    roles = {
        name: handler.fn.minimum_role.value
        for name, handler in ExperimentsState.event_handlers.items()
        if hasattr(handler.fn, "minimum_role")
    }
    assert roles == {**dict.fromkeys(VIEWER_HANDLERS, "viewer"), **dict.fromkeys(STAFF_HANDLERS, "staff")}


def test_the_page_renders_with_its_elements():
    rendered = str(experiments_page().render())
    for element in (
        "new-run-dataset",
        "new-run-version",
        "new-run-text-column",
        "new-run-label-column",
        "new-run-model-name",
        "new-run-holdout",
        "new-run-seed",
        "new-run-start",
        "experiments-runs",
        "experiments-compare",
        "experiments-comparison",
        "run-detail",
        "run-confusion-matrix",
        "run-per-class-chart",
    ):
        assert element in rendered, element


async def upload_news(staff, settings, bbc_sample) -> None:
    texts, labels = sample(bbc_sample.texts, bbc_sample.labels, rows=40)
    data = as_csv(
        [(text, label, len(text)) for text, label in zip(texts, labels, strict=True)], ("text", "topic", "size")
    )
    await datasets_service.upload_dataset(
        actor=staff, settings=settings, name="news", upload=PickedFile("news.csv", data)
    )


async def test_staff_start_a_run_from_the_form_and_viewers_see_it_but_cannot_start_one(
    staff, viewer, settings, redis_url, bbc_sample
):
    await upload_news(staff, settings, bbc_sample)
    tab = signed_in(ExperimentsState, staff)
    await send(tab, ExperimentsState.load)
    assert (tab.form_datasets, tab.form_dataset, tab.form_versions) == (["news"], "news", ["1"])
    # Texts from the text columns only (the integer column is not offered); labels from any column.
    assert (tab.form_text_columns, tab.form_label_columns) == (["text", "topic"], ["text", "topic", "size"])
    assert (tab.form_text_column, tab.form_label_column) == ("text", "topic")
    await send(tab, ExperimentsState.pick_label_column, "not-a-column")
    assert tab.form_label_column == "topic"
    await send(tab, ExperimentsState.name_model, "topics")
    await send(tab, ExperimentsState.choose_holdout, "0.25")
    await send(tab, ExperimentsState.choose_seed, "4")
    toast = await send(tab, ExperimentsState.start_run)
    assert f"Training run {tab.runs[0].id} queued." in str(toast)
    assert [(row.dataset, row.model_name, row.params, row.status) for row in tab.runs] == [
        ("news v1", "topics", "holdout 0.25 · seed 4", "queued")
    ]
    assert tab.selected_id == tab.runs[0].id and tab.detail_status == "queued" and tab.detail_active

    await send(tab, ExperimentsState.choose_holdout, "most")
    refused = await send(tab, ExperimentsState.start_run)
    assert "The holdout fraction must be a number like 0.2; got 'most'." in str(refused)
    await send(tab, ExperimentsState.choose_holdout, "0.9")
    refused = await send(tab, ExperimentsState.start_run)
    assert "The holdout fraction must be between 0.05 and 0.5; got 0.9." in str(refused)

    looker = signed_in(ExperimentsState, viewer)
    await send(looker, ExperimentsState.load)
    assert looker.total == 1 and looker.runs[0].started_by == staff.email
    assert looker.form_datasets == []  # the form is for staff
    looker.form_dataset, looker.form_version, looker.form_model_name = "news", "1", "mine"
    looker.form_text_column, looker.form_label_column = "text", "topic"
    refused = await send(looker, ExperimentsState.start_run)
    assert "This needs the staff role; you are viewer." in str(refused)
    await send(looker, ExperimentsState.open_run, tab.runs[0].id)
    refused = await send(looker, ExperimentsState.cancel_run)
    assert "This needs the staff role; you are viewer." in str(refused)
    await send(looker, ExperimentsState.load)
    assert looker.total == 1 and looker.runs[0].status == "queued"

    await send(tab, ExperimentsState.cancel_run)
    assert tab.detail_status == "cancelled" and not tab.detail_active
    assert tab.runs[0].status == "cancelled"


async def test_viewers_filter_sort_page_and_compare_thousands_of_runs(many_runs, viewer):
    tab = signed_in(ExperimentsState, viewer)
    await send(tab, ExperimentsState.load)
    assert (tab.total, tab.page, tab.page_count, len(tab.runs)) == (RUNS, 1, RUNS // PAGE_SIZE, PAGE_SIZE)
    assert tab.dataset_options == [ALL, "mail", "news"]
    assert tab.model_options == [ALL, "model-0", "model-1", "model-2", "model-3"]
    assert [option.label for option in tab.starter_options] == ["Anyone", "alice@x.io", "bob@x.io"]

    await send(tab, ExperimentsState.filter_runs, "status", "succeeded")
    assert tab.total == RUNS // 5 and {row.status for row in tab.runs} == {"succeeded"}
    await send(tab, ExperimentsState.filter_runs, "dataset", "news")
    news_succeeded = [run for run in many_runs if run["status"] == "succeeded" and run["dataset"] == "news"]
    assert tab.total == len(news_succeeded)
    await send(tab, ExperimentsState.filter_runs, "dataset", "no-such-choice")  # not offered: ignored
    assert tab.filter_dataset == "news"

    await send(tab, ExperimentsState.sort_runs, "macro_f1")
    best = sorted((run["macro_f1"] for run in news_succeeded), reverse=True)
    assert [row.macro_f1 for row in tab.runs] == [f"{score:.4f}" for score in best[:PAGE_SIZE]]
    await send(tab, ExperimentsState.next_page)
    assert tab.page == 2 and [row.macro_f1 for row in tab.runs] == [
        f"{score:.4f}" for score in best[PAGE_SIZE : 2 * PAGE_SIZE]
    ]
    await send(tab, ExperimentsState.flip_order)
    assert tab.page == 1 and tab.runs[0].macro_f1 == f"{min(best):.4f}"
    await send(tab, ExperimentsState.previous_page)
    assert tab.page == 1

    first, second, third = (row.id for row in tab.runs[:3])
    await send(tab, ExperimentsState.mark_for_compare, first, True)
    await send(tab, ExperimentsState.mark_for_compare, second, True)
    await send(tab, ExperimentsState.mark_for_compare, third, True)  # a third mark replaces the oldest
    assert tab.compare_ids == [second, third]
    await send(tab, ExperimentsState.mark_for_compare, second, False)
    assert tab.compare_ids == [third]
    toast = await send(tab, ExperimentsState.compare)
    assert "Tick two runs" in str(toast)
    await send(tab, ExperimentsState.mark_for_compare, first, True)
    await send(tab, ExperimentsState.compare)
    assert (tab.compare_a, tab.compare_b) == (third, first)
    fields = {row.field for row in tab.differences}
    assert "seed" in fields and "dataset" not in fields and "text column" not in fields


async def test_a_finished_run_opens_with_its_scores_and_charts(staff, viewer, two_reports):
    with session_scope() as db_session:
        (_, _, version_id), *_ = store_dataset_versions(db_session, staff.id)
    report = two_reports[0]
    run_id = store_run(staff, version_id, report, seed=0)
    tab = signed_in(ExperimentsState, viewer)
    await send(tab, ExperimentsState.load)
    await send(tab, ExperimentsState.open_run, run_id)
    assert tab.detail_status == "succeeded" and not tab.detail_active
    assert tab.detail_title == f"Run {run_id} · mail v1 · text → label"
    assert tab.detail_macro_f1 == f"{report['metrics']['macro_f1']:.4f}"
    assert tab.detail_baseline == f"{report['baseline']['holdout']['macro_f1']:.4f}"
    assert [(c.name, c.chosen) for c in tab.candidates] == [("tfidf-lr", True), ("embedding-lr", False)]
    assert tab.candidates[1].note == "no embedder available"
    per_class = report["metrics"]["per_class"]
    assert tab.class_scores == [
        {"label": label, "precision": round(s["precision"] * 100, 1), "recall": round(s["recall"] * 100, 1)}
        for label, s in per_class.items()
    ]
    assert tab.matrix_labels == ["fresh", "rotten"]
    assert [[cell.count for cell in row.cells] for row in tab.matrix_rows] == report["metrics"]["confusion_matrix"]
    assert sum(cell.count for row in tab.matrix_rows for cell in row.cells) == report["split"]["holdout_rows"]
    assert tab.detail_parity.startswith("ONNX export: 0 of ")
    await send(tab, ExperimentsState.close_run)
    assert tab.selected_id == 0
    with session_scope() as db_session:
        assert service.get_run(db_session=db_session, actor=viewer, run_id=run_id).status == "succeeded"
