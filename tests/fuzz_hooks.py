"""Schemathesis hooks for tests/test_api_fuzz.py, loaded through SCHEMATHESIS_HOOKS.

The caller's role comes from STRATA_FUZZ_ROLE; each route publishes the role it needs in
the OpenAPI document (x-strata-minimum-role). The ids of the users the run signs in as are
in STRATA_FUZZ_PROTECTED_USERS: generated cases may change any other user, not those, so
that a run does not sign itself out halfway."""

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
def filter_case(context, case) -> bool:
    protected = set(os.environ.get("STRATA_FUZZ_PROTECTED_USERS", "").split(","))
    return str((case.path_parameters or {}).get("user_id")) not in protected
