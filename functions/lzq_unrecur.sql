-- lzq_unrecur(known_as): remove a recurring job; returns true if it existed.
-- Called by users (plain SQL, lzq.Client.unrecur, `lzq recur remove`). Its pending run is
-- cancelled unless it is already running (lzq_cancel's rules); a running one finishes, with no
-- successor (the runs keep their history, detached: recurring_id becomes NULL).
CREATE OR REPLACE FUNCTION lzq_unrecur(known_as text)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
BEGIN
    SELECT r.id INTO v_id FROM lzq_recurring AS r WHERE r.known_as = lzq_unrecur.known_as;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    -- Its runs first (in id order), then the definition: the order lzq_finish takes them in (it
    -- locks a run, then reads the definition to create the next run). The other way round, a run
    -- finishing meanwhile deadlocked with the detaching of that run.
    PERFORM 1 FROM lzq_jobs AS j WHERE j.recurring_id = v_id ORDER BY j.id FOR NO KEY UPDATE;
    SELECT r.id INTO v_id FROM lzq_recurring AS r WHERE r.id = v_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN false;  -- removed meanwhile
    END IF;
    PERFORM lzq_cancel(j.id)
       FROM lzq_jobs AS j
      WHERE j.recurring_id = v_id AND j.status IN ('waiting', 'scheduled', 'ready', 'dispatched');
    -- Detached here (recurring_id is not a foreign key): a new statement, so it also sees a run
    -- that a finish, waited for above, created meanwhile.
    UPDATE lzq_jobs AS j SET recurring_id = NULL WHERE j.recurring_id = v_id;
    DELETE FROM lzq_recurring AS r WHERE r.id = v_id;
    RETURN true;
END;
$$;

COMMENT ON FUNCTION lzq_unrecur(text) IS 'Remove a recurring job by known_as; its pending run is cancelled.';
