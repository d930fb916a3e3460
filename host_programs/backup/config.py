"""The backup program's configuration (/etc/hostkit/mysql-backup.json: its JSON Schema
SCHEMA and Config, checked by host_programs/common/settings.py, every problem at once),
the units' environment file and the binlog source file.

The environment file (KEY=VALUE lines, systemd's EnvironmentFile= format) and the binlog
source file (a small document the role and the SourceFollower rewrite at run time, whose
other keys are notes) are not settings files: they keep their own readers below."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from host_programs.backup.core import _CLUSTER_RE, _SERVER_RE, BackupError, check_server
from host_programs.common import settings

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


def _whole(low: int, high: int | None = None, what: str = "") -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "integer", "minimum": low}
    if high is None:
        schema["description"] = f"a whole number >= {low}{what}"
    else:
        schema.update(maximum=high, description=f"a whole number from {low} to {high}{what}")
    return schema


_TEXT: dict[str, Any] = {"type": "string"}
_COMMANDS = ("mariabackup", "zstd", "mbstream", "mariadb_binlog", "mariadb")

# The settings file the role writes (roles/mysql_backup/templates/mysql-backup.json.j2); every
# command of the program checks it against this schema first (host_programs/common/
# settings.py). Ranges the role's checks guarantee (plugin_utils/role_checks/mysql_backup.py)
# or the program's steps need; paths may be empty (no options file, no env file).
SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["cluster", "bucket"],
    "properties": {
        "cluster": {"type": "string", "pattern": _CLUSTER_RE.pattern,
                    "description": "a lower-case id (letters, digits, '_' or '-', starting "
                                   "with a letter)"},
        "bucket": {"type": "string", "minLength": 1, "description": "an S3 bucket name"},
        "server": {"type": "string", "pattern": _SERVER_RE.pattern,
                   "description": "a host name (letters, digits, '.', '_' or '-')"},
        "endpoint_url": _TEXT,
        "region": _TEXT,
        "part_size_mb": _whole(5, what=" (MiB: S3's smallest part is 5 MiB)"),
        "compression_level": _whole(1, 19, " (a zstd level)"),
        "compression_threads": _whole(0, what=" (0: one per core)"),
        "keep_recent": _whole(1),
        "keep_daily": _whole(0),
        "mariabackup_options_file": _TEXT,
        "mariabackup_extra_args": {"type": "array", "items": {"type": "string"},
                                   "description": "a list of mariabackup options"},
        "binlog_options_file": _TEXT,
        "source_file": _TEXT,
        "state_dir": _TEXT,
        "binlog_dir": _TEXT,
        "work_dir": _TEXT,
        "ship_interval": {"type": "number", "exclusiveMinimum": 0,
                          "description": "a number of seconds above 0"},
        "compact_segments": _whole(1),
        "stream_server_id": _whole(1, what=" (a MariaDB server id)"),
        "env_file": _TEXT,
        "commands": {"type": "object", "additionalProperties": False,
                     "properties": {name: _TEXT for name in _COMMANDS}},
        "global_config_bucket": _TEXT,
        "global_config_key": _TEXT,
        "global_config_region": _TEXT,
        "global_config_endpoint_url": _TEXT,
        "global_config_interval": {"type": "number", "description": "a number of seconds"},
        "master_port": _whole(1, 65535, " (a port number)"),
    },
    # The interval matters only when the stream follows a global config document.
    "if": {"properties": {"global_config_bucket": {"minLength": 1}},
           "required": ["global_config_bucket"]},
    "then": {"properties": {"global_config_interval": {
        "minimum": 0.1,
        "description": "a number >= 0.1 (seconds) when global_config_bucket is set"}}},
}


def _legacy(raw: Any) -> tuple[Any, list[str]]:
    """The settings with `cluster`: a file written by the previous version of the role
    names a `product` instead, read as the cluster of that name (its backups are under the
    same prefix in S3). Both, naming different clusters, is a problem."""
    if not isinstance(raw, Mapping) or "product" not in raw:
        return raw, []
    out = dict(raw)
    legacy = out.pop("product")
    if out.get("cluster") and legacy and out["cluster"] != legacy:
        return out, [f"cluster {out['cluster']!r} and the older field product {legacy!r} "
                     "differ (remove product)"]
    if not out.get("cluster"):
        out["cluster"] = legacy
    return out, []


def legacy_config(raw: Mapping[str, Any], path: str) -> dict[str, Any]:
    """`raw` with a legacy `product` read as the cluster; BackupError when both differ."""
    out, found = _legacy(raw)
    if found:
        raise BackupError(f"configuration {path}: " + "; ".join(found))
    return dict(out)


def parse_config(data: Any, source: str = "configuration") -> Config:
    """A Config from the parsed JSON, or BackupError naming every bad field."""
    data, found = _legacy(data)
    try:
        found += settings.problems(data, SCHEMA)
        if found:
            raise BackupError(f"{source}: " + "; ".join(found))
        config = settings.build(data, SCHEMA, Config, source)
    except settings.SettingsError as exc:
        raise BackupError(str(exc)) from None
    check_server(config.server)  # the default, this host's name, too
    return config


def load_config(path: str) -> Config:
    """The settings file, checked (every command of the program starts with it)."""
    try:
        data = settings.read_json(path)
    except settings.SettingsError as exc:
        hint = "" if os.path.lexists(path) else " (apply the mysql_backup role)"
        raise BackupError(f"configuration {exc}{hint}") from None
    return parse_config(data, f"configuration {path}")


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
