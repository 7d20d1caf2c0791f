"""Memory of the embedded stack, process by process, against the 800 MB target.

    python benchmarks/footprint.py [--settle 15] [--before REF]

Starts `strata run` (what `make run` and the container run) on a temporary data dir
and free ports, waits until every program is up and the stack is idle, and prints the
RSS and PSS (from /proc/<pid>/smaps_rollup: shared pages split between the processes
that map them, so the PSS column adds up) of each process: `strata run` itself (once
it has become supervisord, only supervisord), Valkey, Chroma, the worker and the web
server. Then it loads the embedder (one /v1/embeddings call) and prints the stack
again with the total against the target, and last the chat model (one short
/v1/chat/completions answer) with what it added, reported apart: it loads lazily, on
the first chat.

--before REF measures the same at another commit first (a temporary `git worktree`,
run by this interpreter with that checkout first on PYTHONPATH) and prints both with
the ratios. Prints numbers, asserts nothing. Needs the built models (STRATA_MODELS_DIR).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET_MB = 800
ADMIN_EMAIL = "footprint@strata.test"
ADMIN_PASSWORD = "footprint-password"

sys.path.insert(0, str(REPO))

import httpx  # noqa: E402

from models.manifest import EMBEDDER_NAME  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(proc.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return sorted(found)


def cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")


def parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def label(pid: int, root: int) -> str:
    line = cmdline(pid)
    if "supervisord" in line:
        return "supervisord"
    if pid == root:
        return "strata run (waits)"
    if "app.core.runner web" in line:
        return "web worker (granian)" if "app.core.runner web" in cmdline(parent(pid)) else "web"
    for name, needle in (("valkey", "valkey"), ("chroma", "chroma"), ("worker", "strata worker")):
        if needle in line:
            return name
    return Path(line.split(" ", 1)[0]).name


def memory_kb(pid: int) -> tuple[int, int]:
    """(RSS, PSS) in kB; (0, 0) for a process that has gone."""
    try:
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:])
    except OSError:
        return 0, 0
    return int(fields["Rss"].split()[0]), int(fields["Pss"].split()[0])


def snapshot(root: int) -> dict[str, tuple[int, int]]:
    """label -> (RSS kB, PSS kB), processes of one label added up."""
    result: dict[str, tuple[int, int]] = {}
    for pid in descendants(root):
        try:
            name = label(pid, root)
        except OSError:
            continue
        rss, pss = memory_kb(pid)
        if rss == 0 or name in ("env", "setpriv"):
            continue
        old = result.get(name, (0, 0))
        result[name] = (old[0] + rss, old[1] + pss)
    return result


def mb(kb: int) -> str:
    return f"{kb / 1024:7.1f}"


def show(title: str, snap: dict[str, tuple[int, int]], base: dict[str, tuple[int, int]] | None = None) -> None:
    print(f"\n{title}")
    print(f"  {'process':<24}{'RSS MB':>9}{'PSS MB':>9}" + (f"{'+PSS MB':>9}" if base else ""))
    for name, (rss, pss) in sorted(snap.items(), key=lambda item: -item[1][1]):
        added = f"{mb(pss - base.get(name, (0, 0))[1]):>9}" if base is not None else ""
        print(f"  {name:<24}{mb(rss):>9}{mb(pss):>9}{added}")
    rss, pss = total(snap)
    print(f"  {'total':<24}{mb(rss):>9}{mb(pss):>9}" + (f"{mb(pss - total(base)[1]):>9}" if base else ""))


def total(snap: dict[str, tuple[int, int]]) -> tuple[int, int]:
    return sum(v[0] for v in snap.values()), sum(v[1] for v in snap.values())


def all_running(conf: Path) -> bool:
    status = subprocess.run(
        [str(Path(sys.executable).parent / "supervisorctl"), "-c", str(conf), "status"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.splitlines()
    return bool(status) and all(line.split()[1] == "RUNNING" for line in status if line.strip())


def wait_for(predicate, timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    sys.exit(f"timed out waiting for {what}; log: {log}\n" + log.read_text()[-3000:])


def measure(checkout: Path, settle: float, port: int) -> dict[str, dict[str, tuple[int, int]]]:
    """Start `strata run` from `checkout`; snapshots at idle, with the embedder, with the chat model."""
    tmp = Path(tempfile.mkdtemp(prefix="strata-footprint-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATA_") or k == "STRATA_MODELS_DIR"}
    env.update(
        PYTHONPATH=str(checkout),
        STRATA_DATA_DIR=str(tmp / "data"),
        STRATA_PORT=str(port),
        STRATA_EMBEDDED_REDIS_PORT=str(free_port()),
        STRATA_EMBEDDED_CHROMA_PORT=str(free_port()),
        STRATA_LOG_LEVEL="WARNING",
        STRATA_ADMIN_EMAIL=ADMIN_EMAIL,
        STRATA_ADMIN_PASSWORD=ADMIN_PASSWORD,
        # One frontend build per port, shared by both checkouts (the runner is not part of it).
        REFLEX_WEB_WORKDIR=str(REPO / ".web" / f"port-{port}"),
    )
    log = tmp / "strata-run.log"
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "strata"), "run"],
            cwd=checkout,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(lambda: httpx.get(f"{url}/ping", timeout=5).status_code == 200, 900, "the web server", log)
        # Not /api/v1/health yet: its models check loads the embedder.
        conf = tmp / "data" / "run" / "supervisord.conf"
        wait_for(lambda: all_running(conf), 120, "every program RUNNING", log)
        time.sleep(settle)
        snaps = {"idle": snapshot(proc.pid)}
        login = httpx.post(f"{url}/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
        admin = {"Authorization": f"Bearer {login.json()['token']}"}
        me = httpx.get(f"{url}/api/v1/me", headers=admin).json()
        key = httpx.post(f"{url}/api/v1/keys", headers=admin, json={"user_id": me["id"], "name": "footprint"})
        auth = {"Authorization": f"Bearer {key.json()['key']}"}
        embedded = httpx.post(
            f"{url}/v1/embeddings", headers=auth, json={"model": EMBEDDER_NAME, "input": "How big is it?"}, timeout=120
        )
        embedded.raise_for_status()
        # What a container's HEALTHCHECK and a monitoring probe do from then on.
        wait_for(
            lambda: all(c["ok"] for c in httpx.get(f"{url}/api/v1/health", timeout=15).json()["components"].values()),
            180,
            "every component healthy",
            log,
        )
        time.sleep(settle)
        snaps["embedder"] = snapshot(proc.pid)
        chat = httpx.post(
            f"{url}/v1/chat/completions",
            headers=auth,
            json={"model": "strata-chat", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 8},
            timeout=300,
        )
        chat.raise_for_status()
        time.sleep(settle)
        snaps["chat"] = snapshot(proc.pid)
        return snaps
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(120)
        shutil.rmtree(tmp, ignore_errors=True)


def report(name: str, snaps: dict[str, dict[str, tuple[int, int]]]) -> None:
    print(f"\n===== {name}")
    show("idle, no model loaded", snaps["idle"])
    show("idle, embedder loaded (one /v1/embeddings call, then /api/v1/health)", snaps["embedder"])
    rss, pss = total(snaps["embedder"])
    print(f"  vs the {TARGET_MB} MB target: RSS {rss / 1024 / TARGET_MB:.2f}x, PSS {pss / 1024 / TARGET_MB:.2f}x")
    show("after one chat answer (the chat model, lazy): +PSS is its share", snaps["chat"], snaps["embedder"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settle", type=float, default=15, help="seconds of quiet before each snapshot")
    parser.add_argument("--before", help="a commit to measure first, for comparison")
    parser.add_argument("--port", type=int, default=0, help="web port (a new one needs a frontend build)")
    args = parser.parse_args()
    port = args.port or free_port()
    results = {}
    if args.before:
        before = Path(tempfile.mkdtemp(prefix="strata-before-"))
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(before), args.before], check=True)
        (before / ".tools").symlink_to((REPO / ".tools").resolve())  # bun, for a frontend build
        try:
            results[f"before ({args.before})"] = measure(before, args.settle, port)
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(before)], check=False)
    results["now"] = measure(REPO, args.settle, port)
    for name, snaps in results.items():
        report(name, snaps)
    if args.before:
        old, now = results[f"before ({args.before})"], results["now"]
        print("\n===== now / before")
        for stage in ("idle", "embedder", "chat"):
            (old_rss, old_pss), (now_rss, now_pss) = total(old[stage]), total(now[stage])
            print(
                f"  {stage:<10} RSS {mb(old_rss)} -> {mb(now_rss)} MB ({now_rss / old_rss:.2f}x), "
                f"PSS {mb(old_pss)} -> {mb(now_pss)} MB ({now_pss / old_pss:.2f}x)"
            )


if __name__ == "__main__":
    main()
