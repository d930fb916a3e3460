"""The backup program's configuration (/etc/hostkit/mysql-backup.json), the units'
environment file and the binlog source file."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from host_programs.backup.core import BackupError, check_cluster, check_server

PROGRAM = "hostkit-mysql-backup"
DEFAULT_CONFIG = "/etc/hostkit/mysql-backup.json"


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
