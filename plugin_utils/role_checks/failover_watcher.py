"""Settings checks of role failover_watcher (tasks/validate.yml).

The role writes each failover_watcher_<field> into the watcher's configuration file, which
the program checks (`hostkit-failover check-config`, host_programs/failover/config.py). The
numbers' ranges and the environment variables the file may carry are the program's own
(imported, not repeated), so the role refuses what the program would refuse, before
anything on the host changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from host_programs.failover.config import _NUMBERS as PROGRAM_NUMBERS
from host_programs.failover.config import AWS_ENVIRONMENT
from plugin_utils.role_checks.common import (
    absolute_path,
    environment,
    http_url_or_empty,
    is_collection,
    not_empty,
    number,
    one_of,
)

PREFIX = "failover_watcher_"
# role variable -> (low, high): the program's field of the same name without the prefix.
NUMBERS = {PREFIX + field: limits for field, limits in PROGRAM_NUMBERS.items()}
REQUIRED = ("failover_watcher_bucket", "failover_watcher_key", "failover_watcher_mysql_user",
            "failover_watcher_replication_user", "failover_watcher_user")
PATHS = ("failover_watcher_install_dir", "failover_watcher_config_dir",
         "failover_watcher_state_dir", "failover_watcher_docker_socket")
FENCE_METHODS = ("docker", "ec2", "none")


def fencing(settings: Mapping[str, Any]) -> list[str]:
    found = one_of(settings, "failover_watcher_fence_method", FENCE_METHODS)
    if (settings.get("failover_watcher_fence_method") == "ec2"
            and not settings.get("failover_watcher_ec2_isolation_group")):
        found.append("failover_watcher_ec2_isolation_group is empty: ec2 fencing swaps the "
                     "old master's security groups for it")
    return found


def clusters(settings: Mapping[str, Any]) -> list[str]:
    value = settings.get("failover_watcher_clusters")
    if not is_collection(value):
        return [f"failover_watcher_clusters must be a list of cluster names, got {value!r}"]
    return []


def problems(settings: Mapping[str, Any]) -> list[str]:
    return [
        *(problem for name in REQUIRED for problem in not_empty(settings, name)),
        *(problem for name, (low, high) in NUMBERS.items()
          for problem in number(settings, name, low, high)),
        *fencing(settings),
        *one_of(settings, "failover_watcher_password_source", ("local", "ssm")),
        *http_url_or_empty(settings, "failover_watcher_endpoint_url"),
        *clusters(settings),
        *environment(settings, "failover_watcher_aws_environment", AWS_ENVIRONMENT),
        *(problem for name in PATHS for problem in absolute_path(settings, name)),
    ]
