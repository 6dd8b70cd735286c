-- _lzq_recur_run(recurring, slot): create the run of a recurring job for one slot; returns its id.
-- Called by lzq_recur, _lzq_recur_next and lzq_sweep. The run is an ordinary job built from the
-- definition (so it obeys every push rule), carrying recurring_id and recur_slot. Returns NULL,
-- writing nothing, when the definition is gone (removed meanwhile), that slot already has a run or
-- the definition already has a pending run: a cheap check first (the sweep retries often), then
-- the unique indexes on lzq_jobs settle races, so whoever gets there first creates it, exactly once.
CREATE OR REPLACE FUNCTION _lzq_recur_run(recurring lzq_recurring, slot timestamptz)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_job lzq_jobs;
    v_id bigint;
BEGIN
    -- The definition must still exist, and stay until this run is committed: lzq_unrecur takes
    -- it FOR UPDATE, so this waits for a removal in progress and then finds it gone.
    PERFORM 1 FROM lzq_recurring AS r WHERE r.id = recurring.id FOR KEY SHARE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF EXISTS (SELECT 1 FROM lzq_jobs AS j
                WHERE j.recurring_id = recurring.id
                  AND (j.recur_slot = slot
                       OR j.status IN ('waiting', 'scheduled', 'ready', 'dispatched', 'running'))) THEN
        RETURN NULL;
    END IF;
    -- The slot goes in as a JSON timestamp (ISO 8601, numeric offset): whatever the session's
    -- DateStyle, it reads back as the same instant.
    v_job := _lzq_new_job(recurring.job_name, recurring.params,
                          recurring.options || jsonb_build_object('start_time', slot));
    v_job.id := nextval('lzq_jobs_id_seq');
    v_job.recurring_id := recurring.id;
    v_job.recur_slot := slot;
    INSERT INTO lzq_jobs SELECT (v_job).* ON CONFLICT DO NOTHING RETURNING id INTO v_id;
    IF v_id IS NOT NULL AND (v_job.status = 'ready' OR v_job.status = 'waiting') THEN
        PERFORM _lzq_wake(v_job.queue_name);
    END IF;
    RETURN v_id;
END;
$$;

COMMENT ON FUNCTION _lzq_recur_run(lzq_recurring, timestamptz) IS
    'Create the run of a recurring job for a slot, unless that slot or another pending run exists.';
