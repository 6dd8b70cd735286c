"""Job names to handlers, and the policy on what may run: registered, or inside --app/--allow modules."""

from __future__ import annotations

import functools
import importlib
import inspect
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from lzq.errors import InvalidArgument, UnknownHandler
from lzq.job import Job

#: What a resolved job name becomes: call it with (job_params, job_options); it returns the outcome
#: status the handler chose (Job.STATUS_*) or raises.
Runner = Callable[[dict[str, Any], dict[str, Any]], str]

_SERVICE_TYPES = {"service": "service", "pimple": "service", "silex": "service", "class": "class"}


def canonical_name(job_name: str | Mapping[str, Any]) -> str:
    """The stored form of a job name: the seed's dict form becomes ``"name"`` or ``"name#method"``."""
    if isinstance(job_name, str):
        return job_name
    if not isinstance(job_name, Mapping):
        raise InvalidArgument(
            "job_name", f"job_name: must be a string or a dict, got {type(job_name).__name__}"
        )
    unknown = set(job_name) - {"type", "name", "method"}
    if unknown:
        raise InvalidArgument(
            "job_name", f"job_name: unknown keys {sorted(unknown)} (use type, name, method)"
        )
    kind = _SERVICE_TYPES.get(job_name.get("type", "class"))
    name, method = job_name.get("name"), job_name.get("method")
    if kind is None:
        raise InvalidArgument("job_name", "job_name: type must be service, pimple, silex or class")
    if not isinstance(name, str) or not name:
        raise InvalidArgument("job_name", "job_name: name must be a non-empty string")
    if method is not None and (not isinstance(method, str) or not method):
        raise InvalidArgument("job_name", "job_name: method must be a non-empty string")
    return f"{name}#{method}" if method else name


class Registry:
    """Names → handlers. Workers run only what a registry resolves; everything else is refused.

    A job name resolves, in order, to: a handler registered under that exact name; ``service#method``
    on a registered service; or a dotted path (``pkg.module.Name``, ``pkg.module.Class#method``) inside
    a module named by ``--app``/``--allow`` (or below it). Handlers are functions taking
    ``(job_params, job_options)`` (or just ``job_params``), ``lzq.Job`` subclasses, or objects with
    a ``run`` method. Methods starting with ``_`` never resolve.
    """

    def __init__(self) -> None:
        self._handlers: dict[str, Any] = {}
        self._services: dict[str, Any] = {}
        self._allowed: set[str] = set()

    def handler(self, name: str | Callable | None = None) -> Callable:
        """Decorator: register a function or Job class under ``name`` (default: its ``__name__``).

        Usable bare (``@lzq.handler``) or with a name (``@lzq.handler("send_email")``).
        """
        if callable(name):
            return self.handler(None)(name)

        def register(target: Any) -> Any:
            self.register(name or target.__name__, target)
            return target

        return register

    def register(self, name: str, target: Any) -> None:
        """Register a handler (function, Job class, or object with ``run``) under a job name."""
        if not name:
            raise InvalidArgument("name", "name: must not be empty")
        self._handlers[name] = target
        self._resolve.cache_clear()

    def service(self, name: str, obj: Any) -> None:
        """Register a service object: ``"name#method"`` calls ``obj.method(params, options)``."""
        self._services[name] = obj
        self._resolve.cache_clear()

    def allow(self, *modules: str) -> None:
        """Allow dotted-path job names inside these modules (and their submodules)."""
        self._allowed.update(m for m in modules if m)
        self._resolve.cache_clear()

    def load_app(self, modules: Iterable[str]) -> None:
        """Import ``--app`` modules (their decorators register handlers) and allow dotted paths in them."""
        for module in modules:
            importlib.import_module(module)
            self.allow(module)

    def is_allowed_module(self, module: str) -> bool:
        return any(module == allowed or module.startswith(allowed + ".") for allowed in self._allowed)

    def resolve(self, job_name: str) -> Runner:
        """The runner for a job name, or UnknownHandler saying why it may not run."""
        return self._resolve(job_name)

    def resolve_check(self, job_name: str, check: str) -> Callable[[dict, dict], Any]:
        """The callable behind a readiness check of a job: ``"#method"`` on the job's own handler,
        ``"pkg.module.Class#method"`` or ``"service#method"``; UnknownHandler if it may not run or
        the method does not exist. Classes get a new instance per call (``lzq.Job``: with ``id``)."""
        name = job_name.partition("#")[0] + check if check.startswith("#") else check
        target, method, is_instance = self._locate(name)
        if method is None:
            raise UnknownHandler(f"check {check!r}: names no method")
        if inspect.isclass(target) and not is_instance:
            _bound(target, method)  # fail now, not at every evaluation, if the method is missing
            cls = target

            def call_on_instance(params: dict, options: dict) -> Any:
                instance = (
                    cls(id=options.get("id"), attempt=options.get("attempt"))
                    if issubclass(cls, Job)
                    else cls()
                )
                return _bound(instance, method)(params, options)

            return call_on_instance
        bound = _bound(target, method)
        return lambda params, options: bound(params, options)

    def missing_check_method(self, job_name: str, check: str) -> str | None:
        """Why a check reference cannot work, if this process can tell without importing anything:
        its handler is registered or already imported here but has no such method. None otherwise
        (producers often do not load the handlers; the superqueuer then fails the job instead)."""
        target_name, _, method = (
            job_name.partition("#")[0] + check if check.startswith("#") else check
        ).partition("#")
        target = self._handlers.get(target_name, self._services.get(target_name))
        if target is None:
            module, _, attr = target_name.rpartition(".")
            target = getattr(sys.modules.get(module), attr, None) if module else None
        if target is None or callable(getattr(target, method, None)):
            return None
        return f"{check!r}: {getattr(target, '__name__', type(target).__name__)} has no method {method!r}"

    @functools.lru_cache(maxsize=4096)  # noqa: B019 - one registry per process; cleared on change
    def _resolve(self, job_name: str) -> Runner:
        return _runner(*self._locate(job_name))

    def _locate(self, job_name: str) -> tuple[Any, str | None, bool]:
        """(handler, method or None, whether the handler is an instance) for a name, or UnknownHandler."""
        if job_name in self._handlers:
            return self._handlers[job_name], None, False
        target_name, _, method = job_name.partition("#")
        if method and (not method.isidentifier() or method.startswith("_")):
            raise UnknownHandler(f"{job_name!r}: method {method!r} is not a public method name")
        method = method or None
        if target_name in self._handlers:
            return self._handlers[target_name], method, False
        if target_name in self._services:
            return self._services[target_name], method, True
        module, _, attr = target_name.rpartition(".")
        if module and attr and self.is_allowed_module(module):
            if not all(part.isidentifier() and not part.startswith("_") for part in target_name.split(".")):
                raise UnknownHandler(f"{job_name!r}: {target_name!r} is not a public dotted name")
            try:
                target = getattr(importlib.import_module(module), attr)
            except (ImportError, AttributeError) as exc:
                raise UnknownHandler(f"{job_name!r}: cannot load {target_name!r}: {exc}") from None
            # Only what the allowed module itself defines: not a module it imported (`app.os`), nor
            # a function it imported from elsewhere (`from subprocess import run`).
            if inspect.ismodule(target) or not self.is_allowed_module(
                getattr(target, "__module__", "") or ""
            ):
                raise UnknownHandler(
                    f"{job_name!r}: {target_name!r} is not defined in an --app/--allow module"
                )
            return target, method, False
        raise UnknownHandler(
            f"{job_name!r} is not a registered handler or service and not inside an --app/--allow module"
        )


