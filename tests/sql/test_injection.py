"""Names are data: injection-looking bucket keys (limit_to) and known_as values are stored verbatim,
run through every function that handles them, and leave the schema alone."""

from __future__ import annotations

from psycopg.types.json import Jsonb

from tests.sql.helpers import checks_done, schema_snapshot

NASTY = [
    "x'); DROP TABLE lzq_jobs; --",
    '"; DELETE FROM lzq_workers; --',
    "$$; DROP FUNCTION lzq_claim; $$",
    "%s %L %I ${queue} \\x00",
    "名前 ☃",
]


def test_limit_keys_with_injection_strings_are_stored_and_enforced_verbatim(conn):
    before = schema_snapshot(conn)
    conn.execute("SELECT lzq_heartbeat('w1', 'h', 1, '{default}', 50)")
    ids = []
    for text in NASTY:
        for _ in range(2):  # two jobs per key, limit 1: one runs, one waits on that very key
            job_id = conn.execute(
                "SELECT lzq_push('job', '{}', '{\"depends_on\": [\"#is_ready_to_run\"]}')"
            ).fetchone()[0]
            checks_done(conn, {"id": job_id, "outcome": "passed", "limits": [{"key": text, "count": 1}]})
            ids.append(job_id)
    claimed = conn.execute("SELECT id FROM lzq_claim(100)").fetchall()

    assert len(claimed) == len(NASTY)
    held = dict(conn.execute("SELECT limit_key, count(*) FROM lzq_slots WHERE job_id IS NOT NULL GROUP BY 1"))
    assert held == dict.fromkeys(NASTY, 1)
    waiting = sorted(
        r[0] for r in conn.execute("SELECT waiting_on_limit FROM lzq_jobs WHERE status = 'waiting'")
    )
    assert waiting == sorted(NASTY)
    assert schema_snapshot(conn) == before


def test_known_as_with_injection_strings_is_stored_verbatim_and_removable(conn):
    before = schema_snapshot(conn)
    for text in NASTY:
        conn.execute("SELECT lzq_recur('job', %s, %s, '1 hour')", (Jsonb({"k": text}), text))

    stored = {r[0]: r[1] for r in conn.execute("SELECT known_as, params FROM lzq_recurring")}
    assert stored == {text: {"k": text} for text in NASTY}
    for text in NASTY:
        assert conn.execute("SELECT lzq_unrecur(%s)", (text,)).fetchone()[0] is True
    assert conn.execute("SELECT count(*) FROM lzq_recurring").fetchone()[0] == 0
    assert schema_snapshot(conn) == before
