"""Every domain's job kinds, imported so that the web and the worker both know them."""

from app.system.jobs import verify_models

__all__ = ["verify_models"]
