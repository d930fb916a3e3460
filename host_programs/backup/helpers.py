"""Small helpers every command of the backup program uses: the clock, JSON state files,
the log line, the run lock and the S3 store."""

from __future__ import annotations

import contextlib
import fcntl
import json
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from host_programs.backup.config import PROGRAM, Config
from host_programs.backup.core import UTC, BackupError
from host_programs.backup.s3 import S3Store
from host_programs.common.atomic_files import write_json_atomic

# --------------------------------------------------------------------------- small helpers


def now_utc() -> datetime:
    return datetime.now(UTC)


def read_json(path: str | Path, default: Any = None) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except (FileNotFoundError, ValueError):
        return default


def log(message: str) -> None:
    print(f"{PROGRAM}: {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def exclusive_lock(path: str) -> Iterator[None]:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BackupError(f"another run holds {path}") from None
        yield


def record_state(path: str, section: str, **values: Any) -> dict[str, Any]:
    state = read_json(path, {}) or {}
    part = state.setdefault(section, {})
    part.update(values)
    write_json_atomic(path, state)
    return state


def store_for(config: Config, client: Any | None = None) -> S3Store:
    return S3Store(config.bucket, client=client, endpoint_url=config.endpoint_url or None,
                   region=config.region or None)
