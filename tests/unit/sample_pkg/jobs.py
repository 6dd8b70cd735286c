"""A submodule of the allowed package tests.unit.sample_pkg."""

from __future__ import annotations

from tests.unit.sample_app import CALLS


def nested(job_params: dict, job_options: dict) -> None:
    """A function in a submodule of an allowed package."""
    CALLS.append(("nested", job_params, job_options))


class Cleanup:
    """A plain class in a submodule, reached as ``...jobs.Cleanup#purge``."""

    def purge(self, job_params: dict, job_options: dict) -> None:
        CALLS.append(("Cleanup.purge", job_params, job_options))
