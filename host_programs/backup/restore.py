"""`plan`, `fetch-snapshot`, `replay` and `verify`: the restore plan for a time, the
snapshot unpacked, the binary logs replayed, the result checked."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from host_programs.backup.config import Config
from host_programs.backup.core import BackupError, iso, parse_gtid_list, plan_restore
from host_programs.backup.helpers import now_utc
from host_programs.backup.retention import list_binlog_objects, list_manifests
from host_programs.backup.s3 import S3Store

SYSTEM_SCHEMAS = ("mysql", "information_schema", "performance_schema", "sys")


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
