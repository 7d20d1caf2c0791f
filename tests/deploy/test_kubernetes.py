"""deploy/kubernetes/: rendered by kubectl's kustomize (`make kubectl` installs it), every object
validated against the Kubernetes API schema of a pinned release, and checked against what the
image (deploy/Dockerfile), the settings and the running code expect."""

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import kubernetes_validate
import pytest
import yaml
from reflex_base.constants import Endpoint

from app.core.runner import paths
from app.core.settings import Settings
from jobs.runtime import ARQ_QUEUE
from tests.conftest import reset_caches
from tests.deploy.test_compose import (
    assert_scaled_out_settings,
    image_health_path,
    image_port,
    image_volume,
    makefile_image,
    runtime_stage,
    strata_settings,
)
from tests.deploy.test_grafana import selectors
from tests.test_packaging import instructions
from tests.test_runner import REPO

KUSTOMIZATION = REPO / "deploy" / "kubernetes"
AUTOSCALING = KUSTOMIZATION / "autoscaling"
# The oldest Kubernetes release the manifests promise to work on.
KUBERNETES_VERSION = "1.32.0"
QUEUE_DEPTH_METRIC = "strata_job_queue_depth"
WAITING_MESSAGE = "waiting for the strata-migrate Job"


@pytest.fixture(scope="module")
def rendered() -> list[dict]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl renders the manifests: `make kubectl` installs it"
    out = subprocess.run(
        [kubectl, "kustomize", str(KUSTOMIZATION)], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def find(objects: list[dict], kind: str, name: str) -> dict:
    (found,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def pod_spec(workload: dict) -> dict:
    return workload["spec"]["template"]["spec"]


def container(workload: dict, name: str) -> dict:
    spec = pod_spec(workload)
    (found,) = [c for c in spec["containers"] + spec.get("initContainers", []) if c["name"] == name]
    return found


def strata_containers(objects: list[dict]) -> list[tuple[str, dict]]:
    """(workload name, container) of every container that runs Strata's code."""
    return [
        (workload["metadata"]["name"], c)
        for workload in objects
        if workload["kind"] in ("Deployment", "Job")
        for c in pod_spec(workload)["containers"] + pod_spec(workload).get("initContainers", [])
    ]


def matches(selector: dict, labels: dict) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def manifest_env(objects: list[dict], secret_key: str | None = None) -> dict[str, str]:
    env = dict(find(objects, "ConfigMap", "strata-config")["data"])
    env.update(find(objects, "Secret", "strata-secrets")["stringData"])
    if secret_key is not None:
        env["STRATA_SECRET_KEY"] = secret_key
    return env


def test_every_object_is_valid_for_the_pinned_kubernetes_release(rendered):
    kinds = sorted({o["kind"] for o in rendered})
    assert kinds == [
        "ConfigMap",
        "Deployment",
        "HorizontalPodAutoscaler",
        "Job",
        "NetworkPolicy",
        "PersistentVolumeClaim",
        "PodDisruptionBudget",
        "Secret",
        "Service",
        "StatefulSet",
    ]
    for obj in rendered:
        # strict: a misspelt field is an error, not silently dropped by the API server.
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_the_schema_check_catches_a_misspelt_field(rendered):
    web = copy.deepcopy(find(rendered, "Deployment", "strata-web"))
    probe = container(web, "web")["readinessProbe"]
    probe["httpGett"] = probe.pop("httpGet")
    with pytest.raises(kubernetes_validate.ValidationError, match="httpGett"):
        kubernetes_validate.validate(web, KUBERNETES_VERSION, strict=True)


def test_containers_run_the_image_as_its_user_with_commands_it_has(rendered):
    import app.cli

    uid = int(next(arg.split("--uid")[1].split()[0] for arg in instructions(runtime_stage(), "RUN") if "--uid" in arg))
    for workload in rendered:
        if workload["kind"] not in ("Deployment", "Job", "StatefulSet"):
            continue
        spec = pod_spec(workload)
        assert spec["securityContext"]["runAsUser"] == uid and spec["securityContext"]["runAsNonRoot"]
        assert spec["securityContext"]["fsGroup"] == uid  # volumes writable by that user
        for c in spec["containers"] + spec.get("initContainers", []):
            assert c["image"] == makefile_image(), c["name"]
            # `args`, not `command`: the image's entrypoint (tini) stays PID 1.
            assert "command" not in c and c["args"], c["name"]
            assert c["resources"]["requests"]["memory"] and c["resources"]["limits"]["memory"], c["name"]
            assert c["securityContext"]["allowPrivilegeEscalation"] is False
    commands = {command.name or command.callback.__name__ for command in app.cli.cli.registered_commands}
    assert container(find(rendered, "Job", "strata-migrate"), "migrate")["args"] == ["strata", "migrate"]
    assert container(find(rendered, "Deployment", "strata-worker"), "worker")["args"] == ["strata", "worker"]
    assert {"migrate", "worker"} <= commands
    assert container(find(rendered, "Deployment", "strata-web"), "web")["args"] == [
        "python",
        "-m",
        "app.core.runner",
        "web",
    ]


def test_web_port_and_probes_agree_with_the_image_and_the_routes(rendered):
    from app.api import build_api

    web = container(find(rendered, "Deployment", "strata-web"), "web")
    settings = strata_settings(manifest_env(rendered, secret_key="k" * 40))
    (port,) = web["ports"]
    # The image's frontend is built (without STRATA_PORT) for the default port.
    assert port["containerPort"] == image_port() == settings.port == Settings.model_fields["port"].default
    # Readiness: the image's health check, 503 while the database, Valkey, Chroma or the
    # models are down (or the database is behind this image's migrations).
    assert web["readinessProbe"]["httpGet"] == {"path": image_health_path(), "port": port["name"]}
    assert image_health_path() in build_api().openapi()["paths"]
    # Liveness and startup: Reflex's /ping, which checks no store, so a PostgreSQL blip takes
    # pods out of the Service without restarting them.
    ping = str(Endpoint.PING)  # "/ping"
    assert web["livenessProbe"]["httpGet"] == {"path": ping, "port": port["name"]}
    assert web["startupProbe"]["httpGet"] == {"path": ping, "port": port["name"]}
    service = find(rendered, "Service", "strata-web")
    assert [p["targetPort"] for p in service["spec"]["ports"]] == [port["name"]]
    # Rolling updates never leave fewer serving pods than there were.
    deployment = find(rendered, "Deployment", "strata-web")
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert deployment["spec"]["replicas"] >= 2


def test_every_strata_container_gets_the_settings_and_the_secret(rendered):
    env = manifest_env(rendered)
    for workload, c in strata_containers(rendered):
        sources = [next(iter(source.values()))["name"] for source in c["envFrom"]]
        assert sources == ["strata-config", "strata-secrets"], (workload, c["name"])
    # Every variable is a real setting, and together they describe a scaled-out production Strata.
    settings = strata_settings(manifest_env(rendered, secret_key="k" * 40))
    assert_scaled_out_settings(settings)
    assert settings.effective_web_workers == int(env["STRATA_WEB_WORKERS"])
    assert settings.worker_metrics_host == "0.0.0.0"
    (metrics_port,) = container(find(rendered, "Deployment", "strata-worker"), "worker")["ports"]
    assert metrics_port["containerPort"] == settings.worker_metrics_port
    # The Secret ships placeholders only, and Strata refuses to start with them.
    with pytest.raises(ValueError, match="STRATA_SECRET_KEY"):
        strata_settings(env)
    for key in ("STRATA_DATABASE_URL", "STRATA_REDIS_URL"):
        assert urlparse(env[key]).hostname.endswith(".invalid"), key
    assert set(find(rendered, "ConfigMap", "strata-config")["data"]).isdisjoint(
        {"STRATA_SECRET_KEY", "STRATA_DATABASE_URL", "STRATA_REDIS_URL", "STRATA_METRICS_TOKEN"}
    )


def test_chroma_serves_where_strata_looks_for_it(rendered):
    url = urlparse(manifest_env(rendered)["STRATA_CHROMA_URL"])
    service = find(rendered, "Service", url.hostname)
    assert [p["port"] for p in service["spec"]["ports"]] == [url.port]
    chroma = find(rendered, "StatefulSet", "chroma")
    (server,) = pod_spec(chroma)["containers"]
    assert server["args"][:2] == ["chroma", "run"]
    assert int(server["args"][server["args"].index("--port") + 1]) == server["ports"][0]["containerPort"]
    assert Path(paths.bin_path("chroma")).exists()  # chromadb's server, in the image's venv
    assert matches(service["spec"]["selector"], chroma["spec"]["template"]["metadata"]["labels"])
    # No sign-in: only Strata's pods may reach it.
    policy = find(rendered, "NetworkPolicy", "chroma")
    assert matches(policy["spec"]["podSelector"]["matchLabels"], chroma["spec"]["template"]["metadata"]["labels"])


def test_selectors_pick_the_right_pods(rendered):
    pods = {
        o["metadata"]["name"]: o["spec"]["template"]["metadata"]["labels"]
        for o in rendered
        if o["kind"] in ("Deployment", "StatefulSet", "Job")
    }
    for workload in (o for o in rendered if o["kind"] in ("Deployment", "StatefulSet")):
        assert matches(workload["spec"]["selector"]["matchLabels"], pods[workload["metadata"]["name"]])

    def selected(selector: dict) -> set[str]:
        return {name for name, labels in pods.items() if matches(selector, labels)}

    assert selected(find(rendered, "Service", "strata-web")["spec"]["selector"]) == {"strata-web"}
    assert selected(find(rendered, "PodDisruptionBudget", "strata-web")["spec"]["selector"]["matchLabels"]) == {
        "strata-web"
    }
    assert find(rendered, "PodDisruptionBudget", "strata-web")["spec"]["minAvailable"] == 1
    assert selected(find(rendered, "PodDisruptionBudget", "strata-worker")["spec"]["selector"]["matchLabels"]) == {
        "strata-worker"
    }


def test_shared_data_volume_and_per_pod_metrics_directory(rendered):
    claim = find(rendered, "PersistentVolumeClaim", "strata-data")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]  # the web stores, a worker reads
    metrics_dir = paths.metrics_dir(strata_settings(manifest_env(rendered, secret_key="k" * 40)))
    for kind, name, main in (
        ("Deployment", "strata-web", "web"),
        ("Deployment", "strata-worker", "worker"),
        ("Job", "strata-migrate", "migrate"),
    ):
        workload = find(rendered, kind, name)
        volumes = {v["name"]: v for v in pod_spec(workload)["volumes"]}
        mounts = {m["mountPath"]: volumes[m["name"]] for m in container(workload, main)["volumeMounts"]}
        assert mounts[image_volume()]["persistentVolumeClaim"]["claimName"] == "strata-data", name
        if main != "migrate":
            # Prometheus multiprocess files are one pod's, never added up with another's.
            own = [Path(path) for path, volume in mounts.items() if "emptyDir" in volume]
            assert any(metrics_dir.is_relative_to(path) for path in own), name


def test_workers_scale_on_the_queue_depth_strata_serves(rendered, redis_url):
    from jobs.metrics import QueueDepthCollector

    reset_caches()  # the settings read STRATA_REDIS_URL, the test Valkey's
    assert [family.name for family in QueueDepthCollector().collect()] == [QUEUE_DEPTH_METRIC]

    worker = find(rendered, "Deployment", "strata-worker")
    hpa = find(rendered, "HorizontalPodAutoscaler", "strata-worker")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"], target["apiVersion"]) == ("Deployment", "strata-worker", "apps/v1")
    assert "replicas" not in worker["spec"]  # the HPA owns the count; an apply must not reset it
    (metric,) = hpa["spec"]["metrics"]
    assert metric["external"]["metric"]["name"] == QUEUE_DEPTH_METRIC
    assert hpa["spec"]["minReplicas"] >= 1 and hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]

    # prometheus-adapter serves that external metric from the web pods' scrapes...
    adapter = yaml.safe_load((AUTOSCALING / "prometheus-adapter-values.yaml").read_text())
    (rule,) = adapter["rules"]["external"]
    assert rule["name"]["as"] == QUEUE_DEPTH_METRIC
    assert [s.metric for s in selectors(rule["metricsQuery"].replace("<<.LabelMatchers>>", ""))] == [QUEUE_DEPTH_METRIC]
    # ... and KEDA, the alternative, scales the same Deployment on the same query.
    keda = yaml.safe_load((AUTOSCALING / "keda-scaledobject.yaml").read_text())
    assert keda["spec"]["scaleTargetRef"]["name"] == worker["metadata"]["name"]
    (trigger,) = keda["spec"]["triggers"]
    assert trigger["type"] == "prometheus"
    assert [s.metric for s in selectors(trigger["metadata"]["query"])] == [QUEUE_DEPTH_METRIC]


