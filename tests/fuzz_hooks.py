"""Schemathesis hooks for tests/test_api_fuzz.py, loaded through SCHEMATHESIS_HOOKS.

The caller's role comes from STRATA_FUZZ_ROLE; each route publishes the role it needs in
the OpenAPI document (x-strata-minimum-role)."""

import os

import schemathesis

RANKS = {"public": -1, "viewer": 0, "staff": 1, "admin": 2}


@schemathesis.check
def no_data_for_a_lower_role(ctx, response, case):
    """A route that needs a higher role than the caller's answers with an error, never data."""
    caller = os.environ["STRATA_FUZZ_ROLE"]
    needed = case.operation.definition.raw.get("x-strata-minimum-role", "admin")
    if RANKS[caller] < RANKS[needed] and response.status_code < 400:
        raise AssertionError(
            f"{case.method} {case.formatted_path} needs {needed} but answered a {caller} with {response.status_code}"
        )
    return None


def _reflex_plain_404(response, case) -> bool:
    """Reflex's top-level router mounts the whole app at "" with a pattern that does not match
    a line break, so a path holding one gets Starlette's plain-text 404 before any Strata code
    runs: the one answer Strata cannot shape."""
    url = str(getattr(response.request, "url", "")).lower()
    return response.status_code == 404 and ("%0a" in url or "\n" in case.formatted_path)


@schemathesis.check
def documented_media_type(ctx, response, case):
    """The response's media type is one its status's documented response lists (exact code,
    then 4XX/5XX, then default); schemathesis's own check, less Reflex's plain-text 404 above."""
    # Methods the operation does not have (TRACE, say) are answered by the router, not documented.
    if _reflex_plain_404(response, case) or case.method.upper() != case.operation.method.upper():
        return None
    responses = case.operation.definition.raw.get("responses", {})
    status = str(response.status_code)
    documented = responses.get(status) or responses.get(f"{status[0]}XX") or responses.get("default")
    if not documented or not documented.get("content"):
        return None
    received = (response.headers.get("content-type") or [""])[0].split(";")[0].strip()
    if received not in documented["content"]:
        raise AssertionError(
            f"{case.method} {case.formatted_path} answered {status} as {received!r}; documented: {sorted(documented['content'])}"
        )
    return None
