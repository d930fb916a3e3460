"""Files replaced in one rename, and a lock between processes: what the host programs (config
agent, failover watcher, backup) and the controller's plugins share.

- `write_atomic(path, data, ...)`: a temporary file in the same directory with its mode and
  owner set, the data written and fsynced, renamed over `path`, the directory fsynced. A
  reader sees the old file or the new one, never a part; on any error the temporary file is
  removed and `path` is untouched.
- `write_json_atomic(path, doc, ...)`: the same for a JSON document (sorted keys, two-space
  indent, a final newline: diff-friendly).
- `locked(path, wait)`: an exclusive flock on a lock file, for one actor at a time.

No Ansible imports; Python 3.9+ (EL 9 hosts).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import time
from collections.abc import Iterator
from typing import Any


def fsync_dir(directory: str) -> None:
    """Make a rename in `directory` durable."""
    fd = os.open(directory or ".", os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: str | os.PathLike[str], data: bytes, mode: int = 0o644,
                 uid: int = -1, gid: int = -1, sync: bool = True,
                 make_parents: bool = False) -> None:
    """Replace `path` with `data` in one rename (see the module's docstring). `uid`/`gid`
    of -1 leave an id as the temporary file got it; an owner that cannot be given is a
    PermissionError naming the file and the ids. `sync=False` skips the fsyncs (a file
    that is rewritten every second and may be lost, such as a state file for monitoring)."""
    target = os.fspath(path)
    directory, name = os.path.split(target)
    if make_parents and directory:
        os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory or ".")
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            st = os.fstat(handle.fileno())
            if uid not in (-1, st.st_uid) or gid not in (-1, st.st_gid):
                try:
                    os.fchown(handle.fileno(), uid, gid)
                except PermissionError:
                    raise PermissionError(f"cannot give {target} owner/group {uid}/{gid}: "
                                          "not permitted") from None
            handle.write(data)
            handle.flush()
            if sync:
                os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if sync:
        fsync_dir(directory or ".")


def json_bytes(doc: Any) -> bytes:
    """A JSON document as the programs store it: sorted keys, two-space indent, newline."""
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode("utf-8")


def write_json_atomic(path: str | os.PathLike[str], doc: Any, mode: int = 0o644,
                      sync: bool = True, make_parents: bool = True) -> None:
    """`doc` as JSON (json_bytes) in place of `path`, in one rename."""
    write_atomic(path, json_bytes(doc), mode=mode, sync=sync, make_parents=make_parents)


@contextlib.contextmanager
def locked(path: str | os.PathLike[str], wait: float | None = 0.0,
           poll: float = 0.05) -> Iterator[bool]:
    """Hold an exclusive lock on the file `path` (made when missing); yields False when
    another process holds it after waiting `wait` seconds (None: wait as long as it takes).
    The lock goes with the process, so a crashed holder never leaves it behind."""
    fd = os.open(os.fspath(path), os.O_RDWR | os.O_CREAT, 0o640)
    try:
        deadline = None if wait is None else time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if deadline is not None and time.monotonic() >= deadline:
                    yield False
                    return
                time.sleep(poll)
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
