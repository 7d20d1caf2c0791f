"""The Experiments list with thousands of runs (inserted directly, as years of use would leave
them): server-side pages with the total, every filter, every sort with unfinished runs last;
and comparing two real runs shows only what differs."""

import pytest

from app.core.db import session_scope
from app.core.errors import InvalidInput
from app.training import service
from tests.training.conftest import RUNS, store_dataset_versions, store_run


def listing(actor, **query) -> service.RunPage:
    with session_scope() as db_session:
        return service.list_runs(db_session=db_session, actor=actor, **query)


def test_pages_come_from_the_server_with_the_total_newest_first(many_runs, viewer):
    newest_first = [run["id"] for run in reversed(many_runs)]
    first = listing(viewer)
    assert (first.total, first.page, first.page_size) == (RUNS, 1, service.DEFAULT_PAGE_SIZE)
    assert [view.run.id for view in first.runs] == newest_first[: service.DEFAULT_PAGE_SIZE]
    last = listing(viewer, page=RUNS // 100, page_size=100)
    assert [view.run.id for view in last.runs] == newest_first[-100:]
    assert listing(viewer, page=RUNS // 100 + 1, page_size=100).runs == []
    capped = listing(viewer, page_size=10_000)
    assert capped.page_size == service.MAX_PAGE_SIZE and len(capped.runs) == service.MAX_PAGE_SIZE
    view, expected = first.runs[0], many_runs[-1]
    assert (view.dataset, view.dataset_version, view.started_by, view.status) == (
        expected["dataset"],
        expected["version"],
        expected["starter"],
        expected["status"],
    )


def test_every_sort_orders_all_runs_with_those_lacking_the_figure_last(many_runs, viewer):
    for sort, column, descending in [
        (sort, column, descending)
        for sort, column in (("macro_f1", "macro_f1"), ("accuracy", "accuracy"), ("duration", "duration_seconds"))
        for descending in (True, False)
    ]:
        having = sorted((run[column] for run in many_runs if run[column] is not None), reverse=descending)
        top = listing(viewer, sort=sort, descending=descending, page_size=100)
        assert [getattr(view.run, column) for view in top.runs] == having[:100], (sort, descending)
        pages = -(-RUNS // 100)
        bottom = listing(viewer, sort=sort, descending=descending, page=pages, page_size=100)
        assert all(getattr(view.run, column) is None for view in bottom.runs)


def test_filters_combine_and_count_on_the_server(many_runs, viewer):
    def expected(**wanted) -> list[int]:
        return sorted(
            (run["id"] for run in many_runs if all(run[key] == value for key, value in wanted.items())), reverse=True
        )

    starter_id = listing(viewer, page_size=1).runs[0].run.created_by
    starter_email = many_runs[-1]["starter"]
    cases = [
        ({"status": "succeeded"}, {"status": "succeeded"}),
        ({"dataset": "mail"}, {"dataset": "mail"}),
        ({"dataset": "mail", "version": 2}, {"dataset": "mail", "version": 2}),
        ({"model_name": "model-1", "chosen": "embedding-lr"}, {"model_name": "model-1", "chosen": "embedding-lr"}),
        ({"created_by": starter_id, "status": "failed"}, {"starter": starter_email, "status": "failed"}),
        (
            {"dataset": "news", "model_name": "model-3", "status": "queued"},
            {"dataset": "news", "model_name": "model-3", "status": "queued"},
        ),
    ]
    for query, wanted in cases:
        ids = expected(**wanted)
        page = listing(viewer, page_size=100, **query)
        assert page.total == len(ids) > 0, query
        assert [view.run.id for view in page.runs] == ids[:100], query
    assert listing(viewer, dataset="nothing-like-it").total == 0
    for query, message in (
        ({"sort": "name"}, "Runs sort by created_at, macro_f1, accuracy, duration; not by 'name'."),
        ({"status": "lost"}, "Unknown status 'lost'"),
        ({"chosen": "forest"}, "Unknown candidate 'forest'"),
    ):
        with pytest.raises(InvalidInput, match=message):
            listing(viewer, **query)


async def test_the_list_api_pages_filters_and_sorts(many_runs, client, viewer):
    from tests.conftest import sign_in

    headers = await sign_in(client, viewer.email)
    response = await client.get(
        "/api/v1/training-runs",
        headers=headers,
        params={"status": "succeeded", "sort": "macro_f1", "order": "asc", "page": 2, "page_size": 50},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    scores = sorted(run["macro_f1"] for run in many_runs if run["status"] == "succeeded")
    assert (body["total"], body["page"], body["page_size"]) == (RUNS // 5, 2, 50)
    assert [run["macro_f1"] for run in body["runs"]] == scores[50:100]
    assert {run["status"] for run in body["runs"]} == {"succeeded"}
    too_big = await client.get("/api/v1/training-runs", headers=headers, params={"page_size": 1000})
    assert too_big.status_code == 422 and "page_size" in too_big.json()["detail"]


def test_comparing_two_runs_shows_only_what_differs(staff, viewer, two_reports):
    with session_scope() as db_session:
        (_, _, version_id), *_ = store_dataset_versions(db_session, staff.id)
    first, second = (store_run(staff, version_id, report, seed) for seed, report in enumerate(two_reports))
    with session_scope() as db_session:
        comparison = service.compare_runs(db_session=db_session, actor=viewer, a=first, b=second)
        same = service.compare_runs(db_session=db_session, actor=viewer, a=first, b=first)
    fields = {(item.section, item.field): (item.a, item.b) for item in comparison.differences}
    assert fields[("params", "seed")] == (0, 1)
    # What both runs share is left out: data, columns, model name, split sizes, labels, the winner.
    for shared in ("dataset", "text column", "label column", "model name", "holdout fraction"):
        assert ("params", shared) not in fields
    for shared in ("labels", "training rows", "holdout rows", "chosen", "status"):
        assert ("metrics", shared) not in fields
    # Another seed holds out other rows: the scores differ, and every one shown does differ.
    assert ("metrics", "macro-F1") in fields
    assert any(section == "per_class" for section, _ in fields)
    for (section, name), (a, b) in fields.items():
        assert round(a, 4) != round(b, 4) if isinstance(a, float) else a != b, (section, name)
    assert [item.section for item in comparison.differences] == sorted(
        (item.section for item in comparison.differences), key=["params", "metrics", "per_class"].index
    )
    assert same.differences == []
