"""The watcher's configuration file (`check-config` checks it): WatcherConfig, and
WatcherError for a bad one or a refused command."""

from __future__ import annotations

import json
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

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
_NUMBERS = {"mysql_port": (1, 65535), "connect_timeout": (0.05, 60), "read_timeout": (0.05, 600),
            "interval": (0.05, 3600), "rounds": (1, 1000), "silence": (0.1, 3600),
            "anti_flap_window": (0, 10 ** 7), "config_poll_interval": (0.1, 3600),
            "heartbeat_period": (0.1, 3600), "apply_timeout": (1, 86400),
            "catch_up_timeout": (1, 86400), "semi_sync_timeout": (0.1, 3600),
            "retry_interval": (0.1, 3600), "switchover_max_lag": (0, 86400)}


def parse_config(data: Any, source: str = "configuration") -> WatcherConfig:
    """A WatcherConfig from the parsed JSON, or WatcherError naming every bad field."""
    if not isinstance(data, Mapping):
        raise WatcherError(f"{source}: expected a JSON object")
    known = set(WatcherConfig.__dataclass_fields__)
    problems = [f"unknown field '{k}'" for k in sorted(set(data) - known)]
    problems += [f"field '{k}' is required" for k in _REQUIRED
                 if not isinstance(data.get(k), str) or not data.get(k)]
    for name, (low, high) in _NUMBERS.items():
        value = data.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not low <= value <= high):
            problems.append(f"field '{name}' must be a number from {low} to {high}, "
                            f"got {value!r}")
    clusters = data.get("clusters", [])
    if not isinstance(clusters, list) or not all(isinstance(c, str) for c in clusters):
        problems.append("field 'clusters' must be a list of cluster names")
    fence = data.get("fence", {})
    if not isinstance(fence, Mapping) or fence.get("method", "none") not in (
            "none", "docker", "ec2"):
        problems.append("field 'fence' must be an object whose method is none, docker or ec2")
    env = data.get("aws_environment", {})
    if not isinstance(env, Mapping) or not all(
            k in AWS_ENVIRONMENT and isinstance(v, str) for k, v in env.items()):
        problems.append("field 'aws_environment' must map " + ", ".join(AWS_ENVIRONMENT)
                        + " to strings")
    if problems:
        raise WatcherError(f"{source}: " + "; ".join(problems))
    values = {k: v for k, v in data.items() if k in known}
    values["clusters"] = tuple(clusters)
    if values.get("rounds") is not None:
        values["rounds"] = int(values["rounds"])
    return WatcherConfig(**values)


def read_config(path: str) -> WatcherConfig:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except OSError as exc:
        raise WatcherError(f"cannot read the configuration {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise WatcherError(f"{path}: not JSON: {exc}") from None
    return parse_config(data, path)
