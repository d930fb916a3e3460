"""The backup program of the database servers: `hostkit-mysql-backup COMMAND`.

Commands (the role installs this as /usr/local/sbin/hostkit-mysql-backup, with its
configuration in /etc/hostkit/mysql-backup.json):

  backup          one snapshot: mariabackup | zstd -> S3 multipart upload, verified, then
                  its manifest, then the "latest" pointer, then retention (systemd timer)
  stream-binlogs  follow the master named in the binlog source file with
                  `mariadb-binlog --read-from-remote-server --raw --stop-never` (service);
                  with a global config configured, keep that file in line with the
                  cluster's master in the global config document (a failover moves it)
  ship-binlogs    upload closed binary logs whole and the growing one in segments, every
                  few seconds (service); --once for a single pass
  list            the snapshots in S3 (JSON)
  plan            the restore plan for a time (JSON): snapshot, binary logs, GTID positions
  fetch-snapshot  download a planned snapshot, verify its SHA-256, unpack it (mbstream -x)
  replay          replay a plan's binary logs into the local server up to the restore time
  verify          CHECKSUM TABLE and row counts of every user table (JSON)
  status          the state files (last success, last error) as JSON

Every failure ends with exit status 1 and one line `hostkit-mysql-backup: <command> failed:
<reason>` on stderr (the journal), and is recorded in the state file of the command.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from host_programs.backup.core import (
    UTC,
    BackupError,
    BinlogScan,
    assemble_binlog_objects,
    binlog_key,
    binlog_series,
    binlogs_prefix,
    binlogs_to_delete,
    check_binlog_name,
    check_cluster,
    check_server,
    cluster_prefix,
    format_gtid_list,
    gtid_merge,
    is_binlog_name,
    is_series_of,
    iso,
    latest_document,
    latest_key,
    local_files_to_remove,
    make_manifest,
    orphan_snapshot_data,
    parse_backup_binlog_info,
    parse_binlog_key,
    parse_gtid_list,
    parse_snapshot_key,
    parse_time,
    plan_restore,
    plan_shipping,
    scan_binlog,
    segment_key,
    select_retained,
    should_replace_latest,
    snapshot_keys,
    snapshots_prefix,
    stream_series,
    stream_start_file,
    validate_manifest,
)
from host_programs.backup.s3 import S3Store
from host_programs.common.atomic_files import write_json_atomic
from module_utils.global_config import (
    EpochGuard,
    GlobalConfig,
    GlobalConfigError,
    Reader,
    make_client,
)

PROGRAM = "hostkit-mysql-backup"
DEFAULT_CONFIG = "/etc/hostkit/mysql-backup.json"
SYSTEM_SCHEMAS = ("mysql", "information_schema", "performance_schema", "sys")
ORPHAN_GRACE = timedelta(hours=6)
STALE_UPLOAD = timedelta(days=1)


# --------------------------------------------------------------------------- configuration

@dataclass
class Config:
    cluster: str
    bucket: str
    server: str = field(default_factory=socket.gethostname)
    endpoint_url: str = ""
    region: str = ""
    part_size_mb: int = 32
    compression_level: int = 3
    compression_threads: int = 0
    keep_recent: int = 96
    keep_daily: int = 30
    mariabackup_options_file: str = "/etc/hostkit/mysql-backup.cnf"
    mariabackup_extra_args: list[str] = field(default_factory=list)
    binlog_options_file: str = "/etc/hostkit/mysql-binlog.cnf"
    source_file: str = "/etc/hostkit/mysql-binlog-source.json"
    state_dir: str = "/var/lib/hostkit/mysql-backup"
    binlog_dir: str = "/var/lib/hostkit/mysql-binlogs"
    work_dir: str = "/var/lib/hostkit/mysql-backup/work"
    ship_interval: float = 10.0
    compact_segments: int = 60
    stream_server_id: int = 1999999999
    env_file: str = "/etc/hostkit/mysql-backup.env"
    commands: dict[str, str] = field(default_factory=dict)
    # The global config document the binlog source follows (clusters.<cluster>.db.master);
    # an empty bucket: the source file is left to whoever writes it (inventory, failover).
    global_config_bucket: str = ""
    global_config_key: str = "global-config.json"
    global_config_region: str = ""
    global_config_endpoint_url: str = ""
    global_config_interval: float = 5.0
    # MariaDB port of a master taken from the global config (the document has addresses).
    master_port: int = 3306

    def command(self, name: str) -> str:
        defaults = {"mariabackup": "mariabackup", "zstd": "zstd", "mbstream": "mbstream",
                    "mariadb_binlog": "mariadb-binlog", "mariadb": "mariadb"}
        return self.commands.get(name) or defaults[name]

    @property
    def part_size(self) -> int:
        return int(self.part_size_mb) * 1024 * 1024


def legacy_config(raw: Mapping[str, Any], path: str) -> dict[str, Any]:
    """The settings with `cluster`: a file written by the previous version of the role
    names a `product` instead, read as the cluster of that name (its backups are under the
    same prefix in S3). Both, naming different clusters, is refused."""
    out = dict(raw)
    if "product" in out:
        legacy = out.pop("product")
        if out.get("cluster") and legacy and out["cluster"] != legacy:
            raise BackupError(f"configuration {path}: cluster {out['cluster']!r} and the older "
                              f"field product {legacy!r} differ (remove product)")
        if not out.get("cluster"):
            out["cluster"] = legacy
    return out


def load_config(path: str) -> Config:
    try:
        raw = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise BackupError(f"configuration {path} is missing (apply the mysql_backup role)"
                          ) from None
    except ValueError as exc:
        raise BackupError(f"configuration {path} is not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise BackupError(f"configuration {path} is not a JSON object")
    raw = legacy_config(raw, path)
    known = set(Config.__dataclass_fields__)
    unknown = sorted(set(raw) - known)
    if unknown:
        raise BackupError(f"configuration {path}: unknown field(s) {', '.join(unknown)}")
    for required in ("cluster", "bucket"):
        if not raw.get(required):
            raise BackupError(f"configuration {path}: {required} is missing")
    config = Config(**raw)
    check_cluster(config.cluster)
    check_server(config.server)
    if config.keep_recent < 1 or config.keep_daily < 0:
        raise BackupError(f"configuration {path}: keep_recent must be >= 1 and keep_daily "
                          ">= 0")
    if not 0 < int(config.master_port) < 65536:
        raise BackupError(f"configuration {path}: master_port {config.master_port!r} is not "
                          "1-65535")
    if config.global_config_bucket and float(config.global_config_interval) < 0.1:
        raise BackupError(f"configuration {path}: global_config_interval must be >= 0.1")
    return config


def load_env_file(path: str) -> None:
    """KEY=VALUE lines of the units' environment file (AWS settings), for runs from a
    shell; what the environment already has wins. A missing file is no error."""
    try:
        lines = Path(path).read_text().splitlines()
    except FileNotFoundError:
        return
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        os.environ.setdefault(key.strip(), value)


def read_source(path: str) -> tuple[str, int, str]:
    """The master the binary log stream follows: {"host": ..., "port": ..., "name": ...}
    (host and port to connect to; name, default host, names the series; other keys are
    notes). Rewriting this one file (atomically) repoints the stream: the role does from
    the inventory, the SourceFollower from the global config document."""
    try:
        doc = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise BackupError(f"binlog source file {path} is missing") from None
    except ValueError as exc:
        raise BackupError(f"binlog source file {path} is not JSON: {exc}") from None
    host = doc.get("host") if isinstance(doc, dict) else None
    port = doc.get("port", 3306) if isinstance(doc, dict) else None
    if not isinstance(host, str) or not host:
        raise BackupError(f"binlog source file {path}: host is missing")
    if not isinstance(port, int) or not 0 < port < 65536:
        raise BackupError(f"binlog source file {path}: port {port!r} is not 1-65535")
    name = doc.get("name") or host
    check_server(str(name), "master")
    return host, port, str(name)


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


# --------------------------------------------------------------------------- retention

def list_manifests(store: S3Store, cluster: str) -> tuple[list[dict[str, Any]],
                                                          dict[str, tuple[int, datetime]]]:
    """(valid manifests, the whole snapshots/ listing). An unreadable manifest is skipped
    with a log line: it never counts as a snapshot."""
    listing = store.list(snapshots_prefix(cluster))
    manifests = []
    for key in sorted(listing):
        info = parse_snapshot_key(key)
        if info is None or info.kind != "manifest":
            continue
        try:
            doc = validate_manifest(store.get_json(key), where=key)
        except BackupError as exc:
            log(f"skipping snapshot manifest {key}: {exc}")
            continue
        if doc["data_key"] in listing:
            manifests.append(doc)
        else:
            log(f"skipping snapshot manifest {key}: its data {doc['data_key']} is missing")
    return manifests, listing


def apply_retention(config: Config, store: S3Store, now: datetime) -> dict[str, Any]:
    manifests, listing = list_manifests(store, config.cluster)
    latest = store.get_json(latest_key(config.cluster)) or {}
    kept, expired = select_retained(manifests, config.keep_recent, config.keep_daily,
                                    protect=[latest["data_key"]] if latest.get("data_key") else [])
    doomed = []
    for doc in expired:  # manifest first: a snapshot without one is never restored
        doomed += [doc["manifest_key"], doc["data_key"]]
    kinds = {k: parse_snapshot_key(k) for k in listing}
    data_keys = {k: listing[k][1] for k, info in kinds.items() if info and info.kind == "data"}
    manifest_keys = [k for k, info in kinds.items() if info and info.kind == "manifest"]
    orphans = orphan_snapshot_data(data_keys, manifest_keys, now, ORPHAN_GRACE)
    if doomed or orphans:
        store.delete_all_versions(doomed + orphans)
    aborted = store.abort_stale_uploads(cluster_prefix(config.cluster), now, STALE_UPLOAD)
    binlogs = list_binlog_objects(store, config.cluster, cache_path=str(
        Path(config.state_dir, "binlog-metadata-cache.json")))
    old_binlogs = binlogs_to_delete(binlogs, kept)
    if old_binlogs:
        store.delete_all_versions([k for o in old_binlogs for k in o.keys])
    return {"kept": len(kept), "expired": [d["data_key"] for d in expired],
            "orphans": orphans, "aborted_uploads": aborted,
            "binlogs_deleted": [f"{o.series}/{o.name}" for o in old_binlogs]}


def list_binlog_objects(store: S3Store, cluster: str, cache_path: str | None = None) -> list:
    """Binary log objects with their metadata. Metadata of closed files never changes, so it
    is cached locally by key and size; segments are read each time."""
    listing = {k: v[0] for k, v in store.list(binlogs_prefix(cluster)).items()}
    cache = (read_json(cache_path, {}) or {}) if cache_path else {}
    metadata: dict[str, dict[str, str]] = {}
    for key, size in listing.items():
        info = parse_binlog_key(key)
        if info is None:
            continue
        cached = cache.get(key)
        if info.offset is None and cached and cached.get("size") == size:
            metadata[key] = cached["meta"]
            continue
        metadata[key] = store.head_metadata(key)
        if info.offset is None:
            cache[key] = {"size": size, "meta": metadata[key]}
    if cache_path:
        write_json_atomic(cache_path, {k: v for k, v in cache.items() if k in listing})
    return assemble_binlog_objects(listing, metadata)


# --------------------------------------------------------------------------- binlog streaming

def current_series_path(config: Config) -> Path:
    return Path(config.binlog_dir, "current.json")


def master_facts(config: Config, host: str, port: int) -> tuple[int, list[str]]:
    """The master's server_id and binary log names, asked as the binlog user."""
    import pymysql

    try:
        conn = pymysql.connect(host=host, port=port,
                               read_default_file=config.binlog_options_file,
                               connect_timeout=10, read_timeout=30)
    except pymysql.MySQLError as exc:
        raise BackupError(f"cannot connect to master {host}:{port}: {exc}") from None
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT @@server_id")
            server_id = int(cur.fetchone()[0])
            cur.execute("SHOW BINARY LOGS")
            names = [str(row[0]) for row in cur.fetchall()]
    except pymysql.MySQLError as exc:
        raise BackupError(f"master {host}:{port}: {exc}") from None
    finally:
        conn.close()
    return server_id, names


