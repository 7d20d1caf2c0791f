"""The client address of the request being served, for the audit log.

Set once at each edge (the API middleware, a Reflex event handler from its websocket
handshake) and read by app/audit/service.py::record, so that no service has to carry the
address through its signature. Work started by the worker (a schedule firing, a retention
sweep) sets WORKER_ADDRESS; code run outside any edge (the CLI, tests calling services)
leaves it unset, and the entry's address is empty."""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

# What audit entries written by the arq worker show as their address.
WORKER_ADDRESS = "worker"

_current_address: ContextVar[str | None] = ContextVar("strata_request_address", default=None)


def set_request_address(address: str | None) -> None:
    """Called by the edge that knows the caller's address (after the trusted-proxy rules)."""
    _current_address.set(address)


@contextmanager
def request_address(address: str | None) -> Iterator[None]:
    """The address for the work inside the block only (a Reflex event handler)."""
    reset = _current_address.set(address)
    try:
        yield
    finally:
        _current_address.reset(reset)


def current_request_address() -> str | None:
    return _current_address.get()
