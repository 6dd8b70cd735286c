"""lzq.registry: how job names resolve to handlers, and which names are refused without importing."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import lzq
from lzq.errors import Fail, InvalidArgument, Retry, UnknownHandler
from lzq.job import Job
from lzq.registry import Registry, canonical_name
from tests.unit import sample_app
from tests.unit.sample_app import CALLS

APP = "tests.unit.sample_app"
PKG = "tests.unit.sample_pkg"
SIBLING = "tests.unit.sample_application"

PARAMS = {"to": "a@b.c"}
OPTIONS = {"id": 7, "attempt": 2, "queue_name": "default"}


@pytest.fixture(autouse=True)
def _clear_calls() -> None:
    CALLS.clear()


@pytest.fixture
def registry() -> Registry:
    return Registry()


@pytest.fixture
def app_registry() -> Registry:
    """A registry with tests.unit.sample_app loaded as --app."""
    reg = Registry()
    reg.load_app([APP])
    return reg


# -- registered handlers -------------------------------------------------------------------------


def test_registered_function_resolves_by_its_name(registry: Registry) -> None:
    seen = []
    registry.register("send_email", lambda params, options: seen.append((params, options)))

    status = registry.resolve("send_email")(PARAMS, OPTIONS)

    assert seen == [(PARAMS, OPTIONS)]
    assert status == Job.STATUS_SUCCESS


def test_bare_handler_decorator_registers_under_the_function_name(registry: Registry) -> None:
    seen = []

    @registry.handler
    def send_email(job_params: dict, job_options: dict) -> None:
        seen.append(job_params)

    registry.resolve("send_email")(PARAMS, OPTIONS)

    assert seen == [PARAMS]


def test_handler_decorator_with_a_name_registers_under_that_name(registry: Registry) -> None:
    seen = []

    @registry.handler("mail.send")
    def send_email(job_params: dict, job_options: dict) -> None:
        seen.append(job_params)

    registry.resolve("mail.send")(PARAMS, OPTIONS)

    assert seen == [PARAMS]
    with pytest.raises(UnknownHandler):
        registry.resolve("send_email")


def test_handler_decorator_returns_the_function_unchanged(registry: Registry) -> None:
    def send_email(job_params: dict, job_options: dict) -> None: ...

    assert registry.handler(send_email) is send_email
    assert registry.handler("other")(send_email) is send_email


def test_register_rejects_an_empty_name(registry: Registry) -> None:
    with pytest.raises(InvalidArgument) as excinfo:
        registry.register("", lambda params, options: None)
    assert excinfo.value.field == "name"


def test_registering_after_a_failed_resolve_makes_the_name_resolve(registry: Registry) -> None:
    with pytest.raises(UnknownHandler):
        registry.resolve("late")
    registry.register("late", lambda params, options: None)

    assert registry.resolve("late")({}, {}) == Job.STATUS_SUCCESS


def test_handler_return_value_is_ignored_and_reported_as_success(registry: Registry) -> None:
    registry.register("returns_junk", lambda params, options: "failed")

    assert registry.resolve("returns_junk")({}, {}) == Job.STATUS_SUCCESS


def test_handler_exceptions_propagate_to_the_caller(registry: Registry) -> None:
    def boom(job_params: dict, job_options: dict) -> None:
        raise ValueError("boom")

    registry.register("boom", boom)

    with pytest.raises(ValueError, match="boom"):
        registry.resolve("boom")({}, {})


def test_registered_object_that_is_not_callable_is_refused(registry: Registry) -> None:
    registry.register("number", 42)

    with pytest.raises(UnknownHandler):
        registry.resolve("number")


def test_default_registry_is_what_lzq_handler_fills() -> None:
    assert lzq.handler == lzq.default_registry.handler
    assert lzq.service == lzq.default_registry.service


# -- Job subclasses ------------------------------------------------------------------------------


class Report(Job):
    instances: list[Report] = []

    def run(self, job_params: dict, job_options: dict) -> None:
        Report.instances.append(self)
        self.seen = ("run", job_params, job_options)

    def rebuild(self, job_params: dict, job_options: dict) -> None:
        Report.instances.append(self)
        self.seen = ("rebuild", job_params, job_options)

    def _secret(self, job_params: dict, job_options: dict) -> None:
        raise AssertionError("private method ran")


@pytest.fixture
def report_registry(registry: Registry) -> Registry:
    Report.instances = []
    registry.register("report", Report)
    return registry


def test_registered_job_class_runs_its_run_method(report_registry: Registry) -> None:
    report_registry.resolve("report")(PARAMS, OPTIONS)

    assert [job.seen for job in Report.instances] == [("run", PARAMS, OPTIONS)]


def test_registered_job_class_with_hash_method_runs_that_method(report_registry: Registry) -> None:
    report_registry.resolve("report#rebuild")(PARAMS, OPTIONS)

    assert [job.seen for job in Report.instances] == [("rebuild", PARAMS, OPTIONS)]


def test_job_class_gets_a_new_instance_per_call_with_id_and_attempt(report_registry: Registry) -> None:
    runner = report_registry.resolve("report")

    runner({}, {"id": 1, "attempt": 1})
    runner({}, {"id": 1, "attempt": 2})

    first, second = Report.instances
    assert first is not second
    assert (first.id, first.attempt) == (1, 1)
    assert (second.id, second.attempt) == (1, 2)


def test_job_class_with_an_unknown_method_is_refused(report_registry: Registry) -> None:
    with pytest.raises(UnknownHandler):
        report_registry.resolve("report#nope")({}, {})


def test_job_class_private_method_is_refused(report_registry: Registry) -> None:
    with pytest.raises(UnknownHandler, match="public method"):
        report_registry.resolve("report#_secret")


@pytest.mark.parametrize(
    ("status", "expected"),
    [(Job.STATUS_RETRY, "retry"), (Job.STATUS_FAIL, "failed"), (Job.STATUS_SUCCESS, "succeeded")],
)
def test_set_status_is_reported_by_the_runner_after_run_returns(
    registry: Registry, status: str, expected: str
) -> None:
    finished = []

    class Decides(Job):
        def run(self, job_params: dict, job_options: dict) -> None:
            self.set_status(status)
            finished.append(True)  # set_status does not stop the handler

    registry.register("decides", Decides)

    assert registry.resolve("decides")({}, {}) == expected
    assert finished == [True]


def test_retry_and_fail_raised_by_a_job_propagate_from_the_runner(registry: Registry) -> None:
    class Retries(Job):
        def run(self, job_params: dict, job_options: dict) -> None:
            raise self.retry("later", delay_s=5)

    class Fails(Job):
        def run(self, job_params: dict, job_options: dict) -> None:
            raise self.fail("never")

    registry.register("retries", Retries)
    registry.register("fails", Fails)

    with pytest.raises(Retry) as retry:
        registry.resolve("retries")({}, {})
    assert retry.value.delay_s == 5
    with pytest.raises(Fail, match="never"):
        registry.resolve("fails")({}, {})


# -- services ------------------------------------------------------------------------------------


class Mailer:
    def __init__(self) -> None:
        self.sent: list[tuple[Any, ...]] = []

    def send(self, job_params: dict, job_options: dict) -> None:
        self.sent.append(("send", job_params, job_options))

    def run(self, job_params: dict, job_options: dict) -> None:
        self.sent.append(("run", job_params, job_options))

    def _secret(self, job_params: dict, job_options: dict) -> None:
        raise AssertionError("private method ran")


def test_service_hash_method_calls_that_method_on_the_registered_object(registry: Registry) -> None:
    mailer = Mailer()
    registry.service("mailer", mailer)

    registry.resolve("mailer#send")(PARAMS, OPTIONS)

    assert mailer.sent == [("send", PARAMS, OPTIONS)]


def test_service_name_alone_calls_its_run_method(registry: Registry) -> None:
    mailer = Mailer()
    registry.service("mailer", mailer)

    registry.resolve("mailer")(PARAMS, OPTIONS)

    assert mailer.sent == [("run", PARAMS, OPTIONS)]


def test_callable_service_is_called_directly(registry: Registry) -> None:
    class Ping:
        def __init__(self) -> None:
            self.calls: list[tuple[Any, ...]] = []

        def __call__(self, job_params: dict, job_options: dict) -> None:
            self.calls.append((job_params, job_options))

    ping = Ping()
    registry.service("ping", ping)

    registry.resolve("ping")(PARAMS, OPTIONS)

    assert ping.calls == [(PARAMS, OPTIONS)]


def test_service_is_the_same_object_on_every_call(registry: Registry) -> None:
    mailer = Mailer()
    registry.service("mailer", mailer)
    runner = registry.resolve("mailer#send")

    runner({"n": 1}, {})
    runner({"n": 2}, {})

    assert [params for _, params, _ in mailer.sent] == [{"n": 1}, {"n": 2}]


def test_service_private_method_is_refused(registry: Registry) -> None:
    registry.service("svc", Mailer())

    with pytest.raises(UnknownHandler, match="public method"):
        registry.resolve("svc#_secret")


def test_service_dunder_method_is_refused(registry: Registry) -> None:
    registry.service("svc", Mailer())

    with pytest.raises(UnknownHandler):
        registry.resolve("svc#__init__")


def test_service_unknown_method_is_refused(registry: Registry) -> None:
    registry.service("svc", Mailer())

    with pytest.raises(UnknownHandler):
        registry.resolve("svc#nope")({}, {})


@pytest.mark.parametrize("method", ["not-a-method", "1st", "send()", "a b", "a#b", "sénd!", " send"])
def test_method_that_is_not_an_identifier_is_refused(registry: Registry, method: str) -> None:
    registry.service("svc", Mailer())

    with pytest.raises(UnknownHandler):
        registry.resolve(f"svc#{method}")


@given(method=st.text(min_size=1, max_size=20))
def test_service_methods_resolve_only_when_public_identifiers(method: str) -> None:
    registry = Registry()
    registry.service("svc", Mailer())
    public = method.isidentifier() and not method.startswith("_")
    if public and method in ("send", "run"):
        assert callable(registry.resolve(f"svc#{method}"))
    else:
        with pytest.raises(UnknownHandler):
            registry.resolve(f"svc#{method}")({}, {})


# -- one-argument handlers -----------------------------------------------------------------------


def test_one_argument_function_gets_only_params(registry: Registry) -> None:
    seen = []

    def handler(job_params: dict) -> None:
        seen.append(job_params)

    registry.register("one", handler)
    registry.resolve("one")(PARAMS, OPTIONS)

    assert seen == [PARAMS]


def test_one_argument_job_run_gets_only_params(registry: Registry) -> None:
    seen = []

    class OneArg(Job):
        def run(self, job_params: dict) -> None:  # type: ignore[override]
            seen.append(job_params)

    registry.register("one", OneArg)
    registry.resolve("one")(PARAMS, OPTIONS)

    assert seen == [PARAMS]


def test_one_argument_service_method_gets_only_params(registry: Registry) -> None:
    seen = []

    class Svc:
        def send(self, job_params: dict) -> None:
            seen.append(job_params)

    registry.service("svc", Svc())
    registry.resolve("svc#send")(PARAMS, OPTIONS)

    assert seen == [PARAMS]


def test_varargs_handler_gets_params_and_options(registry: Registry) -> None:
    seen = []
    registry.register("var", lambda *args: seen.append(args))

    registry.resolve("var")(PARAMS, OPTIONS)

    assert seen == [(PARAMS, OPTIONS)]


# -- dotted paths inside allowed modules ---------------------------------------------------------


def test_dotted_function_in_an_app_module_resolves(app_registry: Registry) -> None:
    app_registry.resolve(f"{APP}.send_report")(PARAMS, OPTIONS)

    assert CALLS == [("send_report", PARAMS, OPTIONS)]


def test_dotted_job_class_in_an_app_module_runs_run_on_a_new_instance(app_registry: Registry) -> None:
    runner = app_registry.resolve(f"{APP}.BuildReport")
    runner(PARAMS, {"id": 3, "attempt": 1})
    runner(PARAMS, {"id": 3, "attempt": 2})

    (name1, job1, _, options1), (name2, job2, _, _) = CALLS
    assert name1 == name2 == "BuildReport.run"
    assert isinstance(job1, sample_app.BuildReport)
    assert job1 is not job2
    assert (job1.id, job1.attempt, job2.attempt) == (3, 1, 2)
    assert options1 == {"id": 3, "attempt": 1}


def test_dotted_class_hash_method_runs_that_method(app_registry: Registry) -> None:
    app_registry.resolve(f"{APP}.BuildReport#rebuild")(PARAMS, OPTIONS)

    assert [call[0] for call in CALLS] == ["BuildReport.rebuild"]


def test_dotted_plain_class_is_instantiated_without_arguments(app_registry: Registry) -> None:
    app_registry.resolve(f"{APP}.PlainWorker")(PARAMS, OPTIONS)

    ((name, instance, params),) = CALLS
    assert (name, params) == ("PlainWorker.run", PARAMS)
    assert isinstance(instance, sample_app.PlainWorker)


def test_dotted_one_argument_function_gets_only_params(app_registry: Registry) -> None:
    app_registry.resolve(f"{APP}.one_argument")(PARAMS, OPTIONS)

    assert CALLS == [("one_argument", PARAMS)]


def test_dotted_class_private_method_is_refused(app_registry: Registry) -> None:
    with pytest.raises(UnknownHandler):
        app_registry.resolve(f"{APP}.BuildReport#_secret")
    assert CALLS == []


def test_dotted_name_missing_from_an_allowed_module_is_refused(app_registry: Registry) -> None:
    with pytest.raises(UnknownHandler, match="cannot load"):
        app_registry.resolve(f"{APP}.does_not_exist")


def test_dotted_name_of_a_non_callable_in_an_allowed_module_is_refused(app_registry: Registry) -> None:
    with pytest.raises(UnknownHandler):
        app_registry.resolve(f"{APP}.NOT_CALLABLE")


def test_missing_submodule_of_an_allowed_package_is_refused(registry: Registry) -> None:
    registry.allow(PKG)

    with pytest.raises(UnknownHandler, match="cannot load"):
        registry.resolve(f"{PKG}.nope.func")


def test_load_app_imports_the_module_so_its_decorators_register(app_registry: Registry) -> None:
    assert APP in sys.modules
    lzq.default_registry.resolve("unit_sample_app_registered")({"x": 1}, {})

    assert CALLS == [("registered_by_decorator", {"x": 1}, {})]


def test_load_app_of_a_missing_module_raises_import_error(registry: Registry) -> None:
    with pytest.raises(ImportError):
        registry.load_app(["tests.unit.no_such_app_module"])


def test_allow_permits_dotted_names_without_registering_anything(registry: Registry) -> None:
    registry.allow(APP)

    registry.resolve(f"{APP}.send_report")(PARAMS, OPTIONS)

    assert CALLS == [("send_report", PARAMS, OPTIONS)]


def test_submodules_of_an_allowed_package_are_allowed(registry: Registry) -> None:
    registry.allow(PKG)

    registry.resolve(f"{PKG}.jobs.nested")(PARAMS, OPTIONS)
    registry.resolve(f"{PKG}.jobs.Cleanup#purge")(PARAMS, OPTIONS)

    assert [call[0] for call in CALLS] == ["nested", "Cleanup.purge"]


def test_allowing_a_submodule_does_not_allow_its_parent(registry: Registry) -> None:
    registry.allow(f"{PKG}.jobs")

    with pytest.raises(UnknownHandler, match="not inside"):
        registry.resolve(f"{PKG}.jobs#nested")
    assert registry.is_allowed_module(f"{PKG}.jobs")
    assert not registry.is_allowed_module(PKG)


def test_sibling_module_sharing_a_name_prefix_is_refused_and_not_imported(app_registry: Registry) -> None:
    sys.modules.pop(SIBLING, None)

    with pytest.raises(UnknownHandler, match="not inside an --app/--allow module"):
        app_registry.resolve(f"{SIBLING}.looks_allowed")

    assert not app_registry.is_allowed_module(SIBLING)
    assert SIBLING not in sys.modules


def test_module_outside_any_allowed_module_is_refused_without_importing_it(registry: Registry) -> None:
    sys.modules.pop(SIBLING, None)

    for name in (f"{SIBLING}.looks_allowed", f"{SIBLING}#looks_allowed", f"{SIBLING}.Cls#looks_allowed"):
        with pytest.raises(UnknownHandler):
            registry.resolve(name)

    assert SIBLING not in sys.modules


def test_parent_package_of_an_allowed_module_is_not_allowed(app_registry: Registry) -> None:
    sys.modules.pop(SIBLING, None)

    # "tests.unit" is not allowed, so "tests.unit.<module>" must not be looked up as an attribute.
    with pytest.raises(UnknownHandler):
        app_registry.resolve("tests.unit.sample_application#looks_allowed")
    assert SIBLING not in sys.modules


@pytest.mark.parametrize(
    "job_name",
    [
        "os#system",
        "os.system",
        "subprocess.run",
        "builtins.eval",
        "builtins#eval",
        "os.path.join",
        "importlib.import_module",
        "lzq.push",
        "sys#exit",
        "",
        "#run",
        ".send_report",
    ],
)
def test_names_outside_allowed_modules_are_refused(app_registry: Registry, job_name: str) -> None:
    with pytest.raises(UnknownHandler):
        app_registry.resolve(job_name)


def test_allowing_an_empty_module_name_allows_nothing(registry: Registry) -> None:
    registry.allow("")

    with pytest.raises(UnknownHandler):
        registry.resolve("os.system")


def test_module_imported_into_an_allowed_module_is_refused(app_registry: Registry) -> None:
    with pytest.raises(UnknownHandler):
        app_registry.resolve(f"{APP}.os#system")


def test_private_module_level_name_is_refused(app_registry: Registry) -> None:
    with pytest.raises(UnknownHandler):
        app_registry.resolve(f"{APP}._private_helper")
    assert CALLS == []


# -- canonical_name ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("job_name", "expected"),
    [
        ({"type": "service", "name": "mailer", "method": "send"}, "mailer#send"),
        ({"type": "pimple", "name": "mailer", "method": "send"}, "mailer#send"),
        ({"type": "silex", "name": "mailer", "method": "send"}, "mailer#send"),
        ({"type": "service", "name": "mailer"}, "mailer"),
        ({"type": "pimple", "name": "mailer"}, "mailer"),
        ({"type": "class", "name": "pkg.mod.Report"}, "pkg.mod.Report"),
        ({"type": "class", "name": "pkg.mod.Report", "method": "rebuild"}, "pkg.mod.Report#rebuild"),
        ({"name": "pkg.mod.Report"}, "pkg.mod.Report"),
        ({"type": "class", "name": "pkg.mod.Report", "method": None}, "pkg.mod.Report"),
    ],
)
def test_canonical_name_turns_the_dict_form_into_the_stored_string(job_name: dict, expected: str) -> None:
    assert canonical_name(job_name) == expected


def test_canonical_name_passes_strings_through() -> None:
    assert canonical_name("mailer#send") == "mailer#send"


@pytest.mark.parametrize(
    "job_name",
    [
        {"type": "widget", "name": "mailer"},
        {"type": "service"},
        {"type": "service", "name": ""},
        {"type": "service", "name": 42},
        {"type": "service", "name": "mailer", "method": ""},
        {"type": "service", "name": "mailer", "method": 3},
        {"type": "service", "name": "mailer", "colour": "red"},
        {},
        42,
        ["mailer", "send"],
        None,
    ],
)
def test_canonical_name_rejects_bad_job_names_naming_the_job_name_field(job_name: Any) -> None:
    with pytest.raises(InvalidArgument) as excinfo:
        canonical_name(job_name)
    assert excinfo.value.field == "job_name"
    assert str(excinfo.value).startswith("job_name:")


_identifiers = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,15}", fullmatch=True)
_dotted = st.lists(_identifiers, min_size=1, max_size=4).map(".".join)


@given(
    name=_dotted,
    method=st.none() | _identifiers,
    kind=st.sampled_from(["service", "pimple", "silex", "class"]),
)
def test_canonical_name_round_trips_generated_names(name: str, method: str | None, kind: str) -> None:
    stored = canonical_name({"type": kind, "name": name, "method": method})

    target, _, parsed_method = stored.partition("#")
    assert (target, parsed_method or None) == (name, method)
    assert canonical_name(stored) == stored
