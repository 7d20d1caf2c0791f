"""structlog JSON logs to stdout, with request/job/user ids bound through contextvars."""

import logging
import sys

import structlog

SECRET_WORDS = ("password", "token", "secret", "authorization", "cookie")


def _is_secret(name: str) -> bool:
    name = name.lower()
    return any(word in name for word in SECRET_WORDS) or name == "key" or name.endswith("_key")


def _redact_secrets(_logger, _method, event_dict: dict) -> dict:
    for name in list(event_dict):
        if _is_secret(name):
            event_dict[name] = "[redacted]"
    return event_dict


def configure_logging(level: str = "INFO") -> None:
    logging.basicConfig(format="%(message)s", stream=sys.stdout, level=level.upper(), force=True)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact_secrets,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        # Not cached: each log call writes to the sys.stdout of that moment.
        logger_factory=structlog.PrintLoggerFactory(),
        cache_logger_on_first_use=False,
    )


log = structlog.get_logger("strata")
