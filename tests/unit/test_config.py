"""lzq.config.Settings: LZQ_* environment variables, converted to each field's type; overrides win."""

from __future__ import annotations

import dataclasses

import pytest

from lzq.config import DEFAULT_AMQP_URL, Settings
from lzq.errors import ConfigurationError


def test_defaults_apply_when_no_variable_is_set() -> None:
    settings = Settings.from_env({})

    assert settings == Settings()
    assert settings.amqp_url == DEFAULT_AMQP_URL == "amqp://guest:guest@127.0.0.1:5672/%2F"
    assert settings.dsn == ""


def test_variables_are_read_and_converted_to_the_field_types() -> None:
    settings = Settings.from_env(
        {
            "LZQ_DSN": "postgresql://db/lzq",
            "LZQ_AMQP_URL": "amqp://u:p@mq/%2F",
            "LZQ_DISPATCH_LEASE_S": "90",
            "LZQ_HEARTBEAT_S": "0.25",
            "LZQ_CLAIM_BATCH": "100",
        }
    )

    assert settings.dsn == "postgresql://db/lzq"
    assert settings.amqp_url == "amqp://u:p@mq/%2F"
    assert settings.dispatch_lease_s == 90 and type(settings.dispatch_lease_s) is int
    assert settings.heartbeat_s == 0.25 and type(settings.heartbeat_s) is float
    assert settings.claim_batch == 100


def test_float_field_accepts_an_integer_string() -> None:
    assert Settings.from_env({"LZQ_POLL_INTERVAL_S": "2"}).poll_interval_s == 2.0


def test_empty_variable_means_the_default() -> None:
    assert Settings.from_env({"LZQ_DISPATCH_LEASE_S": "", "LZQ_AMQP_URL": ""}) == Settings()


def test_unrelated_and_unknown_variables_are_ignored() -> None:
    assert Settings.from_env({"LZQ_NO_SUCH_SETTING": "1", "PGHOST": "db", "DSN": "x"}) == Settings()


def test_overrides_win_over_variables() -> None:
    settings = Settings.from_env(
        {"LZQ_DSN": "from-env", "LZQ_CLAIM_BATCH": "100"}, dsn="from-cli", claim_batch=7
    )

    assert (settings.dsn, settings.claim_batch) == ("from-cli", 7)


def test_none_override_is_ignored() -> None:
    settings = Settings.from_env({"LZQ_DSN": "from-env"}, dsn=None, amqp_url=None)

    assert settings.dsn == "from-env"
    assert settings.amqp_url == DEFAULT_AMQP_URL


def test_os_environ_is_read_when_no_mapping_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LZQ_DSN", "postgresql://env/lzq")
    monkeypatch.setenv("LZQ_WORKER_DEAD_AFTER_S", "45")

    settings = Settings.from_env()

    assert (settings.dsn, settings.worker_dead_after_s) == ("postgresql://env/lzq", 45)


@pytest.mark.parametrize(
    ("variable", "raw"),
    [("LZQ_DISPATCH_LEASE_S", "soon"), ("LZQ_CLAIM_BATCH", "1.5"), ("LZQ_HEARTBEAT_S", "fast")],
)
def test_unconvertible_value_raises_configuration_error_naming_the_variable(variable: str, raw: str) -> None:
    with pytest.raises(ConfigurationError) as excinfo:
        Settings.from_env({variable: raw})

    assert variable in str(excinfo.value)
    assert repr(raw) in str(excinfo.value)


def test_settings_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Settings().dsn = "x"  # type: ignore[misc]


def test_every_field_has_a_default_so_env_alone_can_configure_lzq() -> None:
    for field in dataclasses.fields(Settings):
        assert field.default is not dataclasses.MISSING, field.name


def test_retention_defaults_to_a_day_and_reads_lzq_retention() -> None:
    assert Settings().retention_interval == "1 day"
    assert Settings.from_env({"LZQ_RETENTION": " 7 days "}).retention_interval == "7 days"


@pytest.mark.parametrize("raw", ["0", "off", "OFF", "never", "none", " Never "])
def test_retention_off_values_switch_automatic_pruning_off(raw: str) -> None:
    assert Settings.from_env({"LZQ_RETENTION": raw}).retention_interval is None


@pytest.mark.parametrize(("raw", "fixed"), [("auto", None), ("AUTO", None), ("0", 0), ("8", 8), (3, 3)])
def test_prefetch_margin_is_auto_or_a_whole_number_of_jobs(raw: object, fixed: int | None) -> None:
    assert Settings(prefetch_margin=raw).fixed_prefetch_margin == fixed  # type: ignore[arg-type]
    assert Settings().fixed_prefetch_margin is None  # auto by default


@pytest.mark.parametrize("raw", ["-1", "1.5", "lots"])
def test_a_prefetch_margin_that_is_neither_is_refused_naming_the_variable(raw: str) -> None:
    with pytest.raises(ConfigurationError, match="LZQ_PREFETCH_MARGIN"):
        Settings.from_env({"LZQ_PREFETCH_MARGIN": raw})
