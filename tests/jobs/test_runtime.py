"""The priority a worker runs at: below the web's, for every thread it has and starts."""

import subprocess
import sys

from tests.conftest import REPO

# In a child process: lowering a priority cannot be undone without privileges.
SCRIPT = """
import os, threading
from jobs.runtime import yield_to_the_web

def niceness(thread=0):
    return os.getpriority(os.PRIO_PROCESS, thread)

running, done, later = threading.Event(), threading.Event(), {}
earlier = threading.Thread(target=lambda: (running.set(), done.wait()))
earlier.start()
running.wait()
yield_to_the_web(7)
started = threading.Thread(target=lambda: later.update(niceness=niceness()))
started.start()
started.join()
print(niceness(), niceness(earlier.native_id), later["niceness"])
os.setpriority(os.PRIO_PROCESS, 0, 12)  # started with `nice -n 12`, say
yield_to_the_web(7)
print(niceness())
done.set()
"""


def test_a_worker_lowers_each_thread_it_has_and_starts_and_never_raises_its_priority():
    result = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["7 7 7", "12"]
