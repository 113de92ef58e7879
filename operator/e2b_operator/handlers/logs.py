"""The operator log shows what changed: kopf's per-watch-event success lines, and the
retries of a template deletion waiting for its users (announced once), go to DEBUG."""

from __future__ import annotations

import logging

ROUTINE_HANDLERS = ("template_event", "deployment_event")
QUIET_RETRIES = ("Handler 'template_delete' failed temporarily: still in use by",)


class RoutineEvents(logging.Filter):
    """Turns kopf's "Handler 'template_event' succeeded." (one per watch event) into DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        routine = record.levelno == logging.INFO and any(
            message == f"Handler {h!r} succeeded." for h in ROUTINE_HANDLERS
        )
        waiting = record.levelno == logging.ERROR and message.startswith(QUIET_RETRIES)
        if not (routine or waiting):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


def quiet_routine_events() -> None:
    """Install the filter on kopf's per-object logger (idempotent)."""
    logger = logging.getLogger("kopf.objects")
    if not any(isinstance(f, RoutineEvents) for f in logger.filters):
        logger.addFilter(RoutineEvents())
