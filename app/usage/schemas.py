"""What the usage domain hands to the Usage page and the API: requests, errors, latency and
tokens per user, API key or model over a period, in total and per time bucket."""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel

GroupBy = Literal["user", "key", "model"]
GROUP_BYS: tuple[GroupBy, ...] = ("user", "key", "model")


class UsageFigures(BaseModel):
    requests: int
    errors: int
    # Of the requests' latencies; None without requests.
    mean_latency_ms: float | None
    prompt_tokens: int
    completion_tokens: int


class GroupTotals(UsageFigures):
    # The user's id, the API key's id or the model's name; None: the requests made without a key.
    group: str | None
    # What a person reads: the user's email, the key's name and prefix, the model's name.
    label: str


class GroupBucket(UsageFigures):
    start: datetime
    group: str | None


class Choice(BaseModel):
    id: str
    label: str


class UsageChoices(BaseModel):
    """What the filters offer: who and what had usage in the period."""

    users: list[Choice]
    keys: list[Choice]
    models: list[str]


class UsageReport(BaseModel):
    since: datetime
    until: datetime
    bucket_seconds: int
    group_by: GroupBy
    totals: UsageFigures
    # Busiest first.
    groups: list[GroupTotals]
    # One row per time bucket and group that had requests, in time order.
    series: list[GroupBucket]
