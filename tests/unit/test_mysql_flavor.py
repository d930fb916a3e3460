"""module_utils/mysql_flavor.py: the MariaDB/MySQL differences, normalised."""

from __future__ import annotations

import pytest

from module_utils import mysql_flavor as mf
from tests.unit.fake_mysql import FakeServer

MARIADB = mf.Flavor(mf.MARIADB, (10, 11, 6))
MARIADB_105 = mf.Flavor(mf.MARIADB, (10, 5, 22))
MYSQL_84 = mf.Flavor(mf.MYSQL, (8, 4, 0))
MYSQL_57 = mf.Flavor(mf.MYSQL, (5, 7, 44))


@pytest.mark.parametrize(("version", "comment", "expected"), [
    ("10.11.6-MariaDB-0+deb12u1-log", "Debian 12", mf.Flavor(mf.MARIADB, (10, 11, 6))),
    ("5.5.5-10.5.22-MariaDB", "MariaDB Server", mf.Flavor(mf.MARIADB, (10, 5, 22))),
    ("8.0.36", "MySQL Community Server - GPL", mf.Flavor(mf.MYSQL, (8, 0, 36))),
    ("10.6", "", mf.Flavor(mf.MYSQL, (10, 6, 0))),
])
def test_detect_flavor(version: str, comment: str, expected: mf.Flavor) -> None:
    assert mf.detect_flavor(version, comment) == expected


def test_bad_version_is_named() -> None:
    with pytest.raises(ValueError, match="not a server version: 'abc'"):
        mf.parse_version("abc")


def test_server_flavor_asks_the_server() -> None:
    assert mf.server_flavor(FakeServer().connect()) == MARIADB


@pytest.mark.parametrize(("flavor", "status", "start", "stop_io", "reset"), [
    (MARIADB, "SHOW SLAVE STATUS", "START SLAVE", "STOP SLAVE IO_THREAD", "RESET SLAVE ALL"),
    (MYSQL_57, "SHOW SLAVE STATUS", "START SLAVE", "STOP SLAVE IO_THREAD", "RESET SLAVE ALL"),
    (MYSQL_84, "SHOW REPLICA STATUS", "START REPLICA", "STOP REPLICA IO_THREAD",
     "RESET REPLICA ALL"),
])
def test_statements_per_flavor(flavor: mf.Flavor, status: str, start: str, stop_io: str,
                               reset: str) -> None:
    assert mf.replica_status_statement(flavor) == status
    assert mf.start_replica_statement(flavor) == start
    assert mf.stop_replica_statement(flavor, "io") == stop_io
    assert mf.reset_replica_statement(flavor) == reset
    with pytest.raises(ValueError, match="thread"):
        mf.start_replica_statement(flavor, "both")


def test_change_source_mariadb_uses_gtid_and_parameters() -> None:
    statements = mf.change_source_statements(MARIADB, "10.0.0.5", 3306, "repl", "s3cr'et",
                                             connect_retry=5, gtid_slave_pos="0-1-42")
    assert statements == [
        ("STOP SLAVE", ()),
        ("SET GLOBAL gtid_slave_pos = %s", ("0-1-42",)),
        ("CHANGE MASTER TO MASTER_HOST=%s, MASTER_PORT=%s, MASTER_USER=%s, MASTER_PASSWORD=%s, "
         "MASTER_CONNECT_RETRY=%s, MASTER_USE_GTID=slave_pos",
         ("10.0.0.5", 3306, "repl", "s3cr'et", 5)),
        ("START SLAVE", ()),
    ]
    # the password is never part of the SQL text
    assert all("s3cr" not in sql for sql, _ in statements)


