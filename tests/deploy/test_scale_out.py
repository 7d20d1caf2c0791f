"""Scale-out, driven as users would: HAProxy in front of two web processes, two workers,
PostgreSQL, the machine's Redis and one Chroma server (tests/deploy/scale_topology.py).

A browser keeps working when its web process is killed; jobs spread over both workers and a
killed worker's job is finished by the other; predictions keep answering while a web restarts;
a registry change made through one web is seen by the other within ROUTE_TTL_SECONDS."""

import io
import os
import threading
import time
from collections import Counter

import httpx
import pytest
from playwright.sync_api import expect, sync_playwright

from app.predict.routing import ROUTE_TTL_SECONDS
from models.classifier import CLASSIFIER_NAME
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, sign_in
from tests.browser.test_dashboard import assert_not_reloaded, mark_page
from tests.conftest import TEST_ROOT, database_beside
from tests.deploy.scale_topology import ADMIN_EMAIL, ADMIN_PASSWORD, ScaleOut

pytestmark = [
    pytest.mark.stack,
    pytest.mark.timeout(900),
    pytest.mark.skipif(
        not os.environ.get("STRATA_TEST_DATABASE_URL"), reason="needs PostgreSQL (STRATA_TEST_DATABASE_URL)"
    ),
]

# The machine's Redis, one database number of its own (flushed when the topology starts).
REDIS_URL = os.environ.get("STRATA_TEST_SCALE_REDIS_URL", "redis://127.0.0.1:6379/5")
LABELS = {
    "labels": [
        {"name": "urgent", "description": "needs action today, outage, broken, emergency"},
        {"name": "routine", "description": "question, information, can wait, no hurry"},
    ]
}


@pytest.fixture(scope="module")
def topology():
    # The client loops below send more predictions a minute than one user may.
    with ScaleOut(
        TEST_ROOT / "scale-out",
        database_url=database_beside(os.environ["STRATA_TEST_DATABASE_URL"], "scale_out"),
        redis_url=REDIS_URL,
        STRATA_RATE_LIMIT_PER_MINUTE="100000",
    ) as topology:
        yield topology


@pytest.fixture(scope="module")
def admin(topology) -> dict:
    return {"Authorization": f"Bearer {topology.admin_token()}"}


def predict(base_url: str, headers: dict, texts: list[str], timeout: float = 60) -> httpx.Response:
    return httpx.post(
        f"{base_url}/api/v1/models/{CLASSIFIER_NAME}/predict", headers=headers, json={"inputs": texts}, timeout=timeout
    )


def test_a_browser_keeps_working_when_the_web_process_it_was_on_is_killed(topology):
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(base_url=topology.url)
        context.set_default_timeout(60_000)
        page = context.new_page()
        sign_in(page, ADMIN_EMAIL, ADMIN_PASSWORD)
        page.wait_for_url("**/")
        page.locator("#shell-user-role").filter(has_text="admin").wait_for()
        page.click("#nav-predict")
        result = page.locator("#predict-result-0 .result-label")
        page.fill("#predict-input", "The striker scored twice in the cup final.")
        page.click("#predict-submit")
        expect(result).to_have_text("sport")
        mark_page(page)

        # The proxy's cookie names the web process this browser (its websocket too) is on.
        killed = topology.web(next(c["value"] for c in context.cookies() if c["name"] == "STRATA_WEB"))
        killed.kill()
        try:
            # Without a reload: the websocket reconnects through the proxy to the other web and the
            # user, still signed in, navigates and gets data. (What the tab showed may start afresh:
            # see deploy/README.md, "a killed web".)
            page.click("#nav-models")
            expect(page.locator("#version-row-1 .version-stage")).to_have_text("production")
            page.click("#nav-predict")
            page.fill("#predict-input", "Parliament votes on the budget next week.")
            page.click("#predict-submit")
            expect(result).to_have_text("politics")
            expect(page.locator("#shell-user-role")).to_contain_text("admin")
            assert_not_reloaded(page)
            # On a quiet machine the user is done before the proxy's two failed checks (inter 1s, fall 2).
            topology.wait(
                lambda: topology.proxy_server_states()[killed.name] != "UP", 30, "the proxy to take the killed web out"
            )
            browser.close()
        finally:
            topology.restart(killed)


