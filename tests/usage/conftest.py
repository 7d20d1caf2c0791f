"""The usage domain's fixtures: the built-in models (predictions, chat) on a clean registry."""

from tests.predict.conftest import builtin_models  # noqa: F401 - the same registry, reused