def master_binlog_start(config: Config, host: str, port: int, name: str
                        ) -> dict[int, tuple[int, int]] | None:
    """Where one of the master's binary logs starts: the GTID list event at its top
    (SHOW BINLOG EVENTS, which the stream account may run: BINLOG MONITOR); None when it
    cannot be told."""
    import pymysql

    try:
        conn = pymysql.connect(host=host, port=port,
                               read_default_file=config.binlog_options_file,
                               connect_timeout=10, read_timeout=30)
    except pymysql.MySQLError as exc:
        log(f"cannot ask master {host}:{port} where {name} starts: {exc}")
        return None
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW BINLOG EVENTS IN %s LIMIT 8", (check_binlog_name(name),))
            rows = cur.fetchall()
    except pymysql.MySQLError as exc:
        log(f"cannot ask master {host}:{port} where {name} starts: {exc}")
        return None
    finally:
        conn.close()
    return gtid_list_from_events(rows)


def gtid_list_from_events(rows: Sequence[Sequence[Any]]) -> dict[int, tuple[int, int]] | None:
    """The position in the Gtid_list event among SHOW BINLOG EVENTS rows (Log_name, Pos,
    Event_type, Server_id, End_log_pos, Info), e.g. Info '[0-11-5,1-12-7]'; None without
    one or when its Info cannot be read. A domain the list does not name whose first GTID
    among the rows is not its first ever (a server whose binary log began empty, e.g.
    re-seeded) starts just before that GTID, as scan_binlog says of shipped files."""
    listed: dict[int, tuple[int, int]] | None = None
    for row in rows:
        if len(row) < 6:
            continue
        kind, info = str(row[2]), str(row[5] or "")
        if kind == "Gtid_list" and listed is None:
            try:
                listed = parse_gtid_list(info.strip().strip("[]").replace(" ", ""))
            except BackupError:
                return None
        elif kind == "Gtid" and listed is not None:
            match = re.search(r"GTID ([0-9]+)-([0-9]+)-([0-9]+)", info)
            if match:
                domain, server, seq = (int(x) for x in match.groups())
                if domain not in listed and seq > 1:
                    listed[domain] = (server, seq - 1)
    return listed