def test_jobs_spread_over_both_workers(topology, admin):
    created = httpx.post(f"{topology.url}/api/v1/knowledge", headers=admin, json={"name": "Spread"}, timeout=30)
    assert created.status_code == 201, created.text
    kb = created.json()["id"]
    files = [
        ("files", (f"note-{i}.txt", io.BytesIO(f"Note {i}: the plant in site {i} ships on day {i}.\n".encode() * 40)))
        for i in range(12)
    ]
    uploaded = httpx.post(f"{topology.url}/api/v1/knowledge/{kb}/documents", headers=admin, files=files, timeout=60)
    assert uploaded.status_code == 202, uploaded.text

    def all_ready():
        documents = httpx.get(f"{topology.url}/api/v1/knowledge/{kb}/documents", headers=admin, timeout=30).json()
        assert not [d["error"] for d in documents if d["status"] == "failed"]
        return len(documents) == 12 and all(d["status"] == "ready" for d in documents) and documents

    topology.wait(all_ready, 300, "12 documents ingested")
    # Each worker's own metrics (what Prometheus scrapes per machine) count what it ran.
    runs = {w.name: topology.worker_job_runs(w, "ingest_document") for w in topology.workers}
    assert sum(runs.values()) == 12 and all(count > 0 for count in runs.values()), runs
    hits = httpx.post(
        f"{topology.url}/api/v1/search", headers=admin, json={"query": "site 7 ships", "knowledge_base_ids": [kb]}
    )
    assert hits.status_code == 200 and hits.json(), hits.text


def test_a_worker_killed_mid_job_has_its_job_finished_by_the_other(topology, admin):
    started = httpx.post(f"{topology.url}/api/v1/jobs", headers=admin, json={"kind": "verify_models"}, timeout=30)
    assert started.status_code == 202, started.text
    job_id = started.json()["id"]

    def job():
        return httpx.get(f"{topology.url}/api/v1/jobs/{job_id}", headers=admin, timeout=30).json()

    topology.wait(
        lambda: (j := job())["status"] == "running" and 0 < j["progress"] < 0.9, 120, "the job part-way", 0.05
    )
    running_on = topology.worker_running(job_id)
    before = {w.name: topology.worker_job_runs(w, "verify_models") for w in topology.workers}
    running_on.kill()

    finished = topology.wait(lambda: (j := job())["status"] in ("succeeded", "failed") and j, 240, "the job to end")
    assert finished["status"] == "succeeded", finished["error"]
    assert finished["attempts"] == 2
    survivor = next(w for w in topology.workers if w is not running_on)
    assert topology.worker_job_runs(survivor, "verify_models") == before[survivor.name] + 1
    running_on.start()


def test_predictions_keep_answering_while_a_web_process_restarts(topology, admin):
    answered: Counter = Counter()
    failures: list[str] = []
    stop = threading.Event()

    def client_loop():
        number = 0
        with httpx.Client(base_url=topology.url, headers=admin, timeout=60) as client:
            while not stop.is_set():
                number += 1
                try:
                    response = client.post(
                        f"/api/v1/models/{CLASSIFIER_NAME}/predict", json={"inputs": [f"Headline number {number}"]}
                    )
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))
                    continue
                if response.status_code == 200:
                    answered[response.headers.get("X-Strata-Web")] += 1
                else:
                    failures.append(f"{response.status_code} {response.text[:200]}")

    loops = [threading.Thread(target=client_loop) for _ in range(2)]
    for loop in loops:
        loop.start()
    try:
        topology.wait(lambda: len(answered) == 2, 60, "both webs answering")
        restarted = topology.webs[0]
        before = answered[restarted.name]
        topology.restart(restarted)
        topology.wait(lambda: answered[restarted.name] > before, 60, f"{restarted.name} answering again")
    finally:
        stop.set()
        for loop in loops:
            loop.join(60)
    assert failures == []
    assert sum(answered.values()) > 0


def test_a_registry_change_through_one_web_is_seen_by_the_other_within_the_documented_delay(topology, admin):
    web_a, web_b = (f"http://127.0.0.1:{web.port}" for web in topology.webs)
    texts = ["The server room is flooded, everything is down!"]
    assert predict(web_b, admin, texts).json()["version"] == 1  # web B now holds the route

    created = httpx.post(
        f"{web_a}/api/v1/models/{CLASSIFIER_NAME}/versions", headers=admin, json=LABELS, timeout=60
    ).json()
    number = created["number"]
    promoted = httpx.post(f"{web_a}/api/v1/models/{CLASSIFIER_NAME}/versions/{number}/promote", headers=admin)
    assert promoted.status_code == 200 and promoted.json()["production_version"] == number
    # A route web B read before the change is at most ROUTE_TTL_SECONDS old once that time has passed.
    time.sleep(ROUTE_TTL_SECONDS)
    answer = predict(web_b, admin, texts).json()
    assert answer["version"] == number and answer["results"][0]["label"] == "urgent"

    rolled_back = httpx.post(f"{web_a}/api/v1/models/{CLASSIFIER_NAME}/rollback", headers=admin)
    assert rolled_back.status_code == 200 and rolled_back.json()["production_version"] == 1
    time.sleep(ROUTE_TTL_SECONDS)
    assert predict(web_b, admin, texts).json()["version"] == 1
