"""The log of the watcher's decisions: one line per event, UTC timestamps (milliseconds)
to stderr (the journal of systemd)."""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone
from typing import Any

from host_programs.failover.config import PROGRAM
from host_programs.failover.steps import utc_stamp

STAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
log = logging.getLogger(PROGRAM)


# --------------------------------------------------------------------------- logging


def log_event(level: str, event: str, **fields: Any) -> None:
    """One line per decision: event=... key=value (values JSON-quoted when needed)."""
    parts = [f"event={event}"]
    for key, value in fields.items():
        if value is None:
            continue
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        if not text or any(c in text for c in ' "=\n'):
            text = json.dumps(text)
        parts.append(f"{key}={text}")
    log.log(logging.getLevelName(level.upper()), " ".join(parts))


class _UTCFormatter(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        return utc_stamp(record.created)


def setup_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_UTCFormatter("%(asctime)s %(levelname)s %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)


def stamp_epoch(stamp: str) -> float:
    """Seconds since 1970 of a utc_stamp()."""
    return datetime.strptime(stamp, STAMP_FORMAT).replace(
        tzinfo=timezone.utc).timestamp()  # noqa: UP017