@dataclass
class Shipped:
    """What the binary logs shipped so far are: the series that have files (in S3, in this
    host's shipping state, here), and how far they reach together."""
    series: set[str] = field(default_factory=set)
    position: dict[int, tuple[int, int]] = field(default_factory=dict)


def shipped_binlogs(config: Config, store: S3Store | None) -> Shipped:
    """The shipper's state and local files on this host, and the objects in S3 (a new
    backup host). What is streamed but not shipped yet does not count for the position: a
    lower position only means starting a new series one file earlier."""
    found = Shipped()
    state = read_json(Path(config.state_dir, "binlog-state.json"), {}) or {}
    for series, files in (state.get("shipped") or {}).items():
        if files:
            found.series.add(series)
        for record in (files or {}).values():
            scan = record.get("scan") if isinstance(record, dict) else None
            if scan and scan.get("gtid_end"):
                with contextlib.suppress(BackupError):
                    found.position = gtid_merge(found.position, parse_gtid_list(scan["gtid_end"]))
    root = Path(config.binlog_dir)
    if root.is_dir():
        found.series |= {d.name for d in root.iterdir()
                         if d.is_dir() and any(is_binlog_name(p.name) for p in d.iterdir())}
    if store is not None:
        try:
            for obj in list_binlog_objects(store, config.cluster, cache_path=str(
                    Path(config.state_dir, "binlog-metadata-cache.json"))):
                found.series.add(obj.series)
                found.position = gtid_merge(found.position, obj.gtid_end)
        except Exception as exc:  # S3 down: what this host shipped is enough to go on
            log(f"cannot list the binary logs in S3 ({' '.join(str(exc).split())}); "
                "going by this host's shipping state")
    return found


