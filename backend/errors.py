"""Errors the domain raises, each carrying the HTTP status it maps to.

Domain functions are shared by the HTTP routes, the skill's voice intents and the
web page; raising these (instead of returning error dicts) lets each caller
present the failure its own way while the API turns them into JSON 4xx/5xx.
"""


class BackendError(Exception):
    """Base class: `status` is the HTTP status the API answers with."""

    status = 400

    def __init__(self, message: str, status: int = None):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class BadRequest(BackendError):
    status = 400


class Unauthorized(BackendError):
    status = 401


class Forbidden(BackendError):
    status = 403


class NotFound(BackendError):
    status = 404


class Conflict(BackendError):
    status = 409


class TooManyRequests(BackendError):
    status = 429


class UpstreamError(BackendError):
    """An upstream service (weather, Wolfram, SMTP, OAuth provider) failed or is unreachable."""

    status = 502


class ServiceUnavailable(BackendError):
    """A service is not configured or could not be loaded (e.g. no API key, no STT plugin)."""

    status = 503


class StorageError(BackendError):
    """The data directory cannot be written (full disk, read-only); nothing was changed."""

    status = 507
