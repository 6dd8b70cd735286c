def test_fixture_database_is_migrated(conn):
    assert conn.execute("SELECT count(*) FROM lzq_jobs").fetchone()[0] == 0
    assert conn.execute("SELECT lzq_push('a')").fetchone()[0] == 1
