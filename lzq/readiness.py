"""Readiness chains: ``self.ready().limit_to(n, bucket).limit_to(m).check(fn).any(chain, chain)``.

A job whose ``depends_on`` names a check (``"#is_ready_to_run"``) waits until the superqueuer finds
its chain ready: every ``check`` true (AND) and, for each ``any(...)``, at least one of its chains
ready (OR). The chain's ``limit_to`` parts are then stored with the job and enforced by PostgreSQL
at claim time, across every superqueuer and worker.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from lzq.errors import InvalidArgument

#: A check: called with (job_params, job_options), truthy when the job may run.
Check = Callable[[dict[str, Any], dict[str, Any]], Any]


def limit_key(owner: type, bucket: Mapping[str, Any] | None) -> str:
    """The slot key of ``limit_to``: the handler class, plus the bucket as canonical JSON."""
    key = f"{owner.__module__}.{owner.__qualname__}"
    if bucket:
        key += "|" + json.dumps(bucket, sort_keys=True, separators=(",", ":"), default=str)
    return key


class Readiness:
    """A chain of readiness conditions for jobs of one handler class (``Job.ready()`` starts one)."""

    def __init__(self, owner: type) -> None:
        self.owner = owner
        self._limits: dict[str, int] = {}
        self._checks: list[Check] = []
        self._alternatives: list[tuple[Readiness, ...]] = []

    def limit_to(self, count: int, bucket: Mapping[str, Any] | None = None) -> Readiness:
        """At most ``count`` jobs of this class dispatched or running at once (per ``bucket``)."""
        if type(count) is not int or count < 1:
            raise InvalidArgument("limit_to.count", f"limit_to.count: must be an integer >= 1, got {count!r}")
        if bucket is not None and not isinstance(bucket, Mapping):
            raise InvalidArgument(
                "limit_to.bucket", f"limit_to.bucket: must be a dict, got {type(bucket).__name__}"
            )
        key = limit_key(self.owner, bucket)
        self._limits[key] = min(count, self._limits.get(key, count))
        return self

    def check(self, predicate: Check) -> Readiness:
        """AND: the job may run only when ``predicate(job_params, job_options)`` is true."""
        if not callable(predicate):
            raise InvalidArgument("check", f"check: must be callable, got {type(predicate).__name__}")
        self._checks.append(predicate)
        return self

    def any(self, *chains: Readiness) -> Readiness:
        """OR: at least one of ``chains`` must be ready (each chain is an AND of its checks)."""
        for chain in chains:
            if not isinstance(chain, Readiness):
                raise InvalidArgument("any", f"any: takes readiness chains (self.ready()...), got {chain!r}")
            if chain._limits or any(c._limits for group in chain._alternatives for c in group):
                raise InvalidArgument(
                    "any", "any: limit_to inside any() is not supported; put it on the outer chain"
                )
        if chains:
            self._alternatives.append(chains)
        return self

    def is_ready(self, job_params: dict[str, Any], job_options: dict[str, Any]) -> bool:
        """Evaluate the checks (limits are not checked here: PostgreSQL enforces them at claim)."""
        return all(check(job_params, job_options) for check in self._checks) and all(
            any(chain.is_ready(job_params, job_options) for chain in group) for group in self._alternatives
        )

    @property
    def limits(self) -> list[dict[str, Any]]:
        """The ``limit_to`` parts as stored with the job: ``[{"key": ..., "count": n}]``."""
        return [{"key": key, "count": count} for key, count in sorted(self._limits.items())]
