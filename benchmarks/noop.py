"""The no-op handler the benchmarks run (`--app benchmarks.noop`): measures lzq, not the job."""

import lzq


@lzq.handler
def noop(params, options):
    """Do nothing: every second spent is queue overhead."""
