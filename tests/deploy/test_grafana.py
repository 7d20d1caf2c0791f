"""deploy/grafana/: the provisioning files Grafana reads, and a dashboard whose every query
finds its metric, with the labels it uses, in what Prometheus scrapes from Strata's /metrics
(the in-process API after real requests, with a real worker's figures added up in it)."""

import asyncio
import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from app.core.metrics import MODEL_DRIFT_SCORE, OPEN_ALERTS
from jobs import service
from jobs.tables import JobStatus
from models.classifier import CLASSIFIER_NAME
from tests.conftest import REPO, sign_in
from tests.jobs.test_worker import wait_for_status
from tests.predict.conftest import builtin_models  # noqa: F401 - the fixture

GRAFANA = REPO / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "strata.json"
# Where Grafana finds deploy/grafana once mounted (as the provisioning files say).
PROVISIONING_MOUNT = Path("/etc/grafana/provisioning")

TOKEN = re.compile(
    r"""(?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<matchers>\{[^}]*\})
      | (?P<range>\[[^\]]*\])
      | (?P<number>[0-9][0-9.]*(?:e[+-]?[0-9]+)?)
      | (?P<name>[A-Za-z_:][A-Za-z0-9_:]*)
      | (?P<punct>\S)
      | \s+""",
    re.VERBOSE,
)
MATCHER = re.compile(r"""([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)\s*["']""")
AGGREGATIONS = {"sum", "avg", "min", "max", "count", "group", "stddev", "stdvar", "topk", "bottomk", "quantile"}
LABEL_LISTS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}


@dataclass(frozen=True)
class Selector:
    metric: str
    labels: frozenset[str]


def _tokens(expr: str) -> list[tuple[str, str]]:
    return [(match.lastgroup, match.group()) for match in TOKEN.finditer(expr) if match.lastgroup]


def _closing(tokens: list[tuple[str, str]], opening: int) -> int:
    depth = 0
    for index in range(opening, len(tokens)):
        depth += {"(": 1, ")": -1}.get(tokens[index][1], 0)
        if depth == 0:
            return index
    raise ValueError("unbalanced parentheses")


def _is_call(tokens: list[tuple[str, str]], index: int) -> bool:
    return index + 1 < len(tokens) and tokens[index + 1][1] == "("


def selectors(expr: str) -> list[Selector]:
    """The series selectors of a PromQL expression, each with the labels it needs: those its
    matchers name and those of the `by (...)` of every aggregation around it."""
    tokens = _tokens(expr)
    label_lists: set[int] = set()  # indexes of tokens inside by (...), on (...), ...
    scopes: list[tuple[int, int, set[str]]] = []  # an aggregation's argument and its by labels
    for index, (kind, text) in enumerate(tokens):
        if kind == "name" and text in LABEL_LISTS and _is_call(tokens, index):
            label_lists.update(range(index + 1, _closing(tokens, index + 1) + 1))
    for index, (kind, text) in enumerate(tokens):
        if kind != "name" or text not in AGGREGATIONS or index in label_lists:
            continue
        labels: set[str] = set()
        argument = index + 1
        if tokens[argument][1] in ("by", "without"):
            end = _closing(tokens, argument + 1)
            if tokens[argument][1] == "by":
                labels |= {t for k, t in tokens[argument + 2 : end] if k == "name"}
            argument = end + 1
        end = _closing(tokens, argument)
        if end + 2 < len(tokens) and tokens[end + 1][1] == "by":
            labels |= {t for k, t in tokens[end + 3 : _closing(tokens, end + 2)] if k == "name"}
        scopes.append((argument, end, labels))
    found = []
    for index, (kind, text) in enumerate(tokens):
        if kind != "name" or index in label_lists or text in KEYWORDS | LABEL_LISTS | AGGREGATIONS:
            continue
        if _is_call(tokens, index):
            continue
        labels = {label for start, end, by in scopes if start < index < end for label in by}
        if index + 1 < len(tokens) and tokens[index + 1][0] == "matchers":
            labels |= set(MATCHER.findall(tokens[index + 1][1])) - {"__name__"}
        found.append(Selector(text, frozenset(labels)))
    return found


def dashboard_queries(dashboard: dict) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every target of every panel, rows' nested panels included."""
    queries = []
    for panel in dashboard["panels"]:
        for inner in [panel, *panel.get("panels", [])]:
            queries += [(inner["title"], target["expr"]) for target in inner.get("targets", [])]
    return queries


def exposed_labels(exposition: str) -> dict[str, set[str]]:
    """Every sample name /metrics shows (histograms as _bucket, _sum and _count, counters with
    _total), with the label names its samples carry."""
    exposed: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            exposed.setdefault(sample.name, set()).update(sample.labels)
    return exposed


def unmet_queries(dashboard: dict, exposition: str) -> list[str]:
    exposed = exposed_labels(exposition)
    problems = []
    for title, expr in dashboard_queries(dashboard):
        for selector in selectors(expr):
            if selector.metric not in exposed:
                problems.append(f"{title!r} queries {selector.metric}, which /metrics does not show")
            elif missing := selector.labels - exposed[selector.metric]:
                problems.append(f"{title!r} uses labels {sorted(missing)} that {selector.metric} does not have")
    return problems


