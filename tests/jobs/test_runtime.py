"""The priority a worker runs at: below the web's, for every thread it has and starts."""

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

# In a child process: lowering a priority cannot be undone without privileges.
SCRIPT = """
import os, sys, threading
from jobs.runtime import yield_to_the_web

asked, started_with = int(sys.argv[1]), int(sys.argv[2])

def niceness(thread=0):
    return os.getpriority(os.PRIO_PROCESS, thread)

running, done, later = threading.Event(), threading.Event(), {}
earlier = threading.Thread(target=lambda: (running.set(), done.wait()))
earlier.start()
running.wait()
yield_to_the_web(asked)
started = threading.Thread(target=lambda: later.update(niceness=niceness()))
started.start()
started.join()
print(niceness(), niceness(earlier.native_id), later["niceness"])
os.setpriority(os.PRIO_PROCESS, 0, started_with)  # as if started with `nice`
yield_to_the_web(asked)
print(niceness())
done.set()
"""


def test_a_worker_lowers_each_thread_it_has_and_starts_and_never_raises_its_priority():
    own = os.getpriority(os.PRIO_PROCESS, 0)
    if own > 13:
        pytest.skip(f"the tests run at niceness {own}: no room above it")
    asked, started_with = own + 3, own + 6
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(asked), str(started_with)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == [f"{asked} {asked} {asked}", str(started_with)]
