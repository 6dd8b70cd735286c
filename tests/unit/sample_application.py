"""Never imported by the tests: its name merely starts with "sample_app".

test_registry checks that refusing a job name inside it leaves it out of ``sys.modules``, i.e. that
lzq refuses before importing. Nothing may import this module.
"""

from __future__ import annotations


def looks_allowed(job_params: dict, job_options: dict) -> None:
    """Would run if the allow-list matched by string prefix instead of by package."""
    raise AssertionError("tests.unit.sample_application must never run")
