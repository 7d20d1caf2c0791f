"""Runs oidc-provider-mock, a real OpenID provider that signs its tokens, for the company sign-in
tests: `python tests/auth/oidc_provider.py [--audience AUD] <oidc-provider-mock options>`.

With --audience its ID tokens name AUD instead of the client that asked for them, as a provider
set up for another application would."""

import sys

from oidc_provider_mock import __main__ as provider_cli
from oidc_provider_mock import _app


def main() -> None:
    args = sys.argv[1:]
    if "--audience" in args:
        at = args.index("--audience")
        audience = args[at + 1]
        del args[at : at + 2]
        issue = _app.OpenIDCode.get_jwt_config

        def issue_for_audience(self, grant, client=None):
            return {**issue(self, grant, client), "aud": [audience]}

        _app.OpenIDCode.get_jwt_config = issue_for_audience
    provider_cli.run(args)


if __name__ == "__main__":
    main()
