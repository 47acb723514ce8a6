"""Named failures with messages a researcher can act on; one handler renders them."""

from __future__ import annotations


def N_(text: str) -> str:
    """Marks a message for translation (pybabel extracts it); the web edge translates it."""
    return text


class IPRError(Exception):
    """Base for errors that carry an HTTP status and a user-facing message.

    ``template`` with ``params`` lets the web layer show the message in the participant's
    language: it translates the template, then fills in the values.
    """

    status = 400
    code = "bad_request"

    def __init__(
        self, message: str = "", *, field: str | None = None, params: dict | None = None
    ) -> None:
        self.template = message or (self.__class__.__doc__ or self.code).strip()
        self.params = params or {}
        self.message = self.template % self.params if self.params else self.template
        super().__init__(self.message)
        self.field = field


class ValidationError(IPRError):
    """The request is not valid."""

    status = 422
    code = "invalid"


class NotFound(IPRError):
    """Not found."""

    status = 404
    code = "not_found"


class PermissionDenied(IPRError):
    """You cannot change this: your role in this study is read-only."""

    status = 403
    code = "forbidden"


class Unauthorized(IPRError):
    """Log in or send a valid API token."""

    status = 401
    code = "unauthorized"


class Conflict(IPRError):
    """This was changed elsewhere; reload to see the latest version."""

    status = 409
    code = "conflict"


class TooManyAttempts(IPRError):
    """Too many failed attempts."""

    status = 429
    code = "too_many_attempts"

    def __init__(
        self, message: str = "", *, retry_after: int = 60, params: dict | None = None
    ) -> None:
        super().__init__(message, params=params)
        self.retry_after = retry_after


class TooLarge(IPRError):
    """This is larger than allowed."""

    status = 413
    code = "too_large"
