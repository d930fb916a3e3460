"""`stream-binlogs`: follow the master named in the binlog source file with
`mariadb-binlog --read-from-remote-server --raw --stop-never`, in a series per master."""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from host_programs.backup.config import Config, read_source
from host_programs.backup.core import (
    BackupError,
    binlog_series,
    binlogs_prefix,
    check_binlog_name,
    gtid_merge,
    is_binlog_name,
    is_series_of,
    iso,
    parse_binlog_key,
    parse_gtid_list,
    stream_series,
    stream_start_file,
)
from host_programs.backup.follow import SourceFollower
from host_programs.backup.helpers import log, now_utc, read_json
from host_programs.backup.retention import list_binlog_objects
from host_programs.backup.s3 import S3Store
from host_programs.common.atomic_files import write_json_atomic

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
