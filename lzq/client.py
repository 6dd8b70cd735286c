"""The producer API: push, schedule, push_many, get, cancel — one SQL function call each."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, overload
from uuid import UUID, uuid4

from lzq import amqp, db, recurrence
from lzq.config import Settings
from lzq.errors import InvalidArgument, JobNotFound, LzqError
from lzq.job import JobInfo, JobRef
from lzq.recurrence import Recurring
from lzq.registry import canonical_name, default_registry

JobName = str | Mapping[str, Any]
Options = Mapping[str, Any]
#: How a push reaches PostgreSQL: "database" (at once, one SQL call) or "buffer" (through RabbitMQ
#: and lzq-buffer, so it works while PostgreSQL is down).
Via = Literal["database", "buffer"]

#: _lzq_new_job's limit on params, checked here too for buffered pushes: lzq-buffer would reject them.
MAX_PARAMS_BYTES = 1048576


@dataclasses.dataclass(frozen=True)
class BufferedPush:
    """A push made with ``via="buffer"``: RabbitMQ has it (persistent, confirmed), PostgreSQL not yet.

    It has no job id until lzq-buffer writes it in; ``Client.buffered_job(push)`` returns the job
    from then on. ``uuid`` is made by the client and makes the push idempotent: however often
    RabbitMQ delivers its message, it becomes one job. Invalid input that only SQL can see (an
    unknown ``depends_on`` id, a bad ``priority``) is reported in lzq-buffer's log and by
    ``buffered_job``, not here.
    """

    uuid: UUID


class Client:
    """Pushes jobs into, and reads jobs from, one lzq database.

    ``Client(dsn=..., amqp_url=...)``; anything not given comes from ``LZQ_*`` environment variables.
    Every method takes ``conn=`` (a psycopg connection) to act inside the caller's transaction: the
    job then exists exactly when that transaction commits. Thread-safe; connections are pooled.
    """

    def __init__(
        self, dsn: str | None = None, amqp_url: str | None = None, *, settings: Settings | None = None
    ) -> None:
        self.settings = settings or Settings.from_env(dsn=dsn, amqp_url=amqp_url)
        self._pool: Any = None
        self._pool_lock = threading.Lock()
        self._publisher: amqp.Publisher | None = None
        self._publisher_lock = threading.Lock()

    # -- producing ---------------------------------------------------------------------------------

    @overload
    def push(
        self,
        job_name: JobName,
        job_params: Mapping[str, Any] | None = None,
        job_options: Options | None = None,
        /,
        *,
        conn: Any = None,
        via: Literal["database"] = "database",
        **options: Any,
    ) -> JobRef: ...

    @overload
    def push(
        self,
        job_name: JobName,
        job_params: Mapping[str, Any] | None = None,
        job_options: Options | None = None,
        /,
        *,
        conn: Any = None,
        via: Literal["buffer"],
        **options: Any,
    ) -> BufferedPush: ...

    def push(
        self,
        job_name: JobName,
        job_params: Mapping[str, Any] | None = None,
        job_options: Options | None = None,
        /,
        *,
        conn: Any = None,
        via: Via = "database",
        **options: Any,
    ) -> JobRef | BufferedPush:
        """Queue a job; returns a JobRef (``.id``).

        Options, as a dict (seed style) or keywords, same meaning: ``queue_name`` (default
        "default"), ``start_time`` (datetime, "now", "+1 hour", "2030-01-01 03:00:00"), ``priority``
        (-20..20, nice: lower runs sooner, default 0), ``max_failures`` (default 3), ``fairness_key``
        (default: the job name). Bad input raises InvalidArgument naming the field; nothing is written.

        ``via="buffer"`` publishes the push to RabbitMQ's buffer queue instead, for lzq-buffer to
        write in; it needs no database and returns a BufferedPush (no job id yet). Only what Python
        can check is checked here; a relative start_time ("+1 hour") counts from when lzq-buffer
        writes the push in.
        """
        name, params, opts = _prepare(job_name, job_params, job_options, options)
        if _buffered(via, conn):
            _check_storable(params, opts)
            return self._publish_buffered([_push_json(name, params, opts)])[0]
        rows = self._fetch(conn, "SELECT lzq_push(%s, %s::jsonb, %s::jsonb)", (name, params, opts))
        return JobRef(rows[0][0])

    def schedule(
        self,
        job_name: JobName,
        job_params: Mapping[str, Any] | None,
        start_time: Any,
        job_options: Options | None = None,
        /,
        *,
        conn: Any = None,
        **options: Any,
    ) -> JobRef:
        """Queue a job to start at ``start_time`` (same forms as the ``start_time`` option)."""
        name, params, opts = _prepare(job_name, job_params, job_options, options)
        rows = self._fetch(
            conn,
            "SELECT lzq_schedule(%s, %s::jsonb, %s, %s::jsonb)",
            (name, params, _time_text(start_time), opts),
        )
        return JobRef(rows[0][0])

    @overload
    def push_many(
        self,
        jobs: Iterable[Sequence[Any] | Mapping[str, Any]],
        *,
        conn: Any = None,
        via: Literal["database"] = "database",
    ) -> list[JobRef]: ...

    @overload
    def push_many(
        self, jobs: Iterable[Sequence[Any] | Mapping[str, Any]], *, conn: Any = None, via: Literal["buffer"]
    ) -> list[BufferedPush]: ...

    def push_many(
        self, jobs: Iterable[Sequence[Any] | Mapping[str, Any]], *, conn: Any = None, via: Via = "database"
    ) -> list[JobRef] | list[BufferedPush]:
        """Queue many jobs in one statement; all or nothing. Returns JobRefs in input order.

        Each job is ``(job_name, job_params[, job_options])`` or a dict with those keys. An invalid
        job raises InvalidArgument whose field is ``jobs[<index>].<field>``.

        ``via="buffer"``: one batch of confirmed publishes; returns BufferedPushes in input order.
        Python-side checks are all or nothing (nothing is published); after that each push lands
        on its own, and SQL-side errors reject only the push they concern.
        """
        buffered = _buffered(via, conn)
        parts = [_job_parts(index, job) for index, job in enumerate(jobs)]
        if not parts:
            return []
        batch_json = None if buffered else _plain_batch(parts)
        if batch_json is None:
            batch = []
            for index, (name, params, opts) in enumerate(parts):
                try:
                    name, params, opts = _prepare(name, params, opts, {})
                    if buffered:
                        _check_storable(params, opts)
                except InvalidArgument as exc:
                    raise InvalidArgument(f"jobs[{index}].{exc.field}", f"jobs[{index}]: {exc}") from None
                batch.append(_push_json(name, params, opts))
            if buffered:
                return self._publish_buffered(batch)
            batch_json = "[" + ",".join(batch) + "]"
        rows = self._fetch(conn, "SELECT * FROM lzq_push_many(%s::jsonb)", (batch_json,))
        return [JobRef(row[0]) for row in rows]

    # -- recurring jobs ------------------------------------------------------------------------------

    def recur(
        self,
        job_name: JobName,
        job_params: Mapping[str, Any] | None,
        known_as: str,
        /,
        interval: Any = None,
        base_time: Any = None,
        job_options: Options | None = None,
        *,
        cron: str | None = None,
        timezone: str = "UTC",
        conn: Any = None,
        **options: Any,
    ) -> Recurring:
        """Define a recurring job, or update the one with this ``known_as`` (never duplicated).

        Give ``interval`` ("12:00:00", "1 day", seconds, timedelta), optionally with ``base_time``
        (runs fall on base_time + k * interval), or ``cron`` (croniter syntax, in ``timezone``).
        After each run completes, the next is the first slot after the completion (with
        base_time or cron) or completion + interval (without); missed slots collapse into one run.
        Other options are those of ``push``. Returns the definition with its pending run.
        """
        name, params, opts = _prepare(job_name, job_params, job_options, options)
        if isinstance(base_time, dt.datetime) and base_time.tzinfo is None:
            base_time = base_time.replace(tzinfo=recurrence.zone(timezone))  # wall clock of the schedule
        cron_times = None
        if cron is not None:
            # SQL picks the next fire time at each completion from these; superqueuers add more.
            after = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
            cron_times = recurrence.cron_fire_times(cron, timezone, after)
        rows = self._fetch(
            conn,
            "SELECT lzq_recur(%s, %s::jsonb, %s, %s, %s, %s::jsonb,"
            " cron => %s, timezone => %s, cron_slots => %s)",
            (
                name,
                params,
                known_as,
                recurrence.interval_text(interval),
                _time_text(base_time, "base_time"),
                opts,
                cron,
                timezone,
                cron_times,
            ),
        )
        return self._recurring(conn, "r.id = %s", rows[0][0])[0]

    def unrecur(self, known_as: str, *, conn: Any = None) -> bool:
        """Remove a recurring job (its pending run is cancelled unless running); False if unknown."""
        return bool(self._fetch(conn, "SELECT lzq_unrecur(%s)", (known_as,))[0][0])

    def recurring(self, *, conn: Any = None) -> list[Recurring]:
        """Every recurring job definition, by known_as, with its pending run."""
        return self._recurring(conn, "true", None)

    def _recurring(self, conn: Any, where: str, param: Any) -> list[Recurring]:
        sql = f"SELECT {Recurring.COLUMNS} FROM {Recurring.FROM} WHERE {where} ORDER BY r.known_as"
        return [Recurring(*row) for row in self._fetch(conn, sql, (param,) if param is not None else None)]

    def _publish_buffered(self, pushes: list[str]) -> list[BufferedPush]:
        """Publish pushes (JSON objects, given without their uuid) to the buffer queue: persistent,
        confirmed by RabbitMQ before this returns. Raises if any was not confirmed."""
        results = [BufferedPush(uuid4()) for _ in pushes]
        messages = [
            amqp.Message(
                amqp.BUFFER_QUEUE,
                f'{{"uuid":"{result.uuid}",{push[1:]}'.encode(),
                str(result.uuid),
                persistent=True,
            )
            for result, push in zip(results, pushes, strict=True)
        ]
        # One batch in flight per publisher; a retry re-sends the same uuids, so a copy that did get
        # through the first time becomes no second job.
        with self._publisher_lock:
            if self._publisher is None:
                self._publisher = amqp.Publisher(
                    self.settings.amqp_url, self.settings.amqp_prefix, name="lzq-client"
                )
            try:
                confirmed = self._publisher.publish(messages)
            except amqp.TRANSIENT_ERRORS:
                # E.g. the broker restarted since the last push: once more on a new connection.
                confirmed = self._publisher.publish(messages)
            unsent = [m for m, ok in zip(messages, confirmed, strict=True) if not ok]
            if unsent:
                # Unroutable (the queue was deleted) or nacked: reconnect, which declares the queue
                # again, and retry those once.
                self._publisher.close()
                confirmed = self._publisher.publish(unsent)
                unsent = [m for m, ok in zip(unsent, confirmed, strict=True) if not ok]
        if unsent:
            raise LzqError(
                f"RabbitMQ did not accept {len(unsent)} of {len(messages)} buffered pushes "
                f"(queue {amqp.queue_for(self.settings.amqp_prefix, amqp.BUFFER_QUEUE)}); "
                "those were not buffered"
            )
        return results

    # -- reading and cancelling --------------------------------------------------------------------

    def buffered_job(self, push: BufferedPush | UUID | str, *, conn: Any = None) -> JobRef | None:
        """The job a buffered push became: a JobRef once lzq-buffer has written it in, else None.

        Raises InvalidArgument (naming the field) if lzq-buffer rejected the push.
        """
        key = push.uuid if isinstance(push, BufferedPush) else UUID(str(push))
        rows = self._fetch(
            conn, "SELECT b.job_id, b.error, b.error_field FROM lzq_buffered AS b WHERE b.uuid = %s", (key,)
        )
        if not rows:
            return None
        job_id, error, field = rows[0]
        if job_id is None:
            raise InvalidArgument(field, error)
        return JobRef(job_id)

    def get(self, job_id: int | JobRef, *, conn: Any = None) -> JobInfo:
        """The job's current row (status, attempts, last_error, ...); JobNotFound if there is none."""
        job_id = _job_id(job_id)
        rows = self._fetch(conn, f"SELECT {JobInfo.COLUMNS} FROM lzq_jobs AS j WHERE j.id = %s", (job_id,))
        if not rows:
            raise JobNotFound(job_id)
        return JobInfo.from_row(rows[0])

    def cancel(self, job_id: int | JobRef, *, conn: Any = None) -> bool:
        """Cancel a job that has not started: True if cancelled, False if running or finished."""
        return bool(self._fetch(conn, "SELECT lzq_cancel(%s)", (_job_id(job_id),))[0][0])

    def queue_mode(self, queue_name: str, mode: str | None = None, *, conn: Any = None) -> str:
        """Read, or set, how ``queue_name`` orders its ready jobs; returns the mode in force.

        ``"fair"`` (the default): flows (fairness_key, priority) share the queue in proportion to
        their nice weights, FIFO inside a flow, nothing starves. ``"priority"``: strict nice order,
        then ready order -- a lower level runs only when no higher one is ready, so it can starve.
        ``"fifo"``: ready order, nice ignored. A change re-orders the queue's ready jobs under the
        new mode, keeping their relative order (one update per ready job).
        """
        return self._fetch(conn, "SELECT lzq_queue_mode(%s, %s)", (queue_name, mode))[0][0]

    # -- plumbing ----------------------------------------------------------------------------------

    def close(self) -> None:
        """Close pooled connections and the buffer publisher's RabbitMQ connection."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        with self._publisher_lock:
            if self._publisher is not None:
                self._publisher.close()
                self._publisher = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _fetch(self, conn: Any, sql: str, params: Any) -> list[tuple]:
        if conn is not None:
            return db.fetch(conn, sql, params)
        with self._get_pool().connection() as pooled:
            return db.fetch(pooled, sql, params)

    def _get_pool(self) -> Any:
        with self._pool_lock:
            if self._pool is None:
                self._pool = db.pool(self.settings.dsn, application_name="lzq-client")
            return self._pool


def _prepare(
    job_name: Any, job_params: Any, job_options: Any, keywords: Mapping[str, Any]
) -> tuple[str, str, str]:
    """(job name, params JSON, options JSON) as SQL takes them, from Python-side forms.

    Validation of values stays in SQL (one set of rules for every language); this only merges the
    options dict with keywords, converts dict job names and datetimes, and serialises.
    """
    if (job_options is None or job_options == {}) and not keywords and type(job_name) is str:
        # The common push, without options: nothing to merge or convert.
        return job_name, _json_text({} if job_params is None else job_params, "job_params"), "{}"
    if job_options is not None and not isinstance(job_options, Mapping):
        raise InvalidArgument("job_options", f"job_options: must be a dict, got {type(job_options).__name__}")
    options = dict(job_options or {})
    for key, value in keywords.items():
        if key in options and options[key] != value:
            raise InvalidArgument(key, f"{key}: given twice with different values")
        options[key] = value
    if "start_time" in options:
        options["start_time"] = _time_text(options["start_time"])
    name = canonical_name(job_name)
    if options.get("depends_on") is not None:
        options["depends_on"] = _dependencies(name, options["depends_on"])
    if job_params is None:
        job_params = {}
    return name, _json_text(job_params, "job_params"), _json_text(options, "job_options")


def _job_parts(index: int, job: Any) -> tuple[Any, Any, Any]:
    """(job_name, job_params, job_options) of one element of push_many's ``jobs``."""
    # Tuples are told by exact type before any ABC check (those cost 0.4 ms per 1,000 jobs).
    is_tuple = type(job) is tuple
    if not is_tuple and isinstance(job, Mapping):
        return job.get("job_name"), job.get("job_params"), job.get("job_options")
    if (is_tuple or (isinstance(job, Sequence) and not isinstance(job, str))) and 1 <= len(job) <= 3:
        return (*job, None, None)[:3]
    raise InvalidArgument(f"jobs[{index}]", f"jobs[{index}]: must be (job_name, job_params, job_options)")


