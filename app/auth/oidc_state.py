"""The login page's company sign-in button and its outcome. Settings are read when the page is
served, not baked into the exported frontend, so configuring OIDC needs no rebuild."""

from urllib.parse import urlencode

import reflex as rx

from app.auth.oidc import PROBLEMS, local_path
from app.core.settings import get_settings


class CompanySignInState(rx.State):
    @rx.var
    def company_sign_in_enabled(self) -> bool:
        return get_settings().oidc_enabled

    @rx.var
    def company_sign_in_label(self) -> str:
        return f"Sign in with {get_settings().oidc_provider_name}"

    @rx.var
    def company_sign_in_url(self) -> str:
        next_path = local_path(self.router.url.query_parameters.get("next", "/"))
        return f"/api/v1/auth/oidc/login?{urlencode({'next': next_path})}"

    @rx.var
    def company_sign_in_problem(self) -> str:
        """Why the last company sign-in failed (the callback names a PROBLEMS code in the URL)."""
        return PROBLEMS.get(self.router.url.query_parameters.get("sign_in_error", ""), "")
