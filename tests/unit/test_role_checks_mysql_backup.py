"""plugin_utils/role_checks/mysql_backup.py through the filter hostkit_settings_problems."""

from __future__ import annotations

from typing import Any

import pytest

from filter_plugins.role_checks import hostkit_settings_problems
from tests.unit.role_settings import SANDBOX_BACKUP_HOST, sandbox_settings

PRODUCTS = [{"name": "hello", "database": {"name": "hello", "user": "hello"}},
            {"name": "notes", "database": {"name": "notes", "user": "notes",
                                           "cluster": "hello"}},
            {"name": "static"}]
GOOD: dict[str, Any] = {
    "mysql_backup_cluster": "hello", "mysql_backup_products": PRODUCTS,
    "mysql_backup_bucket": "hostkit-sandbox-backups", "mysql_backup_keep_recent": 96,
    "mysql_backup_keep_daily": 0, "mysql_backup_part_size_mb": "5",
    "mysql_backup_ship_interval": 10, "mysql_backup_compact_segments": 60,
    "mysql_backup_stream_server_id": 1999999999, "mysql_backup_global_config_interval": 5,
    "mysql_backup_compression_level": 19, "mysql_backup_schedule": "*:0/15",
    "mysql_backup_password_source": "local", "mysql_backup_source_owner": "global_config",
    "mysql_backup_global_config_bucket": "hostkit-config",
    "mysql_backup_global_config_key": "global-config.json",
    "mysql_backup_binlog_streaming": True, "mysql_backup_master": "db-1",
    "mysql_backup_master_address": "10.0.0.1", "mysql_backup_master_port": "3306",
    "mysql_backup_binlog_user_hosts": ["10.0.0.4"],
    "mysql_backup_mariabackup_extra_args": ["--parallel=2"]}


def check(**changes: Any) -> list[str]:
    return hostkit_settings_problems({**GOOD, **changes}, "mysql_backup")


def test_good_settings_have_no_problem() -> None:
    assert check() == []


def test_without_streaming_the_master_and_the_document_are_not_needed() -> None:
    assert check(mysql_backup_binlog_streaming=False, mysql_backup_master="",
                 mysql_backup_master_port="x", mysql_backup_binlog_user_hosts=[""],
                 mysql_backup_global_config_bucket="") == []
    assert check(mysql_backup_source_owner="inventory",
                 mysql_backup_global_config_bucket="", mysql_backup_global_config_key="") == []


@pytest.mark.parametrize(("changes", "message"), [
    ({"mysql_backup_cluster": ""},
     "mysql_backup_cluster '' is not a cluster name (^[a-z][a-z0-9_]{0,30}$; this host"),
    ({"mysql_backup_cluster": "Hello"}, "mysql_backup_cluster 'Hello' is not a cluster name"),
    ({"mysql_backup_cluster": "notes"},
     "mysql_backup_cluster 'notes': no product of mysql_backup_products names this cluster "
     "(field database.cluster, default the product's name; clusters: hello)"),
    ({"mysql_backup_cluster": "notes", "mysql_backup_products": []}, "clusters: none)"),
    ({"mysql_backup_bucket": "Backups"}, "mysql_backup_bucket 'Backups' is not an S3 bucket"),
    ({"mysql_backup_keep_recent": 0},
     "mysql_backup_keep_recent must be a whole number >= 1, got 0"),
    ({"mysql_backup_stream_server_id": "1.5"}, "mysql_backup_stream_server_id must be a whole"),
    ({"mysql_backup_global_config_interval": True}, "mysql_backup_global_config_interval must"),
    ({"mysql_backup_keep_daily": -1}, "mysql_backup_keep_daily must be a whole number >= 0"),
    ({"mysql_backup_part_size_mb": 4},
     "mysql_backup_part_size_mb must be at least 5 (S3 multipart minimum), got 4"),
    ({"mysql_backup_compression_level": 20},
     "mysql_backup_compression_level must be a whole number from 1 to 19, got 20"),
    ({"mysql_backup_schedule": " "}, "mysql_backup_schedule is empty (OnCalendar)"),
    ({"mysql_backup_password_source": "vault"},
     "mysql_backup_password_source must be one of local, ssm, got 'vault'"),
    ({"mysql_backup_source_owner": "me"},
     "mysql_backup_source_owner must be one of global_config, inventory, failover, got 'me'"),
    ({"mysql_backup_global_config_bucket": ""},
     "mysql_backup_global_config_bucket '' is not an S3 bucket name (mysql_backup_source_owner"),
    ({"mysql_backup_global_config_key": ""}, "mysql_backup_global_config_key is empty"),
    ({"mysql_backup_master": ""}, "cluster 'hello' has no master in the database topology"),
    ({"mysql_backup_master_address": ""}, "no address for master 'db-1' (gather its facts"),
    ({"mysql_backup_master_port": 65536},
     "mysql_backup_master_port must be a whole number from 1 to 65535, got 65536"),
    ({"mysql_backup_binlog_user_hosts": "10.0.0.4"},
     "mysql_backup_binlog_user_hosts must list the addresses the stream connects from"),
    ({"mysql_backup_binlog_user_hosts": ["", None]}, "mysql_backup_binlog_user_hosts must"),
    ({"mysql_backup_mariabackup_extra_args": "--parallel=2"},
     "mysql_backup_mariabackup_extra_args must be a list of options"),
    ({"mysql_backup_mariabackup_extra_args": ["--parallel=2", "--target-dir=/tmp"]},
     "mysql_backup_mariabackup_extra_args: --target-dir=/tmp is set by the program"),
])
def test_each_problem_is_named(changes: dict[str, Any], message: str) -> None:
    found = check(**changes)
    assert len(found) == 1 and message in found[0], found


def test_a_part_size_below_one_is_named_twice_as_before() -> None:
    found = check(mysql_backup_part_size_mb=0)
    assert [p.split(" must")[0] for p in found] == ["mysql_backup_part_size_mb"] * 2


def test_every_problem_is_reported_at_once() -> None:
    assert len(check(mysql_backup_bucket="", mysql_backup_keep_daily="x",
                     mysql_backup_schedule="", mysql_backup_master="")) == 4




def test_the_sandbox_configuration_has_no_problem() -> None:
    settings = sandbox_settings("mysql_backup", SANDBOX_BACKUP_HOST)
    # The task passes mysql_backup_binlog_streaming through Ansible's `bool`.
    settings["mysql_backup_binlog_streaming"] = bool(settings["mysql_backup_binlog_streaming"])
    assert settings["mysql_backup_source_owner"] == "global_config"
    assert settings["mysql_backup_global_config_bucket"] == "hostkit-sandbox-config"
    assert hostkit_settings_problems(settings, "mysql_backup") == []
