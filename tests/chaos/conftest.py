"""The chaos run uses the end-to-end fixtures: real daemons and the independent record of runs."""

from tests.e2e.conftest import daemons, pytest_runtest_makereport, runs_table  # noqa: F401
