"""Handler fixtures for test_registry: an ``--app`` module as a user would write one."""

from __future__ import annotations

import os  # noqa: F401 - a refusal test reaches os through this module ("sample_app.os#system")
from typing import Any

import lzq

#: What the handlers below were called with, in order; test_registry clears it before each test.
CALLS: list[tuple[Any, ...]] = []

#: Not a handler: dotted job names must refuse it.
NOT_CALLABLE = 42


@lzq.handler("unit_sample_app_registered")
def registered_by_decorator(job_params: dict, job_options: dict) -> None:
    """Registered in lzq.default_registry when load_app imports this module."""
    CALLS.append(("registered_by_decorator", job_params, job_options))


def send_report(job_params: dict, job_options: dict) -> None:
    """A plain function reached by dotted path."""
    CALLS.append(("send_report", job_params, job_options))


def one_argument(job_params: dict) -> None:
    """A handler that only wants the params."""
    CALLS.append(("one_argument", job_params))


def _private_helper(job_params: dict, job_options: dict) -> None:
    """Private by convention: never a job."""
    CALLS.append(("_private_helper", job_params, job_options))


class BuildReport(lzq.Job):
    """A Job subclass reached by dotted path, with an extra public and a private method."""

    def run(self, job_params: dict, job_options: dict) -> None:
        CALLS.append(("BuildReport.run", self, job_params, job_options))

    def rebuild(self, job_params: dict, job_options: dict) -> None:
        CALLS.append(("BuildReport.rebuild", self, job_params, job_options))

    def _secret(self, job_params: dict, job_options: dict) -> None:
        CALLS.append(("BuildReport._secret", self, job_params, job_options))


class PlainWorker:
    """Not an lzq.Job: made with no arguments, then ``run`` is called."""

    def run(self, job_params: dict) -> None:
        CALLS.append(("PlainWorker.run", self, job_params))
