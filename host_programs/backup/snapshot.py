"""`backup`: one snapshot, mariabackup | zstd -> S3 multipart upload, verified, then its
manifest, then the "latest" pointer, then retention."""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from host_programs.backup.config import Config
from host_programs.backup.core import (
    BackupError,
    iso,
    latest_document,
    latest_key,
    make_manifest,
    parse_backup_binlog_info,
    should_replace_latest,
    snapshot_keys,
)
from host_programs.backup.helpers import log, now_utc
from host_programs.backup.retention import apply_retention
from host_programs.backup.s3 import S3Store

# --------------------------------------------------------------------------- backup


@dataclass
class BackupResult:
    manifest: dict[str, Any]
    latest_updated: bool
    retention: dict[str, Any]
    seconds: float


def run_backup(config: Config, store: S3Store, clock: Callable[[], datetime] = now_utc
               ) -> BackupResult:
    """One snapshot. Order matters: data object (multipart, verified) -> manifest ->
    latest pointer -> retention. Any failure before the pointer leaves it untouched."""
    started = clock()
    began = time.monotonic()
    keys = snapshot_keys(config.cluster, config.server, started)
    store.check_bucket()
    Path(config.work_dir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="backup-", dir=config.work_dir) as work:
        lsn_dir = Path(work, "lsn")
        lsn_dir.mkdir()
        log_path = Path(work, "mariabackup.log")
        upload = _stream_snapshot(config, store, keys.data, lsn_dir, log_path, started)
        try:
            position = parse_backup_binlog_info(_backup_info_text(lsn_dir))
            finished = clock()
            manifest = make_manifest(
                cluster=config.cluster, server=config.server, keys=keys, size=upload.size,
                sha256=upload.sha256, started_at=started, finished_at=finished,
                position=position,
                extra={"etag": upload.etag, "parts": upload.parts,
                       "mariabackup": _tool_version(lsn_dir),
                       "seconds": round(time.monotonic() - began, 1)})
            # What the manifest says, on the object itself too (a GTID list's commas are
            # not allowed in tag values: spaces instead).
            store.tag(keys.data, {"cluster": config.cluster, "server": config.server,
                                  "sha256": upload.sha256, "size": str(upload.size),
                                  "gtid": position.gtid.replace(",", " ")})
            store.put_json(keys.manifest, manifest)
        except BaseException:
            # The data object is complete but will never be described: remove it now rather
            # than leave it to the orphan sweep.
            with contextlib.suppress(Exception):
                store.delete_all_versions([keys.data])
            raise
    current = store.get_json(latest_key(config.cluster))
    updated = should_replace_latest(current, manifest)
    if updated:
        store.put_json(latest_key(config.cluster), latest_document(manifest))
    try:
        retention = apply_retention(config, store, clock())
    except Exception as exc:  # the snapshot is good and latest; say retention did not run
        message = " ".join(str(exc).split())
        log(f"WARNING: retention failed after a good backup: {message}")
        retention = {"error": message}
    return BackupResult(manifest, updated, retention, round(time.monotonic() - began, 1))


def _stream_snapshot(config: Config, store: S3Store, key: str, lsn_dir: Path, log_path: Path,
                     started: datetime) -> Any:
    backup_cmd = [config.command("mariabackup")]
    if config.mariabackup_options_file:
        backup_cmd.append(f"--defaults-extra-file={config.mariabackup_options_file}")
    backup_cmd += ["--backup", "--stream=xbstream", f"--extra-lsndir={lsn_dir}",
                   f"--target-dir={lsn_dir}", *config.mariabackup_extra_args]
    zstd_cmd = [config.command("zstd"), "-q", "-c", f"-{int(config.compression_level)}",
                f"-T{int(config.compression_threads)}"]
    with open(log_path, "wb") as backup_log:
        producer = subprocess.Popen(backup_cmd, stdout=subprocess.PIPE, stderr=backup_log)
        compressor = subprocess.Popen(zstd_cmd, stdin=producer.stdout, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE)
        assert producer.stdout is not None and compressor.stdout is not None
        producer.stdout.close()  # the compressor holds the read end now

        def producers_succeeded() -> None:
            zstd_err = compressor.stderr.read().decode(errors="replace") \
                if compressor.stderr else ""
            zstd_rc, backup_rc = compressor.wait(), producer.wait()
            tail = _tail(log_path)
            if backup_rc != 0 or "completed OK!" not in tail:
                raise BackupError(f"mariabackup exited with status {backup_rc}: {tail[-300:]}")
            if zstd_rc != 0:
                raise BackupError(f"zstd exited with status {zstd_rc}: {zstd_err.strip()[-300:]}")

        metadata = {"cluster": config.cluster, "server": config.server,
                    "started-at": iso(started), "format": "xbstream+zstd"}
        try:
            return store.upload_stream(key, compressor.stdout, config.part_size, metadata,
                                       before_complete=producers_succeeded)
        finally:
            for proc in (producer, compressor):
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            if compressor.stderr:
                compressor.stderr.close()
            compressor.stdout.close()


def _tail(path: Path, size: int = 4000) -> str:
    with open(path, "rb") as handle:
        handle.seek(0, 2)
        handle.seek(max(0, handle.tell() - size))
        return handle.read().decode(errors="replace").strip()


def _backup_info_text(lsn_dir: Path) -> str:
    for name in ("mariadb_backup_binlog_info", "xtrabackup_binlog_info",
                 "mariadb_backup_info", "xtrabackup_info"):
        path = lsn_dir / name
        if path.exists():
            return path.read_text()
    raise BackupError(f"mariabackup wrote no backup information into {lsn_dir}")


def _tool_version(lsn_dir: Path) -> str:
    for name in ("mariadb_backup_info", "xtrabackup_info"):
        path = lsn_dir / name
        if path.exists():
            for line in path.read_text().splitlines():
                if line.startswith("tool_version"):
                    return line.split("=", 1)[1].strip()
    return ""