def _runner(target: Any, method: str | None, is_instance: bool = False) -> Runner:
    """Wrap a handler so the worker can call every kind the same way."""
    if inspect.isclass(target) and not is_instance:
        cls = target

        def run_class(params: dict, options: dict) -> str:
            instance = (
                cls(id=options.get("id"), attempt=options.get("attempt")) if issubclass(cls, Job) else cls()
            )
            _call(_bound(instance, method or "run"), params, options)
            return getattr(instance, "status", Job.STATUS_SUCCESS)

        return run_class
    if method is not None or (is_instance and not callable(target)):
        bound = _bound(target, method or "run")
        return lambda params, options: _call(bound, params, options) or Job.STATUS_SUCCESS
    if callable(target):
        return lambda params, options: _call(target, params, options) or Job.STATUS_SUCCESS
    raise UnknownHandler(f"{target!r} is not callable and has no run method")


def _bound(obj: Any, method: str) -> Callable:
    fn = getattr(obj, method, None)
    if fn is None or not callable(fn):
        owner = obj.__name__ if inspect.isclass(obj) else type(obj).__name__
        raise UnknownHandler(f"{owner} has no method {method!r}")
    return fn


def _call(fn: Callable, params: dict, options: dict) -> None:
    """Call with (params, options), or (params) for one-argument handlers; the result is ignored."""
    if _arity(fn) == 1:
        fn(params)
    else:
        fn(params, options)


@functools.lru_cache(maxsize=1024)
def _arity(fn: Callable) -> int:
    try:
        positional = [
            p
            for p in inspect.signature(fn).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
        ]
    except (TypeError, ValueError):
        return 2
    if any(p.kind == p.VAR_POSITIONAL for p in positional):
        return 2
    return 1 if len(positional) == 1 else 2


#: The process-wide registry that ``lzq.handler`` / ``lzq.service`` fill and workers use by default.
default_registry = Registry()
