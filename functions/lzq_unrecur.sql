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
    SELECT r.id INTO v_id FROM lzq_recurring AS r WHERE r.known_as = lzq_unrecur.known_as FOR UPDATE;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM lzq_cancel(j.id)
       FROM lzq_jobs AS j
      WHERE j.recurring_id = v_id AND j.status IN ('waiting', 'scheduled', 'ready', 'dispatched');
    DELETE FROM lzq_recurring AS r WHERE r.id = v_id;
    RETURN true;
END;
$$;

COMMENT ON FUNCTION lzq_unrecur(text) IS 'Remove a recurring job by known_as; its pending run is cancelled.';
