"""Handler for benchmarks/limits.py: a job limited per bucket and overall, recording its own runs."""

from __future__ import annotations

import os
import threading
import time

import psycopg

import lzq

_local = threading.local()


class Limited(lzq.Job):
    """Sleeps params["sleep_s"]; at most 2 at once per bucket and 3 at once overall."""

    def run(self, job_params: dict, job_options: dict) -> None:
        if getattr(_local, "conn", None) is None:
            _local.conn = psycopg.connect(os.environ["LZQ_DSN"], autocommit=True)
        run_id = _local.conn.execute(
            "INSERT INTO bench_runs (job_id, bucket) VALUES (%s, %s) RETURNING run_id",
            (job_options["id"], job_params["bucket"]),
        ).fetchone()[0]
        time.sleep(job_params["sleep_s"])
        _local.conn.execute(
            "UPDATE bench_runs SET finished_at = clock_timestamp() WHERE run_id = %s", (run_id,)
        )

    def is_ready_to_run(self, job_params: dict, job_options: dict) -> lzq.Readiness:
        return self.ready().limit_to(BUCKET_LIMIT, {"bucket": job_params["bucket"]}).limit_to(CLASS_LIMIT)


BUCKET_LIMIT = 2
CLASS_LIMIT = 3
