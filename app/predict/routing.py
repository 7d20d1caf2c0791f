"""Which version answers a request: production or the canary, by weight, sticky per caller."""

import hashlib
import time
from dataclasses import dataclass

from app.predict.serving import VersionRef

# Routes are read from the database at most this often per process; a registry change made
# in this process is seen at once, one made by another replica within this time.
ROUTE_TTL_SECONDS = 1.0


@dataclass(frozen=True)
class ServedVersion:
    ref: VersionRef
    number: int


@dataclass(frozen=True)
class Route:
    model_name: str
    production: ServedVersion | None
    canary: ServedVersion | None
    canary_percent: int


def bucket(model_name: str, caller: str) -> int:
    """A caller's fixed place 0-99 for a model. A canary gets the callers below its percent, so
    raising the percent only moves more callers to it; the others keep their version."""
    digest = hashlib.sha256(f"{model_name}\0{caller}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100


def choose(route: Route, caller: str) -> ServedVersion | None:
    if route.canary is not None and bucket(route.model_name, caller) < route.canary_percent:
        return route.canary
    return route.production


class RouteCache:
    def __init__(self) -> None:
        self._routes: dict[str, tuple[float, Route]] = {}

    def get(self, model_name: str) -> Route | None:
        entry = self._routes.get(model_name)
        if entry is None or time.monotonic() - entry[0] > ROUTE_TTL_SECONDS:
            return None
        return entry[1]

    def put(self, route: Route) -> None:
        self._routes[route.model_name] = (time.monotonic(), route)

    def invalidate(self, model_name: str | None = None) -> None:
        if model_name is None:
            self._routes.clear()
        else:
            self._routes.pop(model_name, None)


routes = RouteCache()
