-- _lzq_take_slots(job_id, limits): take one free slot of every limit_to of a job being claimed.
-- Called by _lzq_claim, inside the claim transaction. limits: [{"key": ..., "count": n}, ...]; a job
-- may take slots 1..n of a key (slot rows are created on first use). Skips slot rows other
-- transactions hold (FOR UPDATE SKIP LOCKED), so claims never wait on each other. Returns NULL when
-- every limit had a slot, else the key of the first full limit, after giving back what it took.
CREATE OR REPLACE FUNCTION _lzq_take_slots(job_id bigint, limits jsonb)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_limit record;
BEGIN
    FOR v_limit IN
        SELECT l ->> 'key' AS key, (l ->> 'count')::integer AS count FROM jsonb_array_elements(limits) AS l
    LOOP
        IF NOT EXISTS (SELECT 1 FROM lzq_slots AS s WHERE s.limit_key = v_limit.key AND s.slot = v_limit.count) THEN
            INSERT INTO lzq_slots (limit_key, slot)
            SELECT v_limit.key, g FROM generate_series(1, v_limit.count) AS g
            ON CONFLICT DO NOTHING;
        END IF;
        UPDATE lzq_slots AS s
           SET job_id = _lzq_take_slots.job_id
         WHERE (s.limit_key, s.slot) = (
               SELECT f.limit_key, f.slot
                 FROM lzq_slots AS f
                WHERE f.limit_key = v_limit.key AND f.slot <= v_limit.count AND f.job_id IS NULL
                ORDER BY f.slot
                LIMIT 1
                  FOR UPDATE SKIP LOCKED);
        IF NOT FOUND THEN
            UPDATE lzq_slots AS s SET job_id = NULL WHERE s.job_id = _lzq_take_slots.job_id;
            RETURN v_limit.key;
        END IF;
    END LOOP;
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION _lzq_take_slots(bigint, jsonb) IS
    'Claim: take a slot of each limit_to for a job; NULL on success, else the full limit key (nothing kept).';
