"""The command line: `lzq migrate|status|push|get|cancel|prune|queue|recur|superqueuer|worker|buffer|demo`."""

from __future__ import annotations

import functools
import json
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

import click

from lzq import log
from lzq.config import DEFAULT_AMQP_URL, Settings
from lzq.errors import InvalidArgument, LzqError


def _common_options(fn: Callable) -> Callable:
    """--dsn, --amqp-url, --log-level on every command, so each one also works on its own."""

    @click.option(
        "--dsn",
        envvar="LZQ_DSN",
        show_envvar=True,
        default="",
        help="PostgreSQL conninfo or URL (empty: libpq defaults, PGHOST etc.).",
    )
    @click.option(
        "--amqp-url",
        envvar="LZQ_AMQP_URL",
        show_envvar=True,
        default=DEFAULT_AMQP_URL,
        show_default=True,
        help="RabbitMQ URL.",
    )
    @click.option(
        "--log-level",
        envvar="LZQ_LOG_LEVEL",
        show_envvar=True,
        default="info",
        show_default=True,
        type=click.Choice(["debug", "info", "warning", "error"]),
        help="Least severe event logged.",
    )
    @functools.wraps(fn)
    def wrapper(dsn: str, amqp_url: str, log_level: str, **kwargs: Any) -> Any:
        log.configure(log_level)
        settings = Settings.from_env(dsn=dsn or None, amqp_url=amqp_url)
        try:
            return fn(settings, **kwargs)
        except LzqError as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper


def _app_options(fn: Callable) -> Callable:
    @click.option(
        "--app",
        "apps",
        multiple=True,
        metavar="MODULE",
        help="Import MODULE (it registers handlers) and allow dotted job names inside it. Repeatable.",
    )
    @click.option(
        "--allow",
        "allowed",
        multiple=True,
        metavar="MODULE",
        help="Allow dotted job names inside MODULE without importing it up front. Repeatable.",
    )
    @functools.wraps(fn)
    def wrapper(*args: Any, apps: tuple[str, ...], allowed: tuple[str, ...], **kwargs: Any) -> Any:
        from lzq.registry import default_registry

        sys.path.insert(0, os.getcwd())  # `--app myapp.jobs` from the project directory, like `python -m`
        try:
            default_registry.load_app(apps)
        except ImportError as exc:
            raise click.ClickException(f"--app: cannot import {exc.name or exc}: {exc}") from None
        default_registry.allow(*allowed)
        return fn(*args, **kwargs)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="lzq")
def cli() -> None:
    """lzq: a job queue whose rules live in PostgreSQL and whose deliveries go over RabbitMQ."""


@cli.command()
@_common_options
def migrate(settings: Settings) -> None:
    """Install or upgrade lzq's tables and functions (idempotent; one transaction)."""
    from lzq import schema

    applied = schema.migrate(settings.dsn)
    click.echo("lzq schema installed" if applied else "lzq schema already up to date")


