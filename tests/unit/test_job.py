"""lzq.job and lzq.errors: the Job base class, Status, JobRef/JobInfo, and the error hierarchy."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

import lzq
from lzq.errors import (
    ConfigurationError,
    Fail,
    InvalidArgument,
    JobNotFound,
    LzqError,
    Retry,
    UnknownHandler,
)
from lzq.job import Job, JobInfo, JobRef, Status

NOW = dt.datetime(2030, 1, 1, 3, 0, tzinfo=dt.UTC)


def test_status_values_are_the_sql_state_names() -> None:
    assert [s.value for s in Status] == [
        "waiting",
        "scheduled",
        "ready",
        "dispatched",
        "running",
        "succeeded",
        "failed",
        "cancelled",
    ]


def test_status_compares_equal_to_its_string() -> None:
    assert Status.READY == "ready"
    assert Status("failed") is Status.FAILED


def test_only_succeeded_failed_and_cancelled_are_final() -> None:
    assert {s for s in Status if s.is_final} == {Status.SUCCEEDED, Status.FAILED, Status.CANCELLED}


def test_job_statuses_match_the_sql_outcomes() -> None:
    assert Job.STATUS_SUCCESS == Status.SUCCEEDED
    assert Job.STATUS_FAIL == Status.FAILED
    assert Job.STATUS_RETRY == "retry"


def test_new_job_has_id_attempt_and_success_status() -> None:
    job = Job(id=5, attempt=2)

    assert (job.id, job.attempt, job.status) == (5, 2, Job.STATUS_SUCCESS)


def test_job_without_run_raises_not_implemented() -> None:
    with pytest.raises(NotImplementedError, match="Job.run"):
        Job().run({}, {})


@pytest.mark.parametrize("status", [Job.STATUS_SUCCESS, Job.STATUS_RETRY, Job.STATUS_FAIL])
def test_set_status_records_a_known_status(status: str) -> None:
    job = Job()
    job.set_status(status)

    assert job.status == status


def test_set_status_rejects_an_unknown_status() -> None:
    with pytest.raises(ValueError, match="unknown job status"):
        Job().set_status("exploded")


def test_retry_returns_a_retry_exception_with_reason_and_delay() -> None:
    exc = Job().retry("rate limited", delay_s=30)

    assert isinstance(exc, Retry)
    assert (str(exc), exc.delay_s) == ("rate limited", 30)
    assert Job().retry().delay_s is None


def test_fail_returns_a_fail_exception_with_reason() -> None:
    exc = Job().fail("bad input")

    assert isinstance(exc, Fail)
    assert str(exc) == "bad input"


def test_job_ref_converts_to_int_and_is_immutable() -> None:
    ref = JobRef(12)

    assert int(ref) == 12
    with pytest.raises(dataclasses.FrozenInstanceError):
        ref.id = 13  # type: ignore[misc]


def test_job_info_from_row_makes_status_a_status_enum() -> None:
    row = (1, "mailer", {"a": 1}, "default", 0, "mailer", "ready", NOW, 0, 3, None, NOW, None, None, None)

    info = JobInfo.from_row(row)

    assert info.status is Status.READY
    assert (info.id, info.job_name, info.params, info.run_at) == (1, "mailer", {"a": 1}, NOW)


def test_job_info_columns_match_its_fields() -> None:
    columns = [c.strip().split(" AS ")[-1].removeprefix("j.") for c in JobInfo.COLUMNS.split(",")]

    assert columns == [f.name for f in dataclasses.fields(JobInfo)]


@pytest.mark.parametrize(
    "error",
    [
        InvalidArgument("priority", "x"),
        JobNotFound(1),
        UnknownHandler("x"),
        ConfigurationError("x"),
        Retry(),
        Fail(),
    ],
)
def test_every_lzq_error_is_an_lzq_error(error: Exception) -> None:
    assert isinstance(error, LzqError)


def test_invalid_argument_carries_the_field_and_is_a_value_error() -> None:
    error = InvalidArgument("priority", "priority: must be between -20 and 20")

    assert isinstance(error, ValueError)
    assert error.field == "priority"
    assert str(error) == "priority: must be between -20 and 20"


def test_job_not_found_carries_the_id_and_is_a_lookup_error() -> None:
    error = JobNotFound(42)

    assert isinstance(error, LookupError)
    assert (error.job_id, str(error)) == (42, "job 42 not found")


def test_errors_are_exported_from_the_package() -> None:
    assert (lzq.LzqError, lzq.InvalidArgument, lzq.JobNotFound, lzq.UnknownHandler) == (
        LzqError,
        InvalidArgument,
        JobNotFound,
        UnknownHandler,
    )
