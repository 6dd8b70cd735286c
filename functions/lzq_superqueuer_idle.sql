-- lzq_superqueuer_idle(superqueuer_id, idle): a superqueuer says whether it sleeps on LISTEN.
-- Called by the superqueuer before it sleeps (true: pushes and finishes NOTIFY it) and when it wakes
-- (false: it polls its own loop, so nobody pays for NOTIFY). Doubles as its heartbeat; the sweep
-- forgets superqueuers that stopped calling.
CREATE OR REPLACE FUNCTION lzq_superqueuer_idle(superqueuer_id text, idle boolean)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO lzq_superqueuers AS s (superqueuer_id, idle)
    VALUES (lzq_superqueuer_idle.superqueuer_id, lzq_superqueuer_idle.idle)
    ON CONFLICT ON CONSTRAINT lzq_superqueuers_pkey DO UPDATE
       SET idle = excluded.idle, heartbeat_at = now();
END;
$$;

COMMENT ON FUNCTION lzq_superqueuer_idle(text, boolean) IS
    'Superqueuer: set its sleeping-on-LISTEN flag (and heartbeat).';