def prepare_stream(config: Config, store: S3Store | None, host: str, port: int,
                   facts: Callable[..., tuple[int, list[str]]] = master_facts,
                   name: str | None = None,
                   starts: Callable[..., dict[int, tuple[int, int]] | None]
                   = master_binlog_start) -> tuple[str, Path, str, list[str]]:
    """Where and from which file to stream: (series, directory, start file, command)."""
    server_id, names = facts(config, host, port)
    base = binlog_series(name or host, server_id)
    current = (read_json(current_series_path(config), {}) or {}).get("series")
    shipped: Shipped | None = None
    if not is_series_of(current, base):
        shipped = shipped_binlogs(config, store)
    series, series_why = stream_series(base, current, shipped.series if shipped else (),
                                       now_utc())
    directory = Path(config.binlog_dir, series)
    directory.mkdir(parents=True, exist_ok=True)
    local = [p.name for p in directory.iterdir() if is_binlog_name(p.name)]
    remote: list[str] = []
    if store is not None and not local:
        remote = sorted({info.name for key in store.list(binlogs_prefix(config.cluster, series))
                         if (info := parse_binlog_key(key))})
    if not local and not remote and shipped is None:
        shipped = shipped_binlogs(config, store)
    start, why = stream_start_file(local, remote, names, shipped.position if shipped else None,
                                   lambda file: starts(config, host, port, file))
    log(f"binlog stream from {host}:{port} (server_id {server_id}): {series_why}: {why}")
    command = [config.command("mariadb_binlog")]
    if config.binlog_options_file:
        command.append(f"--defaults-extra-file={config.binlog_options_file}")
    command += ["--read-from-remote-server", f"--host={host}", f"--port={port}", "--raw",
                "--stop-never", f"--stop-never-slave-server-id={config.stream_server_id}",
                f"--result-file={directory}/", start]
    write_json_atomic(current_series_path(config), {
        "series": series, "master": name or host, "host": host, "port": port,
        "server_id": server_id,
        "start_file": start, "started_at": iso(now_utc())})
    return series, directory, start, command


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


def run_stream(config: Config, store: S3Store | None, poll: float = 1.0,
               facts: Callable[..., tuple[int, list[str]]] = master_facts,
               follower: SourceFollower | None = None,
               starts: Callable[..., dict[int, tuple[int, int]] | None]
               = master_binlog_start) -> int:
    """Run mariadb-binlog as a child; return when it ends (its status) or when the source
    file changes (0: systemd starts the stream again, towards the new master). With a
    follower, the source file is first put in line with the global config (before any
    connection to a master that may be gone), then checked against it while streaming."""
    if follower is not None:
        follower.check()
    host, port, name = read_source(config.source_file)
    source_text = Path(config.source_file).read_text()
    _series, _directory, _start, command = prepare_stream(config, store, host, port, facts,
                                                          name, starts)
    child = subprocess.Popen(command)
    stopping = {"signal": 0}

    def stop(signum: int, _frame: Any) -> None:
        stopping["signal"] = signum
        if child.poll() is None:
            child.terminate()

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        while True:
            try:
                status = child.wait(timeout=poll)
            except subprocess.TimeoutExpired:
                status = None
            if status is not None:
                if stopping["signal"]:
                    return 0
                raise BackupError(f"mariadb-binlog from {host}:{port} exited with status "
                                  f"{status}")
            if follower is not None and not stopping["signal"]:
                follower.check_if_due()
            if _source_changed(config.source_file, source_text):
                log(f"binlog source changed (was {host}:{port}): restarting the stream")
                child.terminate()
                child.wait(timeout=30)
                return 0
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if child.poll() is None:
            child.kill()
            child.wait()


