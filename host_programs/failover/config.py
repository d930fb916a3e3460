"""The watcher's configuration file (`check-config` checks it): its JSON Schema (SCHEMA),
WatcherConfig, and WatcherError for a bad one or a refused command. The file is checked
by host_programs/common/settings.py: every problem at once, each with its place."""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from host_programs.common import settings
from host_programs.failover import decide as fo
from host_programs.failover.steps import RunSettings

PROGRAM = "hostkit-failover"
DEFAULT_CONFIG = "/etc/hostkit-failover/config.json"
# Static AWS credentials (the sandbox's emulator) may come with the configuration, so that
# the service and an operator's command (switchover) use the same; production leaves them
# out and boto3 uses the instance profile.
AWS_ENVIRONMENT = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                   "AWS_DEFAULT_REGION")


class WatcherError(Exception):
    """Bad configuration or a refused command; the message names the field or server."""


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class WatcherConfig:
    bucket: str
    key: str
    mysql_user: str
    mysql_password: str
    replication_user: str
    replication_password: str
    state_dir: str
    region: str | None = None
    endpoint_url: str | None = None
    clusters: tuple[str, ...] = ()
    mysql_port: int = 3306
    connect_timeout: float = 0.5
    read_timeout: float = 0.5
    interval: float = 0.5
    rounds: int = 3
    silence: float = 1.5
    anti_flap_window: float = 3600.0
    config_poll_interval: float = 5.0
    heartbeat_period: float = 0.5
    apply_timeout: float = 60.0
    catch_up_timeout: float = 30.0
    semi_sync_timeout: float = 5.0
    retry_interval: float = 5.0
    switchover_max_lag: float = 5.0
    fence: Mapping[str, Any] = field(default_factory=dict)
    aws_environment: Mapping[str, str] = field(default_factory=dict)
    updated_by: str = f"{PROGRAM}@{socket.gethostname()}"

    def health(self) -> fo.HealthSettings:
        return fo.HealthSettings(self.rounds, self.silence)

    def run_settings(self) -> RunSettings:
        return RunSettings(self.replication_user, self.replication_password, self.mysql_port,
                           self.heartbeat_period, 1, self.apply_timeout,
                           self.catch_up_timeout, self.semi_sync_timeout)


_REQUIRED = ("bucket", "key", "mysql_user", "mysql_password", "replication_user",
             "replication_password", "state_dir")


def _number(low: float, high: float) -> dict[str, Any]:
    """A number setting; null (as before: no check) takes the dataclass default."""
    return {"type": ["number", "null"], "minimum": low, "maximum": high,
            "description": f"a number from {low} to {high}"}


def _text(description: str, secret: bool = False) -> dict[str, Any]:
    """A non-empty text; a secret's value is never shown in a message."""
    schema: dict[str, Any] = {"type": "string", "minLength": 1, "description": description}
    if secret:
        schema["writeOnly"] = True
    return schema


_TEXT_OR_NULL = {"type": ["string", "null"]}
_FENCE_METHODS = ("none", "docker", "ec2")

# The configuration file the role writes (roles/failover_watcher/vars/main.yml,
# __failover_watcher_settings); `check-config` (the role's validate command) and every
# start check it against this schema (host_programs/common/settings.py).
SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": list(_REQUIRED),
    "properties": {
        "bucket": _text("an S3 bucket name"),
        "key": _text("an S3 object key"),
        "mysql_user": _text("a MariaDB user name"),
        "mysql_password": _text("a password", secret=True),
        "replication_user": _text("a MariaDB user name"),
        "replication_password": _text("a password", secret=True),
        "state_dir": _text("a directory"),
        "region": _TEXT_OR_NULL,
        "endpoint_url": _TEXT_OR_NULL,
        "clusters": {"type": "array", "description": "a list of cluster names",
                     "items": {"type": "string", "description": "a cluster name"}},
        # Each number: (low, high), the watcher's own limits (the role checks the same,
        # plugin_utils/role_checks/failover_watcher.py imports _NUMBERS below).
        "mysql_port": _number(1, 65535),
        "connect_timeout": _number(0.05, 60),
        "read_timeout": _number(0.05, 600),
        "interval": _number(0.05, 3600),
        "rounds": _number(1, 1000),
        "silence": _number(0.1, 3600),
        "anti_flap_window": _number(0, 10 ** 7),
        "config_poll_interval": _number(0.1, 3600),
        "heartbeat_period": _number(0.1, 3600),
        "apply_timeout": _number(1, 86400),
        "catch_up_timeout": _number(1, 86400),
        "semi_sync_timeout": _number(0.1, 3600),
        "retry_interval": _number(0.1, 3600),
        "switchover_max_lag": _number(0, 86400),
        # What fence.make_fencer reads; the role writes one of vars/main.yml's
        # __failover_watcher_fence.
        "fence": {
            "type": "object",
            "additionalProperties": False,
            "description": "an object whose method is none, docker or ec2",
            "properties": {
                "method": {"enum": list(_FENCE_METHODS),
                           "description": "one of none, docker or ec2"},
                "socket": _TEXT_OR_NULL,
                "timeout": {"type": ["number", "null"], "minimum": 0,
                            "description": "a number of seconds (0 or null: 10)"},
                "region": _TEXT_OR_NULL,
                "endpoint_url": _TEXT_OR_NULL,
                "isolation_group": _TEXT_OR_NULL,
                "managed_by": {"type": "string"},
            },
        },
        "aws_environment": {
            "type": "object",
            "additionalProperties": False,
            "description": "a mapping of " + ", ".join(AWS_ENVIRONMENT) + " to strings",
            "properties": {name: {"type": "string", "description": "a string",
                                  "writeOnly": True}
                           for name in AWS_ENVIRONMENT},
        },
        "updated_by": {"type": "string"},
    },
}

# {field: (low, high)} of every number of the file, from the schema.
_NUMBERS: dict[str, tuple[float, float]] = {
    name: (spec["minimum"], spec["maximum"])
    for name, spec in SCHEMA["properties"].items() if "minimum" in spec}


def _convert(values: dict[str, Any]) -> dict[str, Any]:
    """Checked values to WatcherConfig's fields: a null number is the default, the
    clusters a tuple, the rounds a whole number."""
    values = {k: v for k, v in values.items() if not (k in _NUMBERS and v is None)}
    values["clusters"] = tuple(values.get("clusters", ()))
    if "rounds" in values:
        values["rounds"] = int(values["rounds"])
    return values


def parse_config(data: Any, source: str = "configuration") -> WatcherConfig:
    """A WatcherConfig from the parsed JSON, or WatcherError naming every bad field."""
    try:
        return settings.build(data, SCHEMA, WatcherConfig, source, _convert)
    except settings.SettingsError as exc:
        raise WatcherError(str(exc)) from None


def read_config(path: str) -> WatcherConfig:
    """The configuration file, checked (as `check-config` does)."""
    try:
        return parse_config(settings.read_json(path), path)
    except settings.SettingsError as exc:
        raise WatcherError(str(exc)) from None