def test_change_source_mysql_uses_auto_position() -> None:
    new = mf.change_source_statements(MYSQL_84, "db1", 3306, "repl", "pw", start=False)
    assert new[-1] == ("CHANGE REPLICATION SOURCE TO SOURCE_HOST=%s, SOURCE_PORT=%s, "
                       "SOURCE_USER=%s, SOURCE_PASSWORD=%s, SOURCE_AUTO_POSITION=1",
                       ("db1", 3306, "repl", "pw"))
    assert new[0] == ("STOP REPLICA", ())
    old = mf.change_source_statements(MYSQL_57, "db1", 3306, "repl", "pw", heartbeat_period=2)
    assert old[1][0].startswith("CHANGE MASTER TO MASTER_HOST=%s")
    assert old[1][0].endswith("MASTER_HEARTBEAT_PERIOD=%s, MASTER_AUTO_POSITION=1")
    assert old[-1] == ("START SLAVE", ())


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"use_gtid": "no"}, "use_gtid"),
    ({"gtid_slave_pos": "0-1-5; DROP TABLE x"}, "not a MariaDB GTID"),
])
def test_change_source_refuses_bad_values(kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        mf.change_source_statements(MARIADB, "db1", 3306, "repl", "pw", **kwargs)


def test_change_source_refuses_bad_host_port_and_mysql_gtid_pos() -> None:
    with pytest.raises(ValueError, match="host"):
        mf.change_source_statements(MARIADB, "", 3306, "repl", "pw")
    with pytest.raises(ValueError, match="port"):
        mf.change_source_statements(MARIADB, "db1", 70000, "repl", "pw")
    with pytest.raises(ValueError, match="MariaDB only"):
        mf.change_source_statements(MYSQL_84, "db1", 3306, "repl", "pw", gtid_slave_pos="0-1-1")


def test_replication_status_of_a_mariadb_replica() -> None:
    server = FakeServer()
    server.replicate_from("10.0.0.5", io="Connecting")
    server.replica["Last_IO_Error"] = "error connecting to master"
    status = mf.replication_status(server.connect())
    assert status["configured"] is True
    assert status["source_host"] == "10.0.0.5"
    assert status["source_port"] == 3306
    assert status["io_running"] is False
    assert status["io_thread"] == "Connecting"
    assert status["sql_running"] is True
    assert status["seconds_behind"] is None
    assert status["using_gtid"] == "slave_pos"
    assert status["gtid_io_pos"] == "0-1-5"
    assert status["last_io_error"] == "error connecting to master"
    assert server.statements()[-1] == "SHOW SLAVE STATUS"


def test_replication_status_of_a_server_without_source() -> None:
    status = mf.replication_status(FakeServer().connect())
    assert status == mf.not_a_replica()
    assert status["configured"] is False


def test_mysql_8_columns_are_normalised() -> None:
    row = {"Source_Host": "db1", "Source_Port": "3306", "Source_User": "repl",
           "Replica_IO_Running": "Yes", "Replica_SQL_Running": "Yes",
           "Seconds_Behind_Source": "3", "Auto_Position": "1",
           "Retrieved_Gtid_Set": "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5,\n"
                                 "3e11fa47-71ca-11e1-9e33-c80aa9429563:1"}
    status = mf.normalise_replica_status(row, MYSQL_84)
    assert (status["source_host"], status["source_port"], status["seconds_behind"]) == \
        ("db1", 3306, 3)
    assert status["io_running"] and status["sql_running"]
    assert status["using_gtid"] == "auto_position"
    assert "\n" not in status["gtid_io_pos"]
    old = {"Master_Host": "db1", "Slave_IO_Running": "No", "Slave_SQL_Running": "Yes",
           "Seconds_Behind_Master": None, "Auto_Position": 0}
    assert mf.normalise_replica_status(old, MYSQL_57)["using_gtid"] == "no"


def test_gtid_position_mariadb() -> None:
    server = FakeServer()
    server.variables.update(gtid_binlog_state="0-1-5,0-2-3")
    assert mf.gtid_position(server.connect(), MARIADB) == {
        "current": "0-1-5", "slave": "0-1-5", "binlog": "0-1-5", "binlog_state": "0-1-5,0-2-3"}


def test_parse_mariadb_gtids() -> None:
    assert mf.parse_mariadb_gtids("0-1-5, 1-2-7,0-1-3") == {(0, 1): 5, (1, 2): 7}
    assert mf.parse_mariadb_gtids("") == {}
    with pytest.raises(ValueError, match="domain-server-seq"):
        mf.parse_mariadb_gtids("0-1")


@pytest.mark.parametrize(("replica", "source", "errant"), [
    ("", "0-1-5", False),                 # empty replica: behind, nothing errant
    ("0-1-5", "0-1-5", False),            # equal
    ("0-1-4", "0-1-5", False),            # behind
    ("0-1-6", "0-1-5", True),             # ahead of its source in the same server's stream
    ("0-1-5,0-2-1", "0-1-9", True),       # a local write on the replica (server 2)
    ("0-1-5,0-2-1", "0-1-9,0-2-1", False),  # server 2 was master once, the source has it
    ("0-1-5,1-1-2", "0-1-5", True),       # a domain the source never saw
])
def test_is_errant_mariadb(replica: str, source: str, errant: bool) -> None:
    assert mf.is_errant(replica, source, MARIADB) is errant
    assert mf.gtid_subset(replica, source, MARIADB) is not errant
    assert (mf.errant_gtids(replica, source, MARIADB) != "") is errant


def test_errant_gtids_names_them() -> None:
    assert mf.errant_gtids("0-1-5,0-2-1", "0-1-9", MARIADB) == "0-2-1"


UUID_A = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
UUID_B = "4e11fa47-71ca-11e1-9e33-c80aa9429562"


@pytest.mark.parametrize(("replica", "source", "errant"), [
    (f"{UUID_A}:1-5", f"{UUID_A}:1-10", False),
    (f"{UUID_A}:1-5:7", f"{UUID_A}:1-6:8-10", True),
    (f"{UUID_A}:1-5,{UUID_B}:1", f"{UUID_A}:1-5", True),
    ("", f"{UUID_A}:1-5", False),
    (f"{UUID_A}:1-3:4-5", f"{UUID_A}:1-5", False),
])
def test_is_errant_mysql(replica: str, source: str, errant: bool) -> None:
    assert mf.is_errant(replica, source, MYSQL_84) is errant


def test_parse_mysql_gtid_set_merges_and_rejects() -> None:
    assert mf.parse_mysql_gtid_set(f"{UUID_A}:1-3:4-6:9,{UUID_A.upper()}:10") == \
        {UUID_A: [(1, 6), (9, 10)]}
    with pytest.raises(ValueError, match="uuid"):
        mf.parse_mysql_gtid_set("nope:1-2")
    with pytest.raises(ValueError, match="ends before"):
        mf.parse_mysql_gtid_set(f"{UUID_A}:5-1")
    assert mf.errant_gtids(f"{UUID_A}:1-5:7,{UUID_B}:1-2", f"{UUID_A}:1-5", MYSQL_84) == \
        f"{UUID_A}:7,{UUID_B}:1-2"


def test_oldest_binlog_gtid_pos() -> None:
    server = FakeServer(binary_logs=["mariadb-bin.000007", "mariadb-bin.000008"],
                        binlog_start={"mariadb-bin.000007": "0-1-40"})
    assert mf.oldest_binlog_gtid_pos(server.connect(), MARIADB) == "0-1-40"
    assert ("SELECT BINLOG_GTID_POS(%s, 4)", ("mariadb-bin.000007",)) in server.executed
    full = FakeServer()
    assert mf.oldest_binlog_gtid_pos(full.connect(), MARIADB) == ""
    off = FakeServer()
    off.variables["log_bin"] = "OFF"
    assert mf.oldest_binlog_gtid_pos(off.connect(), MARIADB) is None


def test_semi_sync_names_per_flavor() -> None:
    assert mf.semi_sync_names(MARIADB)["master_enabled"] == "rpl_semi_sync_master_enabled"
    assert mf.semi_sync_names(MARIADB)["master_clients"] == "Rpl_semi_sync_master_clients"
    assert mf.semi_sync_names(MYSQL_84)["slave_enabled"] == "rpl_semi_sync_replica_enabled"
    assert mf.semi_sync_names(MYSQL_84)["master_yes_tx"] == "Rpl_semi_sync_source_yes_tx"
    assert mf.semi_sync_names(MYSQL_57)["wait_point"] == "rpl_semi_sync_master_wait_point"


def test_semi_sync_status_normalised() -> None:
    server = FakeServer()
    server.variables.update(rpl_semi_sync_master_enabled="ON")
    server.status.update(Rpl_semi_sync_master_status="ON", Rpl_semi_sync_master_clients="1",
                         Rpl_semi_sync_master_yes_tx="12")
    assert mf.semi_sync_status(server.connect(), MARIADB) == {
        "master_enabled": True, "slave_enabled": True, "wait_point": "AFTER_SYNC",
        "timeout": 10000, "master_status": True, "master_clients": 1, "master_yes_tx": 12,
        "master_no_tx": 0, "slave_status": True}


def test_semi_sync_status_without_plugin_reads_off() -> None:
    server = FakeServer(version="8.0.36", comment="MySQL Community Server")
    server.variables = {k: v for k, v in server.variables.items() if "semi" not in k}
    server.status = {}
    status = mf.semi_sync_status(server.connect())
    assert status["master_enabled"] is False and status["master_clients"] == 0
    assert status["wait_point"] is None and status["timeout"] is None


def test_read_only_state() -> None:
    assert mf.read_only_state(FakeServer().connect()) == {"read_only": True}
    mysql = FakeServer(version="8.0.36", comment="MySQL")
    mysql.variables.update(read_only="1", super_read_only="0")
    assert mf.read_only_state(mysql.connect()) == {"read_only": True, "super_read_only": False}


def test_privileges_per_flavor_and_version() -> None:
    assert mf.monitor_privileges(MARIADB) == ["PROCESS", "BINLOG MONITOR", "SLAVE MONITOR"]
    assert mf.monitor_privileges(mf.Flavor(mf.MARIADB, (10, 4, 30))) == \
        ["PROCESS", "REPLICATION CLIENT"]
    assert mf.monitor_privileges(MYSQL_84) == ["PROCESS", "REPLICATION CLIENT"]
    assert "BINLOG MONITOR" in mf.replication_privileges(MARIADB_105)
    assert "REPLICATION CLIENT" in mf.replication_privileges(MYSQL_84)
    assert "REPLICATION SLAVE" in mf.replication_privileges(MARIADB)


@pytest.mark.parametrize(("pattern", "flavor", "expected"), [
    ("10.0.1.7", MARIADB, "10.0.1.7"),
    ("localhost", MARIADB, "localhost"),
    ("172.30.16.0/24", MARIADB, "172.30.16.0/255.255.255.0"),
    ("172.30.16.0/255.255.240.0", MARIADB, "172.30.16.0/255.255.240.0"),
    ("172.30.16.0/24", MYSQL_84, "172.30.16.0/24"),
    ("172.30.16.0/24", MYSQL_57, "172.30.16.0/255.255.255.0"),
    ("fd00::1", MARIADB, "fd00::1"),
])
def test_host_pattern(pattern: str, flavor: mf.Flavor, expected: str) -> None:
    assert mf.host_pattern(pattern, flavor) == expected


@pytest.mark.parametrize(("pattern", "message"), [
    ("%", "neither an address"),
    ("web-1", "neither an address"),
    ("10.0.0.1/24", "not a valid network"),
    ("10.0.0.0/255.0.255.0", "not a valid network"),
    ("fd00::/64", "no IPv6 network"),
])
def test_host_pattern_refuses(pattern: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        mf.host_pattern(pattern, MARIADB)


def test_execute_passes_parameters() -> None:
    server = FakeServer()
    mf.execute(server.connect(), [("SET GLOBAL gtid_slave_pos = %s", ("0-1-9",))])
    assert server.executed == [("SET GLOBAL gtid_slave_pos = %s", ("0-1-9",))]
    assert server.variables["gtid_slave_pos"] == "0-1-9"


@pytest.mark.parametrize(("wanted", "current", "matches"), [
    ("ON", "ON", True), ("on", "ON", True), (1, "ON", True), ("OFF", "0", True),
    ("ROW", "ROW", True), ("AFTER_SYNC", "after_sync", True), (500, "500", True),
    ("1", "1", True), (7, "7.000000", True), ("7", "7.5", False), ("ON", "OFF", False),
    (500, "151", False), ("64M", "67108864", False),
    ("ON", None, False),
])
def test_setting_matches(wanted: object, current: str | None, matches: bool) -> None:
    assert mf.setting_matches(wanted, current) is matches


def test_settings_to_change_keeps_only_what_differs() -> None:
    wanted = {"max_connections": 500, "sync_binlog": 1, "binlog_format": "ROW",
              "Gtid_Strict_Mode": "ON", "unknown_var": 3}
    current = {"max_connections": "151", "sync_binlog": "1", "binlog_format": "ROW",
               "gtid_strict_mode": "ON"}
    assert mf.settings_to_change(wanted, current) == {"max_connections": 500, "unknown_var": 3}


def test_binlogs_beyond_a_position_reach_back_to_the_first_file_it_covers() -> None:
    server = FakeServer(binary_logs=["mariadb-bin.000007", "mariadb-bin.000008",
                                     "mariadb-bin.000009"],
                        binlog_start={"mariadb-bin.000007": "0-1-40",
                                      "mariadb-bin.000008": "0-1-90",
                                      "mariadb-bin.000009": "0-1-120,0-2-3"})
    server.variables["log_bin_basename"] = "/var/lib/mysql/mariadb-bin"
    connect = server.connect
    # the master has 0-1-100: the old master's own 0-2-x and 0-1-101.. are in 000008 and later
    assert mf.binlogs_beyond(connect(), "0-1-100", MARIADB) == [
        "/var/lib/mysql/mariadb-bin.000008", "/var/lib/mysql/mariadb-bin.000009"]
    # the master has everything up to the newest file's start: only that file
    assert mf.binlogs_beyond(connect(), "0-1-120,0-2-3", MARIADB) == [
        "/var/lib/mysql/mariadb-bin.000009"]
    # a master behind the oldest file: every file
    assert len(mf.binlogs_beyond(connect(), "0-1-10", MARIADB)) == 3


def test_binlogs_beyond_with_the_binary_log_off_is_empty() -> None:
    server = FakeServer()
    server.variables["log_bin"] = "OFF"
    assert mf.binlogs_beyond(server.connect(), "0-1-5", MARIADB) == []