def _source_changed(path: str, before: str) -> bool:
    try:
        return Path(path).read_text() != before
    except FileNotFoundError:
        return False


# --------------------------------------------------------------------------- binlog shipping

def scan_to_dict(scan: BinlogScan) -> dict[str, Any]:
    doc = asdict(scan)
    doc["gtid_start"] = format_gtid_list(scan.gtid_start)
    doc["gtid_end"] = format_gtid_list(scan.gtid_end)
    return doc


def scan_from_dict(doc: Mapping[str, Any]) -> BinlogScan:
    return BinlogScan(int(doc["end"]), parse_gtid_list(doc["gtid_start"]),
                      parse_gtid_list(doc["gtid_end"]), int(doc["first_ts"]),
                      int(doc["last_ts"]), int(doc["events"]), bool(doc["closed"]))


def _metadata(scan: BinlogScan, series: str, **extra: Any) -> dict[str, str]:
    meta = {"gtid-start": format_gtid_list(scan.gtid_start),
            "gtid-end": format_gtid_list(scan.gtid_end),
            "first-ts": str(scan.first_ts), "last-ts": str(scan.last_ts), "series": series}
    meta.update({k: str(v) for k, v in extra.items()})
    return meta


class Shipper:
    """One pass at a time: what plan_shipping says, then local clean-up. The state file
    (shipped files, offsets, last error) is written after every upload."""

    def __init__(self, config: Config, store: S3Store) -> None:
        self.config = config
        self.store = store
        self.state_path = str(Path(config.state_dir, "binlog-state.json"))
        self.state = read_json(self.state_path, {}) or {}
        self.state.setdefault("shipped", {})

    def local_files(self) -> dict[str, dict[str, int]]:
        found: dict[str, dict[str, int]] = {}
        root = Path(self.config.binlog_dir)
        if not root.is_dir():
            return found
        for directory in root.iterdir():
            if directory.is_dir():
                found[directory.name] = {p.name: p.stat().st_size for p in directory.iterdir()
                                         if is_binlog_name(p.name)}
        return found

    def current_series(self) -> str | None:
        doc = read_json(current_series_path(self.config), {}) or {}
        return doc.get("series")

    def save(self, **values: Any) -> None:
        self.state.update(values)
        write_json_atomic(self.state_path, self.state)

    def ship_once(self) -> list[str]:
        current = self.current_series()
        local = self.local_files()
        done = []
        for action in plan_shipping(local, self.state["shipped"], current):
            path = str(Path(self.config.binlog_dir, action.series, action.name))
            if action.kind == "final":
                self._ship_final(action.series, action.name, path)
            else:
                if not self._ship_segment(action.series, action.name, path):
                    continue
            done.append(f"{action.kind}:{action.series}/{action.name}")
        for series, name in local_files_to_remove(
                {s: list(files) for s, files in local.items()}, self.state["shipped"], current):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(Path(self.config.binlog_dir, series, name))
        self.save(last_pass_at=iso(now_utc()), last_pass_uploads=done)
        return done

    def _ship_final(self, series: str, name: str, path: str) -> None:
        with open(path, "rb") as handle:
            scan = scan_binlog(handle)
        key = binlog_key(self.config.cluster, series, name)
        if scan.end > 0:
            self.store.upload_file_range(key, path, 0, scan.end,
                                         _metadata(scan, series, size=scan.end),
                                         self.config.part_size)
        segments = [k for k in self.store.list(key + ".seg-")]
        if segments:
            self.store.delete_all_versions(segments)
        self.state["shipped"].setdefault(series, {})[name] = {
            "final": True, "offset": scan.end, "scan": scan_to_dict(scan)}
        self.save()

    def _ship_segment(self, series: str, name: str, path: str) -> bool:
        record = self.state["shipped"].setdefault(series, {}).setdefault(
            name, {"final": False, "offset": 0, "segments": 0})
        previous = scan_from_dict(record["scan"]) if record.get("scan") else None
        with open(path, "rb") as handle:
            scan = scan_binlog(handle, previous=previous)
        start = previous.end if previous else 0
        if scan.end <= start:
            return False
        meta = _metadata(scan, series, offset=start, end=scan.end)
        self.store.upload_file_range(segment_key(self.config.cluster, series, name, start), path,
                                     start, scan.end, meta, self.config.part_size)
        record.update(offset=scan.end, scan=scan_to_dict(scan),
                      segments=int(record.get("segments", 0)) + 1)
        self.save()
        if record["segments"] >= self.config.compact_segments:
            self._compact(series, name, path, scan)
        return True

    def _compact(self, series: str, name: str, path: str, scan: BinlogScan) -> None:
        """Many small segments -> one from the start of the file: the restore reads one
        object, and the chain rule (longest run from offset 0) prefers it at once."""
        first = segment_key(self.config.cluster, series, name, 0)
        self.store.upload_file_range(first, path, 0, scan.end,
                                     _metadata(scan, series, offset=0, end=scan.end),
                                     self.config.part_size)
        stale = [k for k in self.store.list(binlog_key(self.config.cluster, series, name) + ".seg-")
                 if k != first]
        if stale:
            self.store.delete_all_versions(stale)
        self.state["shipped"][series][name]["segments"] = 1
        self.save()

    def run_forever(self, interval: float, stop: Callable[[], bool]) -> None:
        while not stop():
            began = time.monotonic()
            try:
                self.ship_once()
                if self.state.get("last_error"):
                    log("shipping works again")
                    self.save(last_error=None)
            except Exception as exc:  # keep the service up; the state file says it failed
                message = f"ship-binlogs pass failed: {exc}"
                log(message)
                self.save(last_error={"at": iso(now_utc()), "message": message})
            time.sleep(max(0.0, interval - (time.monotonic() - began)))


