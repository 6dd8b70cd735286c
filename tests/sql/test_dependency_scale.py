"""Large graphs: a 10,000-job fan-in and a 10,000-deep chain resolve, in one go, without deadlocks."""

from __future__ import annotations

import psycopg
from psycopg.types.json import Jsonb

N = 10_000

# Plays superqueuer and worker inside the server (one round trip): claim, start, finish until done.
_RUN_ALL = """
DO $$
DECLARE
    v_batch jsonb;
BEGIN
    PERFORM lzq_heartbeat('w', 'h', 1, '{default}', 1000);
    LOOP
        SELECT jsonb_agg(jsonb_build_object('id', c.id, 'token', c.dispatch_token)) INTO v_batch
          FROM lzq_claim(1000) AS c;
        EXIT WHEN v_batch IS NULL;
        SELECT jsonb_agg(jsonb_build_object('id', s.id, 'attempt', s.attempt,
                                            'outcome', coalesce(s.params ->> 'outcome', 'succeeded')))
          INTO v_batch
          FROM lzq_start('w', v_batch) AS s;
        PERFORM lzq_finish('w', v_batch);
    END LOOP;
END $$;
"""


def _statuses(conn: psycopg.Connection) -> dict[str, int]:
    return dict(conn.execute("SELECT status, count(*) FROM lzq_jobs GROUP BY status").fetchall())


def test_fan_in_of_ten_thousand_waits_for_all_then_runs(conn):
    parents = [
        row[0]
        for row in conn.execute(
            "SELECT * FROM lzq_push_many(%s)", (Jsonb([{"job_name": "parent"}] * N),)
        ).fetchall()
    ]
    child = conn.execute("SELECT lzq_push('child', '{}', %s)", (Jsonb({"depends_on": parents}),)).fetchone()[
        0
    ]
    assert conn.execute("SELECT status, unmet_deps FROM lzq_jobs WHERE id = %s", (child,)).fetchone() == (
        "waiting",
        N,
    )

    conn.execute(_RUN_ALL)

    assert _statuses(conn) == {"succeeded": N + 1}


def test_chain_ten_thousand_deep_runs_in_order(conn):
    conn.execute(f"""
        DO $$
        DECLARE v_prev bigint := lzq_push('link');
        BEGIN
            FOR i IN 2 .. {N} LOOP
                v_prev := lzq_push('link', '{{}}',
                                   jsonb_build_object('depends_on', jsonb_build_array(v_prev)));
            END LOOP;
        END $$""")
    assert _statuses(conn) == {"ready": 1, "waiting": N - 1}

    conn.execute(_RUN_ALL)

    assert _statuses(conn) == {"succeeded": N}
    out_of_order = conn.execute("""
        SELECT count(*) FROM lzq_dependencies d
          JOIN lzq_jobs c ON c.id = d.job_id JOIN lzq_jobs p ON p.id = d.depends_on
         WHERE c.started_at < p.finished_at""").fetchone()[0]
    assert out_of_order == 0


def test_failure_at_the_root_of_a_ten_thousand_deep_chain_cancels_it_all(conn):
    conn.execute(f"""
        DO $$
        DECLARE v_prev bigint := lzq_push('link', '{{"outcome": "failed"}}', '{{"max_failures": 1}}');
        BEGIN
            FOR i IN 2 .. {N} LOOP
                v_prev := lzq_push('link', '{{}}',
                                   jsonb_build_object('depends_on', jsonb_build_array(v_prev)));
            END LOOP;
        END $$""")

    conn.execute(_RUN_ALL)

    assert _statuses(conn) == {"failed": 1, "cancelled": N - 1}
    deepest = conn.execute("SELECT last_error FROM lzq_jobs ORDER BY id DESC LIMIT 1").fetchone()[0]
    assert deepest.startswith("cancelled: dependency ") and deepest.endswith(" cancelled")
