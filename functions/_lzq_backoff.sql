-- _lzq_backoff(attempts): how long a failed job waits before its next attempt.
-- Called by lzq_finish when a handler asks for a retry without a delay of its own.
-- Exponential (2, 4, 8, ... seconds after attempt 1, 2, 3, ...), capped at one hour.
CREATE OR REPLACE FUNCTION _lzq_backoff(attempts integer)
RETURNS interval
LANGUAGE sql IMMUTABLE AS $$
    SELECT make_interval(secs => least(power(2, least(attempts, 12)), 3600));
$$;

COMMENT ON FUNCTION _lzq_backoff(integer) IS
    'Retry delay after the given number of attempts: 2^attempts seconds, at most one hour.';