#: Options that pass to SQL as they are (no datetime, dependency or job name to convert).
_PLAIN_OPTIONS = frozenset({"queue_name", "priority", "max_failures", "fairness_key"})


def _plain_batch(parts: list[tuple[Any, Any, Any]]) -> str | None:
    """The JSON lzq_push_many takes for a batch whose jobs all have a str name and no options but
    _PLAIN_OPTIONS, in one encoder call (a third of push_many's time for 1,000 jobs went to encoding
    them one by one); None for any other batch, or one JSON cannot carry, which takes the per-job
    path (the path that names a bad field). Values are left to SQL to check, as on that path."""
    if not all(
        type(name) is str
        and (opts is None or (isinstance(opts, Mapping) and _PLAIN_OPTIONS.issuperset(opts)))
        for name, _, opts in parts
    ):
        return None
    try:
        return json.dumps(
            [
                {"job_name": name, "job_params": params, "job_options": opts}
                if opts
                else {"job_name": name, "job_params": params}
                for name, params, opts in parts
            ],
            allow_nan=False,
            separators=(",", ":"),
        )
    except (TypeError, ValueError):
        return None


def _dependencies(job_name: str, depends_on: Any) -> list[int | str]:
    """Job ids (ints, JobRefs, anything with an int ``id``) and check references, as SQL takes them.

    A check whose handler this process knows but which has no such method is refused here; SQL
    checks the ids exist and the references' form."""
    if isinstance(depends_on, str | bytes) or not isinstance(depends_on, Iterable):
        raise InvalidArgument(
            "depends_on", "depends_on: must be a list of jobs, job ids and check references"
        )
    result: list[int | str] = []
    for item in depends_on:
        if isinstance(item, str):
            problem = default_registry.missing_check_method(job_name, item)
            if problem:
                raise InvalidArgument("depends_on", f"depends_on: {problem}")
            result.append(item)
        elif isinstance(item, int) and not isinstance(item, bool):
            result.append(item)
        elif isinstance(getattr(item, "id", None), int):
            result.append(item.id)
        else:
            raise InvalidArgument(
                "depends_on", f"depends_on: {item!r} is not a job, a job id or a check reference"
            )
    return result


