"""Settings checks of role mysql_backup (tasks/validate.yml).

`mysql_backup_binlog_streaming` arrives as the task's `| bool` made it (Ansible's reading
of yes/no/on/off), and `mysql_backup_products` as the product catalog: the cluster must
be one its products name. A cluster name is one the global config document accepts
(module_utils/global_config.py). The backup program checks its own configuration file when
it starts (host_programs/backup/config.py) with wider rules (any cluster of its S3 layout),
so its checks are not reused here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from module_utils.global_config import _CLUSTER_NAME
from plugin_utils.db_topology import cluster_products
from plugin_utils.role_checks.common import (
    is_collection,
    not_empty,
    one_of,
    port,
    whole_number,
)

CLUSTER_PATTERN = str(_CLUSTER_NAME["pattern"])
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
POSITIVE = ("mysql_backup_keep_recent", "mysql_backup_part_size_mb", "mysql_backup_ship_interval",
            "mysql_backup_compact_segments", "mysql_backup_stream_server_id",
            "mysql_backup_global_config_interval")
SOURCE_OWNERS = ("global_config", "inventory", "failover")
# mariabackup options the program sets itself.
PROGRAM_OPTIONS = ("--backup", "--stream", "--target-dir", "--extra-lsndir",
                   "--defaults-extra-file", "--user", "--password")


def is_bucket_name(value: Any) -> bool:
    return bool(_BUCKET.match(str(value)))


def cluster(settings: Mapping[str, Any]) -> list[str]:
    name = str(settings.get("mysql_backup_cluster") or "")
    known = cluster_products(settings.get("mysql_backup_products"))
    if not re.match(CLUSTER_PATTERN, name):
        return [f"mysql_backup_cluster '{name}' is not a cluster name ({CLUSTER_PATTERN}; "
                "this host holds no position in the database topology? set it)"]
    if name not in known:
        return [f"mysql_backup_cluster '{name}': no product of mysql_backup_products names "
                "this cluster (field database.cluster, default the product's name; clusters: "
                f"{', '.join(known) or 'none'})"]
    return []


def numbers(settings: Mapping[str, Any]) -> list[str]:
    found = [problem for name in POSITIVE for problem in whole_number(settings, name, 1)]
    found += whole_number(settings, "mysql_backup_keep_daily", 0)
    part = settings.get("mysql_backup_part_size_mb")
    if not whole_number(settings, "mysql_backup_part_size_mb") and int(str(part)) < 5:
        found.append("mysql_backup_part_size_mb must be at least 5 (S3 multipart minimum), "
                     f"got {part!r}")
    found += whole_number(settings, "mysql_backup_compression_level", 1, 19)
    return found


def global_config(settings: Mapping[str, Any]) -> list[str]:
    """The document the stream follows, when it follows one."""
    if not (settings.get("mysql_backup_source_owner") == "global_config"
            and settings.get("mysql_backup_binlog_streaming")):
        return []
    found = []
    bucket = settings.get("mysql_backup_global_config_bucket")
    if not is_bucket_name(bucket):
        found.append(f"mysql_backup_global_config_bucket '{bucket}' is not an S3 bucket name "
                     "(mysql_backup_source_owner is global_config: set "
                     "hostkit_global_config_bucket, or choose inventory)")
    found += not_empty(settings, "mysql_backup_global_config_key", falsy_is_empty=False)
    return found


def streaming(settings: Mapping[str, Any]) -> list[str]:
    """The master the binary log stream follows and the hosts it connects from."""
    if not settings.get("mysql_backup_binlog_streaming"):
        return []
    found = []
    master = str(settings.get("mysql_backup_master"))
    if master == "":
        found.append(f"cluster '{settings.get('mysql_backup_cluster') or ''}' has no master "
                     "in the database topology (live position, or group dbrole_master; or "
                     "set mysql_backup_master)")
    elif str(settings.get("mysql_backup_master_address")) == "":
        found.append(f"no address for master '{master}' (gather its facts in this run, or set "
                     "mysql_backup_master_address)")
    found += port(settings, "mysql_backup_master_port")
    hosts = settings.get("mysql_backup_binlog_user_hosts")
    if not is_collection(hosts) or not any(hosts):
        found.append("mysql_backup_binlog_user_hosts must list the addresses the stream "
                     f"connects from, got {hosts!r}")
    return found


def extra_args(settings: Mapping[str, Any]) -> list[str]:
    value = settings.get("mysql_backup_mariabackup_extra_args")
    if not is_collection(value):
        return [f"mysql_backup_mariabackup_extra_args must be a list of options, got {value!r}"]
    return [f"mysql_backup_mariabackup_extra_args: {arg} is set by the program"
            for arg in value if str(arg).split("=")[0] in PROGRAM_OPTIONS]


def problems(settings: Mapping[str, Any]) -> list[str]:
    bucket = settings.get("mysql_backup_bucket")
    return [
        *cluster(settings),
        *([] if is_bucket_name(bucket)
          else [f"mysql_backup_bucket '{bucket}' is not an S3 bucket name"]),
        *numbers(settings),
        *not_empty(settings, "mysql_backup_schedule", " (OnCalendar)", falsy_is_empty=False),
        *one_of(settings, "mysql_backup_password_source", ("local", "ssm")),
        *one_of(settings, "mysql_backup_source_owner", SOURCE_OWNERS),
        *global_config(settings),
        *streaming(settings),
        *extra_args(settings),
    ]