# --------------------------------------------------------------------------- restore

def build_plan(config: Config, store: S3Store, restore_time: datetime | None,
               snapshot_key: str | None = None) -> dict[str, Any]:
    manifests, _ = list_manifests(store, config.cluster)
    if snapshot_key:
        manifests = [m for m in manifests if snapshot_key in (m["data_key"], m["manifest_key"])]
        if not manifests:
            raise BackupError(f"snapshot {snapshot_key} is not among the complete snapshots of "
                              f"cluster {config.cluster}")
    binlogs = list_binlog_objects(store, config.cluster)
    plan = plan_restore(manifests, binlogs, restore_time).as_dict()
    plan.update(cluster=config.cluster, bucket=config.bucket,
                restore_time=None if restore_time is None else iso(restore_time),
                planned_at=iso(now_utc()))
    return plan


def fetch_snapshot(config: Config, store: S3Store, plan: Mapping[str, Any], dest: str) -> dict:
    """Download, verify (size, SHA-256), decompress and unpack into an empty `dest`."""
    snapshot = plan["snapshot"]
    target = Path(dest)
    if target.exists() and any(target.iterdir()):
        raise BackupError(f"{dest} is not empty: refusing to unpack a snapshot over it")
    target.mkdir(parents=True, exist_ok=True)
    unzstd = subprocess.Popen([config.command("zstd"), "-d", "-q", "-c"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    unpack = subprocess.Popen([config.command("mbstream"), "-x", "-C", str(target)],
                              stdin=unzstd.stdout, stderr=subprocess.PIPE)
    assert unzstd.stdin is not None and unzstd.stdout is not None
    unzstd.stdout.close()
    began = time.monotonic()
    try:
        size, digest = store.download(snapshot["data_key"], unzstd.stdin.write,
                                      expected_sha256=snapshot["sha256"],
                                      expected_size=int(snapshot["size"]))
    finally:
        with contextlib.suppress(OSError):
            unzstd.stdin.close()
        z_err = unzstd.stderr.read().decode(errors="replace") if unzstd.stderr else ""
        u_err = unpack.stderr.read().decode(errors="replace") if unpack.stderr else ""
        z_rc, u_rc = unzstd.wait(), unpack.wait()
    if z_rc != 0:
        raise BackupError(f"zstd -d exited with status {z_rc}: {z_err.strip()[-300:]}")
    if u_rc != 0:
        raise BackupError(f"mbstream -x exited with status {u_rc}: {u_err.strip()[-300:]}")
    return {"data_key": snapshot["data_key"], "size": size, "sha256": digest,
            "seconds": round(time.monotonic() - began, 1), "dest": str(target)}


def mariadb_sql(config: Config, sql: str, extra: Sequence[str] = ()) -> str:
    proc = subprocess.run([config.command("mariadb"), "--batch", "--skip-column-names",
                           *extra, "-e", sql], capture_output=True, text=True)
    if proc.returncode != 0:
        raise BackupError(f"mariadb: {proc.stderr.strip()[-500:]}")
    return proc.stdout


def _gtid_sql_literal(gtid: str) -> str:
    """A GTID list checked to be digits, '-' and ',' only, so it is safe inside quotes."""
    parse_gtid_list(gtid)
    if any(c not in "0123456789-," for c in gtid):
        raise BackupError(f"GTID position {gtid!r} has unexpected characters")
    return f"'{gtid}'"


def replay(config: Config, store: S3Store, plan: Mapping[str, Any], work: str) -> dict:
    """Replay the plan's binary logs into the local server (root over the socket): the
    binary log state first becomes the snapshot's position (RESET MASTER, then
    gtid_binlog_state), so the replayed transactions keep their GTIDs in strict order."""
    snapshot_gtid = str(plan["snapshot"]["gtid"])
    began = time.monotonic()
    log_bin = mariadb_sql(config, "SELECT @@log_bin").strip() == "1"
    if log_bin:
        mariadb_sql(config, "RESET MASTER")
        if snapshot_gtid:
            mariadb_sql(config, "SET GLOBAL gtid_binlog_state = "
                        + _gtid_sql_literal(snapshot_gtid))
    env = dict(os.environ, TZ="UTC")
    replayed: list[str] = []
    Path(work).mkdir(parents=True, exist_ok=True)
    for number, step in enumerate(plan["steps"]):
        files = []
        for item in step["files"]:
            path = Path(work, f"{number:02d}-{item['name']}")
            _download_binlog(store, item, path)
            files.append(str(path))
        command = [config.command("mariadb_binlog")]
        if step["start_gtid"]:
            command.append(f"--start-position={step['start_gtid']}")
        if plan.get("stop_datetime"):
            command.append(f"--stop-datetime={plan['stop_datetime']}")
        command += files
        _pipe(command, [config.command("mariadb"), "--binary-mode"], env)
        replayed += [f"{step['series']}/{item['name']}" for item in step["files"]]
    reached = mariadb_sql(config, "SELECT @@gtid_binlog_pos").strip() if log_bin else ""
    if log_bin and reached:
        mariadb_sql(config, "SET GLOBAL gtid_slave_pos = " + _gtid_sql_literal(reached))
    # Without a binary log on this server the position reached is the plan's estimate.
    return {"replayed": replayed, "log_bin": log_bin,
            "gtid": reached if log_bin else str(plan.get("reaches_gtid", "")),
            "stop_datetime": plan.get("stop_datetime"),
            "seconds": round(time.monotonic() - began, 1)}


def _download_binlog(store: S3Store, item: Mapping[str, Any], path: Path) -> None:
    with open(path, "wb") as handle:
        for index, key in enumerate(item["keys"]):
            expected = item["sha256"][index] if index < len(item["sha256"]) else ""
            store.download(key, handle.write, expected_sha256=expected)
        size = handle.tell()
    if size != int(item["size"]):
        raise BackupError(f"binary log {item['name']}: assembled {size} bytes, expected "
                          f"{item['size']}")


def _pipe(producer_cmd: list[str], consumer_cmd: list[str], env: Mapping[str, str]) -> None:
    producer = subprocess.Popen(producer_cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=dict(env))
    consumer = subprocess.Popen(consumer_cmd, stdin=producer.stdout, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=dict(env))
    assert producer.stdout is not None
    producer.stdout.close()
    c_out, c_err = consumer.communicate()
    p_err = producer.stderr.read() if producer.stderr else b""
    p_rc = producer.wait()
    if p_rc != 0:
        raise BackupError(f"{producer_cmd[0]} exited with status {p_rc}: "
                          f"{p_err.decode(errors='replace').strip()[-500:]}")
    if consumer.returncode != 0:
        raise BackupError(f"{consumer_cmd[0]} exited with status {consumer.returncode} while "
                          f"replaying: {c_err.decode(errors='replace').strip()[-500:]}")


def verify(config: Config) -> dict[str, Any]:
    """CHECKSUM TABLE and row count of every base table outside the system schemas."""
    excluded = ",".join(f"'{s}'" for s in SYSTEM_SCHEMAS)
    rows = mariadb_sql(config, "SELECT table_schema, table_name FROM information_schema.tables "
                       f"WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ({excluded}) "
                       "ORDER BY table_schema, table_name")
    tables: dict[str, dict[str, int]] = {}
    for line in rows.splitlines():
        schema, table = line.split("\t")
        name = f"`{schema.replace('`', '``')}`.`{table.replace('`', '``')}`"
        checksum = mariadb_sql(config, f"CHECKSUM TABLE {name}").split("\t")[-1].strip()
        count = mariadb_sql(config, f"SELECT COUNT(*) FROM {name}").strip()
        tables[f"{schema}.{table}"] = {"rows": int(count),
                                       "checksum": int(checksum) if checksum.isdigit() else -1}
    return {"tables": tables,
            "gtid_binlog_pos": mariadb_sql(config, "SELECT @@gtid_binlog_pos").strip()}


# --------------------------------------------------------------------------- command line

def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROGRAM, description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=DEFAULT_CONFIG)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("backup", help="take one snapshot now")
    sub.add_parser("stream-binlogs", help="follow the master's binary logs (service)")
    ship = sub.add_parser("ship-binlogs", help="upload binary logs (service)")
    ship.add_argument("--once", action="store_true")
    sub.add_parser("list", help="complete snapshots in S3")
    plan = sub.add_parser("plan", help="restore plan (JSON)")
    plan.add_argument("--time", default="", help="restore point (ISO 8601, UTC by default)")
    plan.add_argument("--snapshot", default="", help="restore this snapshot key")
    plan.add_argument("--output", default="", help="also write the plan to this file")
    fetch = sub.add_parser("fetch-snapshot", help="download and unpack a planned snapshot")
    fetch.add_argument("--plan", required=True)
    fetch.add_argument("--dest", required=True)
    rep = sub.add_parser("replay", help="replay a plan's binary logs into the local server")
    rep.add_argument("--plan", required=True)
    rep.add_argument("--work", required=True)
    sub.add_parser("verify", help="checksums and row counts of the local server (JSON)")
    sub.add_parser("status", help="state files (JSON)")
    return parser


def main(argv: Sequence[str] | None = None, client: Any | None = None) -> int:
    """Run one command; 0 on success, 1 with one log line on failure (and, for `backup`,
    status "failed" and the error in the state file)."""
    args = _parser().parse_args(argv)
    config: Config | None = None
    try:
        config = load_config(args.config)
        if config.env_file:
            load_env_file(config.env_file)
        return _dispatch(args, config, client)
    except Exception as exc:  # every failure: one line, a status, no traceback
        message = " ".join(str(exc).split()) or type(exc).__name__
        if not isinstance(exc, (BackupError, OSError)):
            message = f"{type(exc).__name__}: {message}"
        log(f"{args.command} failed: {message}")
        if args.command == "backup" and config is not None:
            with contextlib.suppress(Exception):
                record_state(str(Path(config.state_dir, "backup-state.json")), "backup",
                             status="failed",
                             last_error={"at": iso(now_utc()), "message": message})
        return 1


def _dispatch(args: argparse.Namespace, config: Config, client: Any | None) -> int:
    state_path = str(Path(config.state_dir, "backup-state.json"))
    if args.command == "backup":
        with exclusive_lock(str(Path(config.state_dir, "backup.lock"))):
            record_state(state_path, "backup", last_attempt_at=iso(now_utc()))
            result = run_backup(config, store_for(config, client))
        manifest = result.manifest
        record_state(state_path, "backup", status="ok", last_error=None, last_success={
            "at": manifest["finished_at"], "data_key": manifest["data_key"],
            "size": manifest["size"], "sha256": manifest["sha256"], "gtid": manifest["gtid"],
            "seconds": result.seconds, "latest_updated": result.latest_updated},
            retention=result.retention)
        log(f"backup ok: {manifest['data_key']} {manifest['size']} bytes in {result.seconds}s, "
            f"GTID {manifest['gtid'] or '(none)'}, sha256 {manifest['sha256'][:16]}...")
        print(json.dumps({"manifest": manifest, "latest_updated": result.latest_updated,
                          "retention": result.retention, "seconds": result.seconds}))
        return 0
    if args.command == "stream-binlogs":
        return run_stream(config, store_for(config, client), follower=follower_for(config, client))
    if args.command == "ship-binlogs":
        shipper = Shipper(config, store_for(config, client))
        if args.once:
            print(json.dumps({"uploaded": shipper.ship_once()}))
            return 0
        stopping = {"stop": False}

        def stop(_signum: int, _frame: Any) -> None:
            stopping["stop"] = True

        signal.signal(signal.SIGTERM, stop)
        shipper.run_forever(config.ship_interval, lambda: stopping["stop"])
        return 0
    if args.command == "list":
        manifests, _ = list_manifests(store_for(config, client), config.cluster)
        print(json.dumps(sorted(manifests, key=lambda m: m["finished_at"]), indent=2))
        return 0
    if args.command == "plan":
        moment = parse_time(args.time) if args.time else None
        plan = build_plan(config, store_for(config, client), moment, args.snapshot or None)
        if args.output:
            write_json_atomic(args.output, plan, mode=0o600)
        print(json.dumps(plan, indent=2))
        return 0
    if args.command == "fetch-snapshot":
        plan = _read_plan(args.plan)
        print(json.dumps(fetch_snapshot(config, store_for(config, client), plan, args.dest)))
        return 0
    if args.command == "replay":
        plan = _read_plan(args.plan)
        print(json.dumps(replay(config, store_for(config, client), plan, args.work)))
        return 0
    if args.command == "verify":
        print(json.dumps(verify(config), indent=2, sort_keys=True))
        return 0
    if args.command == "status":
        print(json.dumps({"backup": read_json(state_path, {}),
                          "binlogs": read_json(Path(config.state_dir, "binlog-state.json"), {}),
                          "stream": read_json(current_series_path(config), {}),
                          "source": read_json(source_state_path(config), {})}, indent=2))
        return 0
    raise BackupError(f"unknown command {args.command}")


def _read_plan(path: str) -> dict[str, Any]:
    plan = read_json(path)
    if not isinstance(plan, dict) or "snapshot" not in plan or "steps" not in plan:
        raise BackupError(f"{path} is not a restore plan (run `{PROGRAM} plan --output`)")
    return plan


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
