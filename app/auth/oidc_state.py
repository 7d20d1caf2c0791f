"""The login page's company sign-in button. Settings are read when the page is served, not baked
into the exported frontend, so configuring OIDC needs no rebuild; why a sign-in failed is
LoginState.error's business (the callback sends an error code back to /login)."""

import reflex as rx

from app.core.settings import get_settings


class CompanySignInState(rx.State):
    @rx.var
    def company_sign_in_enabled(self) -> bool:
        return get_settings().oidc_enabled

    @rx.var
    def company_sign_in_label(self) -> str:
        return f"Sign in with {get_settings().oidc_provider_name}"