@cli.command()
@_common_options
def status(settings: Settings) -> None:
    """Show job counts per queue and status, why waiting jobs wait, and the live workers."""
    from lzq import db
    from lzq.job import Status

    with db.connect(settings.dsn, application_name="lzq-status") as conn:
        counts = db.fetch(conn, "SELECT queue_name, status, count(*) FROM lzq_jobs GROUP BY 1, 2")
        waiting = db.fetch(
            conn,
            """SELECT queue_name,
                      CASE WHEN unmet_deps > 0 THEN 'dependencies'
                           WHEN waiting_on_limit IS NOT NULL THEN 'limit ' || waiting_on_limit
                           ELSE 'check ' || array_to_string(checks, ', ') END,
                      count(*)
                 FROM lzq_jobs WHERE status = 'waiting' GROUP BY 1, 2 ORDER BY 1, 3 DESC, 2""",
        )
        workers = db.fetch(
            conn,
            """SELECT worker_id, queues, slots, stopping,
                                           round(extract(epoch FROM now() - heartbeat_at)::numeric, 1)
                                      FROM lzq_workers ORDER BY worker_id""",
        )
    statuses = [s.value for s in Status]
    table: dict[str, dict[str, int]] = {}
    for queue_name, job_status, count in counts:
        table.setdefault(queue_name, {})[job_status] = count
    width = max([len("queue"), *(len(q) for q in table)])
    click.echo(f"{'queue':<{width}}  " + "  ".join(f"{s:>10}" for s in statuses))
    for queue_name in sorted(table):
        row = table[queue_name]
        click.echo(f"{queue_name:<{width}}  " + "  ".join(f"{row.get(s, 0):>10}" for s in statuses))
    if not table:
        click.echo("(no jobs)")
    if waiting:
        click.echo("\nwaiting for:")
        for queue_name, reason, count in waiting:
            click.echo(f"  {queue_name:<{width}}  {count:>10}  {reason}")
    click.echo(f"\nworkers: {len(workers)}")
    for worker_id, queues, slots, stopping, age_s in workers:
        state = " stopping" if stopping else ""
        click.echo(f"  {worker_id}  queues={','.join(queues)} slots={slots} heartbeat={age_s}s ago{state}")


@cli.command()
@click.argument("job_name")
@click.argument("job_params", default="{}")
@click.option("--queue", "queue_name", help="Queue name (default: default).")
@click.option("--priority", type=int, help="-20..20, nice semantics: lower runs sooner.")
@click.option("--start-time", help="'now', '+<interval>' (e.g. '+1 hour') or a timestamp.")
@click.option("--max-failures", type=int, help="Attempts that may fail before the job fails for good.")
@click.option("--fairness-key", help="Jobs with different keys share the queue fairly (default: job name).")
@click.option(
    "--via",
    type=click.Choice(["database", "buffer"]),
    default="database",
    show_default=True,
    help="'buffer': publish to RabbitMQ for lzq-buffer to write in (no database needed); prints a uuid.",
)
@_common_options
def push(settings: Settings, job_name: str, job_params: str, via: str, **options: Any) -> None:
    """Queue JOB_NAME with JOB_PARAMS (a JSON object); prints the new job id (or the push's uuid)."""
    from lzq.client import Client

    params, opts = _json_object(job_params), {k: v for k, v in options.items() if v is not None}
    with Client(settings=settings) as client:
        if via == "buffer":
            click.echo(client.push(job_name, params, opts, via="buffer").uuid)
        else:
            click.echo(client.push(job_name, params, opts).id)


@cli.command()
@click.argument("job_id", type=int)
@_common_options
def get(settings: Settings, job_id: int) -> None:
    """Print one job as JSON."""
    import dataclasses

    from lzq.client import Client

    with Client(settings=settings) as client:
        info = client.get(job_id)
    click.echo(json.dumps(dataclasses.asdict(info), default=str, indent=2))


@cli.command()
@click.argument("job_id", type=int)
@_common_options
def cancel(settings: Settings, job_id: int) -> None:
    """Cancel a job that has not started yet."""
    from lzq.client import Client

    with Client(settings=settings) as client:
        cancelled = client.cancel(job_id)
    click.echo("cancelled" if cancelled else "not cancelled: already running or finished")
    sys.exit(0 if cancelled else 1)


