"""The binlog source follows the master of the cluster in the global config document
(clusters.<cluster>.db.master): `stream-binlogs` with a global config configured."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from host_programs.backup.config import Config, read_source
from host_programs.backup.core import BackupError, check_server, iso
from host_programs.backup.helpers import log, now_utc, read_json
from host_programs.common.atomic_files import write_json_atomic
from module_utils.global_config import (
    EpochGuard,
    GlobalConfig,
    GlobalConfigError,
    Reader,
    make_client,
)

# --------------------------------------------------------------------------- following the master


def document_master(doc: Mapping[str, Any], cluster: str, server: str) -> tuple[str, str]:
    """(name, address) of the master of the database cluster `cluster` in a (version 2)
    global config document whose `clusters.<cluster>.db` lists this server; BackupError
    saying why not otherwise."""
    epoch = doc.get("epoch")
    entry = (doc.get("clusters") or {}).get(cluster)
    if not isinstance(entry, Mapping):
        raise BackupError(f"epoch {epoch} has no cluster '{cluster}' (no clusters.{cluster}.db)")
    db = entry.get("db") or {}
    if server not in db.values():
        raise BackupError(f"epoch {epoch}: clusters.{cluster}.db does not list this server "
                          f"'{server}' (the document describes another cluster)")
    master = db.get("master")
    if not master:
        raise BackupError(f"epoch {epoch} names no master for clusters.{cluster}.db.master")
    address = ((doc.get("servers") or {}).get(master) or {}).get("address")
    if not isinstance(address, str) or not address:
        raise BackupError(f"epoch {epoch}: master '{master}' has no servers.{master}.address")
    check_server(master, "master")
    return master, address


class SourceFollower:
    """Keeps the binlog source file in line with the master of the configured cluster in the
    global config document (clusters.<cluster>.db.master -> servers.<master>.address), which
    a failover rewrites (epoch + 1) for every product of the cluster at once. A conditional
    GET (If-None-Match) every `global_config_interval` seconds, through global_config.Reader:
    only valid documents whose epoch is not lower than the last accepted one (kept across
    restarts in the state file) count. When the master's name, address or port differ from
    the file's, the file is rewritten atomically; run_stream sees the change and restarts
    the stream towards the new master.

    An invalid document, a lower epoch, a document without the cluster, or that names no
    master for it or does not list this server, S3 unreachable: the file stays as it is, one
    log line says why (once per distinct problem), and the next check comes at the usual
    interval. Nothing here ever stops the stream."""

    def __init__(self, config: Config, reader: Reader,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.reader = reader
        self.clock = clock
        self.state_path = source_state_path(config)
        self.next_check = 0.0
        self.problem: str | None = None

    @property
    def location(self) -> str:
        return self.reader.store.location

    def due(self) -> bool:
        return self.clock() >= self.next_check

    def check_if_due(self) -> bool:
        return self.check() if self.due() else False

    def check(self) -> bool:
        """One conditional read of the document; True when the source file was rewritten."""
        self.next_check = self.clock() + float(self.config.global_config_interval)
        try:
            fresh = self.reader.poll()
            doc = self.reader.doc
            if doc is None:  # cannot happen: poll raised or returned a document
                raise BackupError("no document read yet")
            name, address = document_master(doc, self.config.cluster, self.config.server)
            changed = self._align(doc, name, address)
        except (GlobalConfigError, BackupError, OSError) as exc:
            self._failed(" ".join(str(exc).split()))
            return False
        except Exception as exc:  # never let a poll end the stream
            self._failed(f"unexpected {type(exc).__name__}: {' '.join(str(exc).split())}")
            return False
        if self.problem is not None:
            log(f"global config {self.location} readable again (epoch {doc['epoch']}, "
                f"master {name})")
            self.problem = None
            fresh = doc
        if fresh is not None or changed:
            self._save(master=name, address=address, last_error=None)
        return changed

    def _align(self, doc: Mapping[str, Any], name: str, address: str) -> bool:
        port = int(self.config.master_port)
        try:
            current: tuple[str, int, str] | None = read_source(self.config.source_file)
        except BackupError:
            current = None
        if current == (address, port, name):
            return False
        write_json_atomic(self.config.source_file, {
            "host": address, "port": port, "name": name, "epoch": doc["epoch"],
            "from": self.location})
        was = f"{current[2]} ({current[0]}:{current[1]})" if current else "no valid source"
        log(f"binlog source: global config epoch {doc['epoch']} names master {name} "
            f"({address}:{port}), the source file named {was}: rewrote "
            f"{self.config.source_file}")
        return True

    def _failed(self, message: str) -> None:
        if message != self.problem:
            log(f"binlog source not checked against the global config: {message}; keeping "
                f"{self.config.source_file} as it is, retrying every "
                f"{float(self.config.global_config_interval):g}s")
            self.problem = message
            self._save(last_error={"at": iso(now_utc()), "message": message})

    def _save(self, **values: Any) -> None:
        """The state file for monitoring and for the epoch floor of the next start; a state
        file that cannot be written is said, and the stream goes on."""
        state = read_json(self.state_path, {}) or {}
        state.update(values, source=self.location, epoch=self.reader.guard.epoch,
                     etag=self.reader.etag, checked_at=iso(now_utc()))
        try:
            write_json_atomic(self.state_path, state)
        except OSError as exc:
            log(f"cannot write {self.state_path}: {exc}")


def source_state_path(config: Config) -> Path:
    return Path(config.state_dir, "binlog-source-state.json")


def follower_for(config: Config, client: Any | None = None) -> SourceFollower | None:
    """The follower of the configured global config document (None when none is): one
    attempt per check with short timeouts (the next check is the retry), the epoch accepted
    before this start as the floor."""
    if not config.global_config_bucket:
        return None
    if client is None:
        client = make_client(config.global_config_region or config.region or None,
                             config.global_config_endpoint_url or None, max_attempts=1,
                             connect_timeout=2, read_timeout=5)
    store = GlobalConfig(client, config.global_config_bucket, config.global_config_key)
    epoch = (read_json(source_state_path(config), {}) or {}).get("epoch")
    guard = EpochGuard(epoch if isinstance(epoch, int) and not isinstance(epoch, bool)
                       else None)
    return SourceFollower(config, Reader(store, guard))