async def test_kedas_redis_list_scaler_cannot_read_arqs_queue(redis_url):
    """Why the KEDA option uses Prometheus: its `redis` scaler asks for a list's length, and
    arq keeps its queue in a sorted set."""
    import redis.asyncio as aioredis
    from arq import create_pool
    from arq.connections import RedisSettings

    pool = await create_pool(RedisSettings.from_dsn(redis_url))
    try:
        await pool.enqueue_job("execute_job", "a-job-id", _job_id="deploy-test-job")
    finally:
        await pool.aclose()
    client = aioredis.Redis.from_url(redis_url)
    try:
        assert await client.type(ARQ_QUEUE) == b"zset"
        with pytest.raises(aioredis.ResponseError, match="WRONGTYPE"):
            await client.llen(ARQ_QUEUE)
    finally:
        await client.delete(ARQ_QUEUE, "arq:job:deploy-test-job")
        await client.aclose()


def wait_for_migrations_script(rendered) -> list[str]:
    scripts = [
        container(find(rendered, "Deployment", name), "wait-for-migrations")["args"]
        for name in ("strata-web", "strata-worker")
    ]
    assert scripts[0] == scripts[1]
    assert scripts[0][0] == "python"
    return [sys.executable, *scripts[0][1:]]


def test_new_pods_start_once_the_database_is_migrated(rendered, database_url):
    """The init container of web and worker pods returns as soon as the database is at the
    image's migration (here: a migrated test database, SQLite and PostgreSQL)."""
    result = subprocess.run(
        wait_for_migrations_script(rendered),
        env={**os.environ, "STRATA_DATABASE_URL": database_url},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert WAITING_MESSAGE not in result.stdout


def test_new_pods_wait_while_the_database_is_not_migrated(rendered, tmp_path):
    process = subprocess.Popen(
        wait_for_migrations_script(rendered),
        env={**os.environ, "STRATA_DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}"},
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        first_line = process.stdout.readline()
        assert WAITING_MESSAGE in first_line and "database at None" in first_line
        assert process.poll() is None  # still waiting, not failed
    finally:
        process.kill()
        process.wait(10)
