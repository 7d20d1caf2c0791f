"""The alerts domain's fixtures: the predict domain's registry of built-in models."""

from tests.predict.conftest import builtin_models  # noqa: F401 - the same registry, reused