def load_dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def provisioned_datasource() -> dict:
    [datasource] = yaml.safe_load((GRAFANA / "datasources" / "prometheus.yaml").read_text())["datasources"]
    return datasource


def test_promql_selectors_are_read_with_the_labels_their_query_uses():
    quantile = "histogram_quantile(0.95, sum by (le, route) (rate(strata_http_request_duration_seconds_bucket[5m])))"
    assert selectors(quantile) == [Selector("strata_http_request_duration_seconds_bucket", frozenset({"le", "route"}))]
    ratio = (
        'sum(rate(strata_prediction_cache_total{result="hit"}[$__rate_interval])) '
        "/ sum(rate(strata_prediction_cache_total[$__rate_interval])) by (result)"
    )
    assert selectors(ratio) == [
        Selector("strata_prediction_cache_total", frozenset({"result"})),
        Selector("strata_prediction_cache_total", frozenset({"result"})),
    ]
    assert selectors("max(strata_job_queue_depth) > 1e-9") == [Selector("strata_job_queue_depth", frozenset())]


@pytest.mark.usefixtures("builtin_models")
async def test_every_dashboard_query_finds_its_metric_and_labels_in_metrics(client, workers, staff, viewer):
    # A worker runs a job (this ingestion, without its document, fails at once in the worker).
    workers()
    job = await service.enqueue(kind="ingest_document", params={}, actor=staff, max_attempts=1)
    await asyncio.to_thread(wait_for_status, job.id, JobStatus.failed, JobStatus.succeeded)
    # Traffic, errors, predictions (inference, batching, the cache) through the API.
    headers = await sign_in(client, "viewer@x.io")
    assert (await client.get("/api/v1/models", headers=headers)).status_code == 200
    assert (await client.get("/api/v1/no-such-route", headers=headers)).status_code == 404
    for _ in range(2):
        predicted = await client.post(
            f"/api/v1/models/{CLASSIFIER_NAME}/predict", headers=headers, json={"inputs": "The election result is in."}
        )
        assert predicted.status_code == 200, predicted.text
    # Drift and alerts, set as the monitoring domain sets them.
    MODEL_DRIFT_SCORE.labels(model=CLASSIFIER_NAME, version="1", statistic="psi").set(0.02)
    OPEN_ALERTS.labels(kind="drift").set(0)

    exposition = (await client.get("/metrics")).text
    dashboard = load_dashboard()
    assert unmet_queries(dashboard, exposition) == []

    # The check bites: a made-up metric, and a label a real metric does not have.
    dashboard["panels"].append(
        {
            "title": "Broken",
            "targets": [
                {"refId": "A", "expr": "sum(rate(strata_made_up_total[5m]))"},
                {"refId": "B", "expr": "sum by (colour) (rate(strata_http_requests_total[5m]))"},
            ],
        }
    )
    assert unmet_queries(dashboard, exposition) == [
        "'Broken' queries strata_made_up_total, which /metrics does not show",
        "'Broken' uses labels ['colour'] that strata_http_requests_total does not have",
    ]


def test_the_dashboard_covers_strata_on_the_provisioned_prometheus():
    dashboard = load_dashboard()
    assert dashboard["uid"] and dashboard["title"] == "Strata" and dashboard["id"] is None
    assert isinstance(dashboard["schemaVersion"], int)
    panels = dashboard["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels)
    uid = provisioned_datasource()["uid"]
    for panel in panels:
        x, y, w, h = (panel["gridPos"][key] for key in ("x", "y", "w", "h"))
        assert 0 <= x and 0 < w and x + w <= 24 and y >= 0 and h > 0, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["type"] in ("timeseries", "stat"), panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": uid}, panel["title"]
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert ref_ids and len(set(ref_ids)) == len(ref_ids), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == uid and target["expr"].strip(), panel["title"]
    queried = {selector.metric for _, expr in dashboard_queries(dashboard) for selector in selectors(expr)}
    assert queried >= {
        "strata_http_requests_total",  # traffic and errors
        "strata_http_request_duration_seconds_bucket",  # latency
        "strata_jobs",
        "strata_job_runs_total",
        "strata_job_queue_depth",
        "strata_model_inference_duration_seconds_bucket",
        "strata_serving_batch_size_bucket",
        "strata_predictions_total",
        "strata_prediction_cache_total",
        "strata_model_drift_score",
        "strata_open_alerts",
    }


def test_provisioning_points_grafana_at_prometheus_and_the_dashboard_folder():
    datasource = provisioned_datasource()
    assert datasource["type"] == "prometheus" and datasource["access"] == "proxy"
    assert datasource["url"].startswith("http")
    [provider] = yaml.safe_load((GRAFANA / "dashboards" / "strata.yaml").read_text())["providers"]
    assert provider["type"] == "file"
    folder = GRAFANA / Path(provider["options"]["path"]).relative_to(PROVISIONING_MOUNT)
    assert DASHBOARD in folder.glob("*.json")