@cli.command()
@click.option(
    "--older-than",
    metavar="INTERVAL",
    help="A PostgreSQL interval ('7 days', '12 hours', '0': all). Default: LZQ_RETENTION, else 1 day.",
)
@click.option(
    "--batch",
    type=click.IntRange(min=1),
    default=10_000,
    show_default=True,
    help="Most rows deleted per transaction.",
)
@_common_options
def prune(settings: Settings, older_than: str | None, batch: int) -> None:
    """Delete finished jobs (succeeded, failed, cancelled) older than INTERVAL, oldest first.

    Also deletes buffer records (via="buffer" pushes) written in before then. Jobs that are not
    finished stay, and so do the latest run of each recurring job and runs whose slot is ahead.
    Deletes in batches, each its own transaction, until none is left; prints how many rows went.
    Superqueuers prune the same way, a batch every 10 seconds (more often while behind), with
    LZQ_RETENTION unless it is 0, off or never.
    """
    from lzq import db, maintenance

    older_than = older_than or settings.retention_interval
    if older_than is None:
        raise click.UsageError(f"LZQ_RETENTION={settings.retention!r} keeps jobs: give --older-than")
    with db.connect(settings.dsn, application_name="lzq-prune") as conn:
        try:
            deleted = maintenance.prune_all(conn, older_than, batch)
        except InvalidArgument as exc:
            raise click.BadParameter(str(exc), param_hint="--older-than") from None
    click.echo(f"pruned {deleted} rows (finished jobs and buffer records) older than {older_than}")


@cli.group()
def queue() -> None:
    """Queues: the order in which each dispatches its ready jobs."""


@queue.command("mode")
@click.argument("queue_name")
@click.argument("mode", required=False, type=click.Choice(["fair", "priority", "fifo"]))
@_common_options
def queue_mode(settings: Settings, queue_name: str, mode: str | None) -> None:
    """Show QUEUE_NAME's dispatch order, or set it to MODE.

    fair (default): job types (or fairness keys) share the queue by nice weight, FIFO within one,
    nothing starves. priority: strict nice order, a lower level can starve. fifo: ready order.
    Setting a mode re-orders the jobs already waiting, keeping their relative order.
    """
    from lzq.client import Client

    with Client(settings=settings) as client:
        try:
            in_force = client.queue_mode(queue_name, mode)
        except InvalidArgument as exc:
            raise click.BadParameter(str(exc), param_hint=exc.field) from None
    click.echo(f"{queue_name}: {in_force}")


@cli.group()
def recur() -> None:
    """Recurring jobs: add (or update), list, remove."""


@recur.command("add")
@click.argument("job_name")
@click.argument("known_as")
@click.argument("job_params", default="{}")
@click.option("--interval", help="'HH:MM:SS', a PostgreSQL interval ('1 day') or seconds.")
@click.option("--base-time", help="Align runs on base_time + k * interval.")
@click.option("--cron", help="A cron expression (croniter syntax) instead of --interval.")
@click.option("--timezone", default="UTC", show_default=True, help="Zone of the cron and of day/month steps.")
@click.option("--queue", "queue_name", help="Queue name (default: default).")
@click.option("--priority", type=int, help="-20..20, nice semantics: lower runs sooner.")
@click.option("--max-failures", type=int, help="Attempts that may fail before a run fails for good.")
@_common_options
def recur_add(
    settings: Settings,
    job_name: str,
    known_as: str,
    job_params: str,
    interval: str | None,
    base_time: str | None,
    cron: str | None,
    timezone: str,
    **options: Any,
) -> None:
    """Define JOB_NAME to recur as KNOWN_AS (the same KNOWN_AS again updates it)."""
    from lzq.client import Client

    with Client(settings=settings) as client:
        defined = client.recur(
            job_name,
            _json_object(job_params),
            known_as,
            interval,
            base_time,
            {k: v for k, v in options.items() if v is not None},
            cron=cron,
            timezone=timezone,
        )
    click.echo(f"{defined.known_as}: next run {defined.next_run_at or 'when its cron time is computed'}")


@recur.command("list")
@_common_options
def recur_list(settings: Settings) -> None:
    """List recurring jobs with their schedule and next run."""
    from lzq.client import Client

    with Client(settings=settings) as client:
        definitions = client.recurring()
    for d in definitions:
        schedule = f"cron '{d.cron}' {d.timezone}" if d.cron else f"every {d.interval}"
        if d.base_time:
            schedule += f" from {d.base_time.isoformat()}"
        click.echo(
            f"{d.known_as}  {d.job_name}  {schedule}  next={d.next_run_at and d.next_run_at.isoformat()}"
        )
    if not definitions:
        click.echo("(no recurring jobs)")