def _time_text(value: Any, field: str = "start_time") -> Any:
    """datetime → ISO text (naive means this process's local time), timedelta → "+N seconds";
    strings pass through for SQL to parse."""
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.astimezone()).isoformat()
    if isinstance(value, dt.timedelta):
        return f"+{value.total_seconds()} seconds"
    if value is None or isinstance(value, str):
        return value
    raise InvalidArgument(
        field, f"{field}: must be a datetime, timedelta or string, got {type(value).__name__}"
    )


def _json_text(value: Any, field: str) -> str:
    """Serialise params/options here, so a value JSON cannot carry is an InvalidArgument naming the
    field (not a driver error), and SQL receives text it casts to jsonb once."""
    try:
        return json.dumps(value, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(field, f"{field}: not JSON-serialisable: {exc}") from None


def _buffered(via: str, conn: Any) -> bool:
    """Whether a push goes through the buffer; refuses what cannot work."""
    if via not in ("database", "buffer"):
        raise InvalidArgument("via", f"via: must be 'database' or 'buffer', got {via!r}")
    if via == "buffer" and conn is not None:
        raise InvalidArgument(
            "conn", "conn: a push via the buffer goes to RabbitMQ, outside any database transaction"
        )
    return via == "buffer"


def _push_json(name: str, params: str, options: str) -> str:
    """One push as lzq_push_many and lzq_push_buffered take it."""
    return f'{{"job_name":{json.dumps(name)},"job_params":{params},"job_options":{options}}}'


def _check_storable(params: str, options: str) -> None:
    """Refuse now, for a buffered push, what PostgreSQL would refuse only in lzq-buffer: strings
    jsonb cannot hold, and params over the size limit (measured as jsonb prints them)."""
    for field, text in (("job_params", params), ("job_options", options)):
        # Without a \u escape in the ASCII text there is no NUL and no surrogate to look for.
        problem = jsonb_problem(json.loads(text)) if "\\u" in text else None
        if problem:
            raise InvalidArgument(field, f"{field}: {problem}")
    if 2 * len(params) > MAX_PARAMS_BYTES:  # jsonb's text adds at most a space per separator
        size = len(json.dumps(json.loads(params), ensure_ascii=False, separators=(", ", ": ")).encode())
        if size > MAX_PARAMS_BYTES:
            raise InvalidArgument(
                "job_params", f"job_params: must be at most {MAX_PARAMS_BYTES} bytes of JSON, got {size}"
            )


def jsonb_problem(value: Any) -> str | None:
    """Why PostgreSQL's jsonb cannot store this parsed JSON value, or None if it can.

    JSON allows two things jsonb refuses: NUL characters and unpaired UTF-16 surrogates in strings.
    """
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
            strings: Iterable[Any] = item.keys()
        elif isinstance(item, list):
            stack.extend(item)
            continue
        else:
            strings = (item,)
        for text in strings:
            if not isinstance(text, str):
                continue
            if "\x00" in text:
                return "contains a NUL character (\\u0000), which PostgreSQL cannot store"
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                return "contains an unpaired surrogate (\\ud800-\\udfff), which PostgreSQL cannot store"
    return None


def _job_id(job_id: int | JobRef) -> int:
    return job_id.id if isinstance(job_id, JobRef) else int(job_id)
