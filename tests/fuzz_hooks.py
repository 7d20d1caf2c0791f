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


@schemathesis.hook
def filter_failure(context, failure, case, response) -> bool:
    """Keeps every failure but one Strata cannot answer for: Reflex's top-level router mounts
    the whole app at "" with a pattern that does not match a line break, so a path holding
    one gets Starlette's plain-text 404 before any Strata code runs."""
    path_values = [str(value) for value in (case.path_parameters or {}).values()]
    reflex_plain_404 = response.status_code == 404 and response.headers.get("content-type", [""])[0].startswith(
        "text/plain"
    )
    return not (reflex_plain_404 and any("\n" in value for value in path_values))
