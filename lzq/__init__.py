"""lzq: a PostgreSQL-first job queue. Rules in PL/pgSQL, delivery over RabbitMQ."""

from __future__ import annotations

import threading
from typing import Any

__version__ = "0.1.0"

from lzq.client import BufferedPush, Client  # noqa: E402
from lzq.errors import (  # noqa: E402
    ConfigurationError,
    Fail,
    InvalidArgument,
    JobNotFound,
    LeaseLost,
    LzqError,
    Retry,
    UnknownHandler,
)
from lzq.job import Job, JobInfo, JobRef, Status  # noqa: E402
from lzq.readiness import Readiness  # noqa: E402
from lzq.recurrence import Recurring  # noqa: E402
from lzq.registry import Registry, default_registry  # noqa: E402

#: Register a handler function or Job class: ``@lzq.handler`` or ``@lzq.handler("name")``.
handler = default_registry.handler
#: Register a service object: ``lzq.service("mailer", Mailer())`` makes ``"mailer#send"`` resolve.
service = default_registry.service

_default_client: Client | None = None
_default_lock = threading.Lock()


def default_client() -> Client:
    """The Client that module-level ``lzq.push`` etc. use, configured from ``LZQ_*`` variables."""
    global _default_client
    with _default_lock:
        if _default_client is None:
            _default_client = Client()
        return _default_client


def fence(conn: Any, job_options: dict[str, Any]) -> None:
    """Fence a handler's side effect with its job's attempt, inside the caller's transaction::

        with conn.transaction():
            lzq.fence(conn, job_options)          # raises lzq.LeaseLost if the job moved on
            conn.execute("UPDATE accounts ...")   # cannot overlap another run of this job

    Until that transaction ends, the job cannot be given to another worker; once it has been, the
    fence fails instead. ``conn`` is a psycopg connection to the lzq database.
    """
    from lzq import db

    db.fetch(conn, "SELECT lzq_fence(%s, %s)", (job_options["id"], job_options["attempt"]))


def push(*args: Any, **kwargs: Any) -> JobRef | BufferedPush:
    """``Client.push`` on the default client."""
    return default_client().push(*args, **kwargs)


def schedule(*args: Any, **kwargs: Any) -> JobRef:
    """``Client.schedule`` on the default client."""
    return default_client().schedule(*args, **kwargs)


def push_many(*args: Any, **kwargs: Any) -> list[JobRef] | list[BufferedPush]:
    """``Client.push_many`` on the default client."""
    return default_client().push_many(*args, **kwargs)


def recur(*args: Any, **kwargs: Any) -> Recurring:
    """``Client.recur`` on the default client."""
    return default_client().recur(*args, **kwargs)


def get(*args: Any, **kwargs: Any) -> JobInfo:
    """``Client.get`` on the default client."""
    return default_client().get(*args, **kwargs)


def cancel(*args: Any, **kwargs: Any) -> bool:
    """``Client.cancel`` on the default client."""
    return default_client().cancel(*args, **kwargs)


__all__ = [
    "BufferedPush",
    "Client",
    "ConfigurationError",
    "Fail",
    "InvalidArgument",
    "Job",
    "JobInfo",
    "JobNotFound",
    "LeaseLost",
    "JobRef",
    "LzqError",
    "Readiness",
    "Recurring",
    "Registry",
    "Retry",
    "Status",
    "UnknownHandler",
    "cancel",
    "default_client",
    "default_registry",
    "fence",
    "get",
    "handler",
    "push",
    "push_many",
    "recur",
    "schedule",
    "service",
]
