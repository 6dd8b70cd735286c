"""Logging: structlog set up by the CLI (never on import); JSON lines when not on a TTY."""

from __future__ import annotations

import logging
import sys

import structlog


def configure(level: str = "info", json: bool | None = None) -> None:
    """Route structlog to stderr: coloured console lines on a TTY, JSON lines otherwise."""
    if json is None:
        json = not sys.stderr.isatty()
    renderer = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    # pika logs every reconnect attempt at ERROR with tracebacks; our own events say what matters.
    logging.getLogger("pika").setLevel(logging.CRITICAL)


def get(name: str) -> structlog.stdlib.BoundLogger:
    """A logger for one component ("worker", "superqueuer", ...)."""
    return structlog.get_logger(component=name)
