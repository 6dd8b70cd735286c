"""Handler for benchmarks/fairness.py (`--app benchmarks.sleepy`): a job that takes params["s"] seconds."""

import time

import lzq


@lzq.handler
def sleepy(params, options):
    """Sleep for params["s"] seconds (0: return at once), standing in for real work."""
    if params.get("s"):
        time.sleep(params["s"])
