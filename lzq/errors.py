"""The lzq exception hierarchy: every error lzq raises on purpose is an LzqError."""

from __future__ import annotations


class LzqError(Exception):
    """Base class of every error lzq raises on purpose."""


class InvalidArgument(LzqError, ValueError):
    """Bad input to push/schedule/...; nothing was written. ``field`` names the offending argument.

    Raised from SQLSTATE 22023, so Python and plain-SQL callers get the same message.
    """

    def __init__(self, field: str | None, message: str):
        super().__init__(message)
        self.field = field


class JobNotFound(LzqError, LookupError):
    """No job has this id."""

    def __init__(self, job_id: int):
        super().__init__(f"job {job_id} not found")
        self.job_id = job_id


class UnknownHandler(LzqError):
    """A job name that no registered handler and no --app/--allow module provides.

    Workers fail such jobs for good with this message rather than importing arbitrary code.
    """


class LeaseLost(LzqError):
    """``lzq.fence``: the job's attempt is no longer running here (swept and given to another worker).

    The handler should stop: its side effects would overlap the job's new run.
    """


class ConfigurationError(LzqError):
    """A setting (DSN, AMQP URL, --app module) that cannot work."""


#: The longest delay a handler may ask a retry to wait: 100 years (PostgreSQL stores far more, but a
#: larger number is surely a mistake, and an unbounded one would overflow its interval).
MAX_RETRY_DELAY_S = 100 * 365 * 24 * 3600


class Retry(LzqError):  # noqa: N818 - control flow, named for what the handler asks for
    """Raised by a handler (``raise self.retry()``) to try again if attempts remain.

    ``delay_s`` overrides the exponential backoff; 0 means at once. ValueError naming ``delay_s`` if it
    is not a number of seconds from 0 to 100 years.
    """

    def __init__(self, reason: str = "retry requested", delay_s: float | None = None):
        if delay_s is not None and not (
            isinstance(delay_s, int | float) and 0 <= delay_s <= MAX_RETRY_DELAY_S
        ):
            raise ValueError(
                f"delay_s: must be a number of seconds from 0 to {MAX_RETRY_DELAY_S:,}, got {delay_s!r}"
            )
        super().__init__(reason)
        self.delay_s = delay_s


class Fail(LzqError):  # noqa: N818 - control flow, named for what the handler asks for
    """Raised by a handler (``raise self.fail()``) to fail the job now, without retrying."""

    def __init__(self, reason: str = "failed by handler"):
        super().__init__(reason)


def first_line(exc: BaseException) -> str:
    """An exception's message without the lines after the first (PostgreSQL's CONTEXT, a
    traceback's tail); its class name if it has no message."""
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
