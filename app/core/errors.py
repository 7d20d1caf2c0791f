"""Errors a user can act on. Services raise them; the API and the UI show their message."""


class StrataError(Exception):
    status_code = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(StrataError):
    status_code = 422


class Unauthorized(StrataError):
    status_code = 401


class Forbidden(StrataError):
    status_code = 403


class NotFound(StrataError):
    status_code = 404


class Conflict(StrataError):
    status_code = 409


class TooManyAttempts(StrataError):
    status_code = 429

    def __init__(self, message: str, retry_after_seconds: int) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class ServiceUnavailable(StrataError):
    status_code = 503
