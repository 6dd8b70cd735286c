-- lzq_push_buffered(pushes): write in pushes that came through the RabbitMQ buffer, once per push uuid.
-- Called by lzq-buffer, once per batch of messages, which it acks only after this has committed.
-- `pushes` is a JSON array of {"uuid", "job_name", "job_params", "job_options"} as
-- Client.push(..., via="buffer") publishes them. Each job is validated and created exactly as
-- lzq_push_many does it: (new) → waiting | scheduled | ready | cancelled.
-- Once per uuid: lzq_buffered records every uuid with the job it created or the error that rejected
-- it. A uuid recorded before (a redelivery, a producer's retried publish, a repeat in this batch)
-- writes nothing and is reported 'duplicate' with the recorded job id or error.
-- One bad push never fails the call (it would block the buffer forever): it is recorded with its
-- error, job_id NULL, and reported 'rejected'; the rest of the batch goes in. An element without a
-- valid uuid cannot be recorded: 'rejected' with a NULL uuid.
-- Returns one row per element, in input order: (uuid, job_id, outcome, error, field), outcome being
-- 'inserted', 'duplicate' or 'rejected'.
-- Locks: the jobs that pushes depend on, FOR SHARE (see _lzq_gate_on_dependencies), and each new
-- uuid's entry in lzq_buffered's primary key: a concurrent call carrying the same uuid waits for
-- this one to commit, then reports 'duplicate'. Uuids are recorded in sorted order so two such calls
-- cannot deadlock. Each element is validated in its own exception block (a subtransaction; it takes
-- a transaction id only when the push locks dependencies).
-- Raises 22023 naming `pushes` only when pushes is not a JSON array.
--   SELECT * FROM lzq_push_buffered('[{"uuid": "5b6c...", "job_name": "mailer", "job_params": {}}]');
CREATE OR REPLACE FUNCTION lzq_push_buffered(pushes jsonb)
RETURNS TABLE (uuid uuid, job_id bigint, outcome text, error text, field text)
LANGUAGE plpgsql AS $$
DECLARE
    c_uuid_pattern constant text := '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$';
    v_count integer;
    -- Per element, by position (1-based): its uuid (NULL if it has none), then the outcome.
    v_uuids uuid[];
    v_job_ids bigint[];
    v_outcomes text[];
    v_errors text[];
    v_fields text[];
    v_new integer[] := '{}';  -- positions this call records in lzq_buffered
    v_won uuid[];
    v_lost bigint[] := '{}';  -- job ids taken for pushes a concurrent call recorded first
    v_known record;
    v_element jsonb;
    v_i integer;
    v_first integer;
    v_job lzq_jobs;
    v_deps bigint[];
    v_rows lzq_jobs[] := '{}';
    v_dep_jobs bigint[] := '{}';
    v_dep_parents bigint[] := '{}';
    v_column text;
    v_message text;
BEGIN
    IF pushes IS NULL OR jsonb_typeof(pushes) <> 'array' THEN
        PERFORM _lzq_invalid('pushes', 'must be a JSON array of {"uuid", "job_name", "job_params", "job_options"}');
    END IF;
    v_count := jsonb_array_length(pushes);
    IF v_count = 0 THEN
        RETURN;
    END IF;
    v_job_ids := array_fill(NULL::bigint, ARRAY[v_count]);
    v_outcomes := array_fill(NULL::text, ARRAY[v_count]);
    v_errors := array_fill(NULL::text, ARRAY[v_count]);
    v_fields := array_fill(NULL::text, ARRAY[v_count]);
    SELECT array_agg(CASE WHEN jsonb_typeof(e.value -> 'uuid') = 'string'
                               AND e.value ->> 'uuid' ~ c_uuid_pattern
                          THEN (e.value ->> 'uuid')::uuid END
                     ORDER BY e.ordinality)
      INTO v_uuids
      FROM jsonb_array_elements(pushes) WITH ORDINALITY AS e;

    -- Pushes recorded by an earlier call: their outcome stands, nothing is written for them.
    FOR v_known IN
        SELECT b.uuid, b.job_id, b.error, b.error_field FROM lzq_buffered AS b WHERE b.uuid = ANY (v_uuids)
    LOOP
        FOREACH v_i IN ARRAY array_positions(v_uuids, v_known.uuid) LOOP
            v_outcomes[v_i] := 'duplicate';
            v_job_ids[v_i] := v_known.job_id;
            v_errors[v_i] := v_known.error;
            v_fields[v_i] := v_known.error_field;
        END LOOP;
    END LOOP;

    FOR v_i IN 1 .. v_count LOOP
        CONTINUE WHEN v_outcomes[v_i] IS NOT NULL;
        IF v_uuids[v_i] IS NULL THEN
            v_outcomes[v_i] := 'rejected';
            v_errors[v_i] := 'uuid: must be an object with a "uuid" string in the form 8-4-4-4-12 hex digits';
            v_fields[v_i] := 'uuid';
            CONTINUE;
        END IF;
        v_first := array_position(v_uuids, v_uuids[v_i]);
        IF v_first < v_i THEN
            v_outcomes[v_i] := 'duplicate';  -- the same push twice in this batch: filled in below
            CONTINUE;
        END IF;
        v_element := pushes -> (v_i - 1);
        -- Its own block, so one bad push rolls back only its own validation (and dependency locks).
        -- data_exception is SQLSTATE class 22: 22023 from the validators and any other error the
        -- input alone causes. Deadlocks, cancellations and lost connections are not caught: they
        -- fail the whole call, and lzq-buffer retries the batch.
        BEGIN
            v_job := _lzq_job_from_json(v_element, ARRAY['uuid']);
            v_deps := _lzq_dependency_ids(v_element -> 'job_options');
        EXCEPTION WHEN data_exception THEN
            GET STACKED DIAGNOSTICS v_column = COLUMN_NAME, v_message = MESSAGE_TEXT;
            v_outcomes[v_i] := 'rejected';
            v_errors[v_i] := v_message;
            v_fields[v_i] := nullif(v_column, '');
            v_new := v_new || v_i;
            CONTINUE;
        END;
        v_job.id := nextval('lzq_jobs_id_seq');
        v_rows := v_rows || v_job;
        v_dep_jobs := v_dep_jobs || array_fill(v_job.id, ARRAY[cardinality(v_deps)]);
        v_dep_parents := v_dep_parents || v_deps;
        v_outcomes[v_i] := 'inserted';
        v_job_ids[v_i] := v_job.id;
        v_new := v_new || v_i;
    END LOOP;

    IF cardinality(v_new) > 0 THEN
        -- Record the uuids first: a uuid that another lzq-buffer recorded since our look-up above
        -- (a redelivery it is handling at the same time) is skipped here, after waiting for its commit.
        WITH recorded AS (
            INSERT INTO lzq_buffered AS b (uuid, job_id, error, error_field)
            SELECT v_uuids[n.i], v_job_ids[n.i], v_errors[n.i], v_fields[n.i]
              FROM unnest(v_new) AS n(i)
             ORDER BY v_uuids[n.i]
            ON CONFLICT ON CONSTRAINT lzq_buffered_pkey DO NOTHING
            RETURNING b.uuid
        )
        SELECT coalesce(array_agg(r.uuid), '{}') INTO v_won FROM recorded AS r;

        IF cardinality(v_won) < cardinality(v_new) THEN
            -- Lost races: the other call's outcome stands; drop the jobs we built for them.
            FOREACH v_i IN ARRAY v_new LOOP
                CONTINUE WHEN v_uuids[v_i] = ANY (v_won);
                IF v_job_ids[v_i] IS NOT NULL THEN
                    v_lost := v_lost || v_job_ids[v_i];
                END IF;
                SELECT b.job_id, b.error, b.error_field INTO v_known
                  FROM lzq_buffered AS b WHERE b.uuid = v_uuids[v_i];
                v_outcomes[v_i] := 'duplicate';
                v_job_ids[v_i] := v_known.job_id;
                v_errors[v_i] := v_known.error;
                v_fields[v_i] := v_known.error_field;
            END LOOP;
            SELECT coalesce(array_agg(r ORDER BY r.id), '{}') INTO v_rows
              FROM unnest(v_rows) AS r WHERE r.id <> ALL (v_lost);
            SELECT coalesce(array_agg(d.job_id), '{}'), coalesce(array_agg(d.parent_id), '{}')
              INTO v_dep_jobs, v_dep_parents
              FROM unnest(v_dep_jobs, v_dep_parents) AS d(job_id, parent_id)
             WHERE d.job_id <> ALL (v_lost);
        END IF;

        IF cardinality(v_rows) > 0 THEN
            PERFORM _lzq_insert_jobs(v_rows, v_dep_jobs, v_dep_parents);
        END IF;
    END IF;

    -- Repeats within this batch report what their first copy became.
    FOR v_i IN 1 .. v_count LOOP
        IF v_uuids[v_i] IS NOT NULL THEN
            v_first := array_position(v_uuids, v_uuids[v_i]);
            IF v_first < v_i THEN
                v_outcomes[v_i] := 'duplicate';
                v_job_ids[v_i] := v_job_ids[v_first];
                v_errors[v_i] := v_errors[v_first];
                v_fields[v_i] := v_fields[v_first];
            END IF;
        END IF;
    END LOOP;

    RETURN QUERY
        SELECT v_uuids[s.i], v_job_ids[s.i], v_outcomes[s.i], v_errors[s.i], v_fields[s.i]
          FROM generate_series(1, v_count) AS s(i)
         ORDER BY s.i;
END;
$$;

COMMENT ON FUNCTION lzq_push_buffered(jsonb) IS
    'Write in buffered pushes once per uuid: lzq_push_buffered(''[{"uuid":..., "job_name":..., ...}]'') -> (uuid, job_id, outcome, error, field) per element.';
