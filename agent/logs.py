"""REPORT: structlog configuration. One constant event name per kind of line; facts go in keys.

Every line about a service carries cluster, service, cause, action, mode and outcome as keys, bound
once per pass and per service, so `jq 'select(.service=="web")'` follows one service's story.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog

from agent.settings import LogFormat, LogLevel

LEVELS = {
    LogLevel.DEBUG: logging.DEBUG,
    LogLevel.INFO: logging.INFO,
    LogLevel.WARNING: logging.WARNING,
    LogLevel.ERROR: logging.ERROR,
}


def configure(
    log_format: LogFormat = LogFormat.JSON, stream: TextIO | None = None, level: int | LogLevel = logging.INFO
) -> None:
    """Send structured lines to `stream` (stdout by default) as JSON or for a console (colors on a terminal)."""
    out = stream or sys.stdout
    renderer: Any = (
        structlog.processors.JSONRenderer(sort_keys=False)
        if log_format is LogFormat.JSON
        else structlog.dev.ConsoleRenderer(colors=_is_terminal(out))
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS[level] if isinstance(level, LogLevel) else level),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def logger() -> structlog.typing.FilteringBoundLogger:
    log: structlog.typing.FilteringBoundLogger = structlog.get_logger("ecs-medic")
    return log
