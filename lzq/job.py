"""Jobs as handlers see them (Job), as the client sees them (JobRef, JobInfo), and their states."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from typing import Any

from lzq.errors import Fail, Retry
from lzq.readiness import Readiness


class Status(enum.StrEnum):
    """A job's state; see the state machine in schema.sql."""

    WAITING = "waiting"
    SCHEDULED = "scheduled"
    READY = "ready"
    DISPATCHED = "dispatched"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)


@dataclasses.dataclass(frozen=True)
class JobRef:
    """A pushed job, by id. Pass it where a job id is expected (``get``, ``cancel``)."""

    id: int

    def __int__(self) -> int:
        return self.id


@dataclasses.dataclass(frozen=True)
class JobInfo:
    """A snapshot of one row of ``lzq_jobs``, as returned by ``Client.get``."""

    id: int
    job_name: str
    params: dict[str, Any]
    queue_name: str
    priority: int
    fairness_key: str
    status: Status
    run_at: dt.datetime
    attempts: int
    max_failures: int
    last_error: str | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    #: Why a ``waiting`` job waits (dependencies / limit / check), in words; None otherwise.
    waiting_for: str | None

    #: The select list that builds a JobInfo from ``lzq_jobs AS j``.
    COLUMNS = (
        "j.id, j.job_name, j.params, j.queue_name, j.priority, j.fairness_key, j.status, j.run_at, "
        "j.attempts, j.max_failures, j.last_error, j.created_at, j.started_at, j.finished_at, "
        "lzq_waiting_for(j) AS waiting_for"
    )

    @classmethod
    def from_row(cls, row: tuple) -> JobInfo:
        info = cls(*row)
        object.__setattr__(info, "status", Status(info.status))
        return info


class Job:
    """Base class for handlers written as classes (the seed's ``Job``).

    Subclasses implement ``run(job_params, job_options)``. Returning means success; to change that::

        raise self.retry()                    # try again if attempts remain (backoff, or delay_s=...)
        raise self.fail()                     # fail now, no retry
        raise ValueError("...")               # any other exception: same as retry
        self.set_status(self.STATUS_RETRY)    # retry, but keep running until run() returns

    ``job_options`` holds the job's options plus ``id`` and ``attempt`` (1 on the first run); the
    instance also has ``self.id`` and ``self.attempt``. A new instance is made for every run.
    """

    STATUS_SUCCESS = "succeeded"
    STATUS_RETRY = "retry"
    STATUS_FAIL = "failed"

    def __init__(self, id: int | None = None, attempt: int | None = None) -> None:  # noqa: A002
        self.id = id
        self.attempt = attempt
        self.status = self.STATUS_SUCCESS

    def run(self, job_params: dict[str, Any], job_options: dict[str, Any]) -> None:
        """Do the work. Override this."""
        raise NotImplementedError(f"{type(self).__name__}.run is not implemented")

    def retry(self, reason: str = "retry requested", delay_s: float | None = None) -> Retry:
        """The exception to raise for "try again if attempts remain" (``raise self.retry()``)."""
        return Retry(reason, delay_s=delay_s)

    def fail(self, reason: str = "failed by handler") -> Fail:
        """The exception to raise for "fail now, never retry" (``raise self.fail()``)."""
        return Fail(reason)

    def ready(self) -> Readiness:
        """Start a readiness chain for ``is_ready_to_run``-style checks::

        return self.ready().limit_to(5, {"bucket": params["bucket"]}).check(lambda p, o: ...)
        """
        return Readiness(type(self))

    def set_status(self, status: str) -> None:
        """Decide the outcome now but keep running: STATUS_RETRY, STATUS_FAIL or STATUS_SUCCESS."""
        if status not in (self.STATUS_SUCCESS, self.STATUS_RETRY, self.STATUS_FAIL):
            raise ValueError(f"unknown job status {status!r}")
        self.status = status
