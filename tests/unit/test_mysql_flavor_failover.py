"""The mysql_flavor functions the failover watcher uses: read-only, semi-sync, liveness."""

from __future__ import annotations

import pytest

from module_utils import mysql_flavor as mf
from tests.unit.fake_cluster import standard_cluster

MARIADB = mf.Flavor(mf.MARIADB, (10, 11, 6))
MYSQL_84 = mf.Flavor(mf.MYSQL, (8, 4, 0))
MYSQL_80 = mf.Flavor(mf.MYSQL, (8, 0, 20))


def test_read_only_statements() -> None:
    assert mf.read_only_statements(MARIADB, True) == [("SET GLOBAL read_only = %s", ("ON",))]
    assert mf.read_only_statements(MARIADB, False) == [("SET GLOBAL read_only = %s", ("OFF",))]
    assert mf.read_only_statements(MYSQL_84, True) == [("SET GLOBAL super_read_only = ON", ())]
    assert mf.read_only_statements(MYSQL_84, False) == [
        ("SET GLOBAL super_read_only = OFF", ()), ("SET GLOBAL read_only = OFF", ())]


def test_semi_sync_statements_per_flavor() -> None:
    assert mf.semi_sync_statements(MARIADB, master=True, slave=False, wait_point="after_sync") == [
        ("SET GLOBAL rpl_semi_sync_master_wait_point = %s", ("AFTER_SYNC",)),
        ("SET GLOBAL rpl_semi_sync_master_enabled = %s", ("ON",)),
        ("SET GLOBAL rpl_semi_sync_slave_enabled = %s", ("OFF",))]
    assert mf.semi_sync_statements(MYSQL_84, slave=True) == [
        ("SET GLOBAL rpl_semi_sync_replica_enabled = %s", ("ON",))]
    assert mf.semi_sync_statements(MYSQL_80, master=False) == [
        ("SET GLOBAL rpl_semi_sync_master_enabled = %s", ("OFF",))]
    assert mf.semi_sync_statements(MARIADB) == []
    with pytest.raises(ValueError, match="wait_point must be"):
        mf.semi_sync_statements(MARIADB, wait_point="SOMETIME")


def test_liveness_and_origin_of_a_mariadb_replica() -> None:
    conn = standard_cluster().connect("db-2")
    alive = mf.liveness(conn, MARIADB)
    assert alive["uptime"] == 1000 and alive["heartbeat_period"] == 0.5
    assert isinstance(alive["heartbeats"], int) and alive["heartbeats"] > 0
    assert mf.gtid_origin(conn, MARIADB) == "2"


@pytest.mark.parametrize(("flavor", "expected"), [
    (MARIADB, ["RELOAD", "PROCESS", "BINLOG MONITOR", "CONNECTION ADMIN", "READ_ONLY ADMIN",
               "REPLICATION SLAVE ADMIN", "REPLICATION MASTER ADMIN", "SLAVE MONITOR"]),
    (MYSQL_84, ["RELOAD", "PROCESS", "REPLICATION CLIENT", "CONNECTION_ADMIN",
                "REPLICATION_SLAVE_ADMIN", "SYSTEM_VARIABLES_ADMIN"]),
    (mf.Flavor(mf.MARIADB, (10, 3, 39)), ["RELOAD", "PROCESS", "SUPER", "REPLICATION CLIENT"]),
])
def test_failover_privileges(flavor: mf.Flavor, expected: list[str]) -> None:
    assert mf.failover_privileges(flavor) == expected
    # no data privileges: the watcher never reads or writes a product's rows
    assert not {"SELECT", "INSERT", "UPDATE", "DELETE", "ALL PRIVILEGES"} & set(expected)
