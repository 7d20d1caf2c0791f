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