@recur.command("remove")
@click.argument("known_as")
@_common_options
def recur_remove(settings: Settings, known_as: str) -> None:
    """Remove the recurring job KNOWN_AS (its pending run is cancelled unless running)."""
    from lzq.client import Client

    with Client(settings=settings) as client:
        removed = client.unrecur(known_as)
    click.echo("removed" if removed else f"no recurring job {known_as!r}")
    sys.exit(0 if removed else 1)


@cli.command()
@_app_options
@_common_options
def superqueuer(settings: Settings) -> None:
    """Run a superqueuer: promote due jobs, dispatch ready ones into free worker slots, sweep."""
    from lzq.superqueuer import Superqueuer

    daemon = Superqueuer(settings)
    _run_daemon(daemon.run, daemon.stop)


@cli.command()
@click.option(
    "--queue",
    "queues",
    multiple=True,
    default=["default"],
    show_default=True,
    help="Queue to consume. Repeatable.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="Jobs run at once (threads); also the credit this worker offers.",
)
@_app_options
@_common_options
def worker(settings: Settings, queues: tuple[str, ...], concurrency: int) -> None:
    """Run a worker: consume QUEUEs, run handlers, report to PostgreSQL.

    SIGTERM: stop taking work, give running jobs a few seconds, hand the rest back, exit 0.
    """
    from lzq.worker import Worker

    daemon = Worker(settings, list(queues), concurrency)
    _run_daemon(daemon.run, daemon.stop)


@cli.command()
@_common_options
def buffer(settings: Settings) -> None:
    """Run a buffer daemon: write pushes made with via="buffer" from RabbitMQ into PostgreSQL.

    Batches of up to LZQ_BUFFER_BATCH pushes, one transaction each, acked after the commit;
    PostgreSQL and RabbitMQ outages are waited out. SIGTERM: exit 0; unacked pushes go back to the
    queue. Needs no --app: every rule it applies lives in SQL.
    """
    from lzq.buffer import Buffer

    daemon = Buffer(settings)
    _run_daemon(daemon.run, daemon.stop)


@cli.command()
@click.option(
    "--jobs", type=click.IntRange(min=1), default=3000, show_default=True, help="How many jobs to push."
)
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True, help="Worker processes.")
@click.option(
    "--concurrency", type=click.IntRange(min=1), default=8, show_default=True, help="Slots per worker."
)
@_common_options
def demo(settings: Settings, jobs: int, workers: int, concurrency: int) -> None:
    """Run a real workload end to end: migrate, start daemons, push jobs, show progress, stop."""
    from lzq import demo as demo_module

    sys.exit(demo_module.run(settings, jobs=jobs, workers=workers, concurrency=concurrency))


def _json_object(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint="JOB_PARAMS") from None


def _run_daemon(run: Callable[[], int], stop: Callable[[], None]) -> None:
    """Run a daemon with SIGTERM/SIGINT as graceful stop, then exit hard.

    The hard exit (os._exit) ends job threads still running past the grace period: they were
    handed back and will run again elsewhere, so they must not go on here.
    """
    signal.signal(signal.SIGTERM, lambda *_: stop())
    signal.signal(signal.SIGINT, lambda *_: stop())
    code = run()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main() -> None:
    """Entry point of `lzq` and `python -m lzq`."""
    cli()


def superqueuer_main() -> None:
    """Entry point of `lzq-superqueuer`."""
    superqueuer()


def worker_main() -> None:
    """Entry point of `lzq-worker`."""
    worker()


def buffer_main() -> None:
    """Entry point of `lzq-buffer`."""
    buffer()
