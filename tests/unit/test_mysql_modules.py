"""library/mysql_replication_facts.py and library/mysql_replica.py against a scripted server:
facts as the role and the failover watcher read them, and idempotent GTID re-pointing."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pymysql
import pytest

from module_utils import mysql_flavor, mysql_login
from tests.unit.fake_mysql import FakeServer

REPO_ROOT = Path(__file__).resolve().parents[2]


def load(name: str) -> Any:
    """A module of library/, importing its core as Ansible ships it (ansible.module_utils.*)."""
    sys.modules.setdefault("ansible.module_utils.mysql_flavor", mysql_flavor)
    sys.modules.setdefault("ansible.module_utils.mysql_login", mysql_login)
    spec = importlib.util.spec_from_file_location(f"hostkit_{name}",
                                                  REPO_ROOT / f"library/{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


facts_mod = load("mysql_replication_facts")
replica_mod = load("mysql_replica")


class Clock:
    """time.monotonic and time.sleep that only move when slept."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def run(params: dict[str, Any], check_mode: bool, connect: Any) -> dict[str, Any]:
    """mysql_replica's run() with a clock that only moves when the module sleeps."""
    clock = Clock()
    return replica_mod.run(params, check_mode, connect, clock.sleep, clock)


def replica_params(**given: Any) -> dict[str, Any]:
    params = {"state": "present", "source_host": "10.0.0.1", "source_port": 3306,
              "source_user": "hostkit_repl", "source_password": "pa'ss", "use_gtid": "slave_pos",
              "connect_retry": 5, "heartbeat_period": None, "gtid_slave_pos": None,
              "check_source": True, "force": False, "wait_timeout": 30,
              "login_unix_socket": "/run/mysqld/mysqld.sock", "login_host": None,
              "login_port": 3306, "login_user": "root", "login_password": None,
              "connect_timeout": 10}
    params.update(given)
    return params


def connector(local: FakeServer, source: FakeServer | None = None, fail: Exception | None = None):
    def connect(params: dict[str, Any], **overrides: Any) -> Any:
        if "host" in overrides:
            if fail is not None:
                raise fail
            assert source is not None, "the module logged in to the source unexpectedly"
            source.logins = getattr(source, "logins", []) + [overrides]
            return source.connect()
        return local.connect()
    return connect


# ---------------------------------------------------------------------------------------------
# mysql_replication_facts


def test_facts_read_the_wanted_variables_and_account_hosts() -> None:
    server = FakeServer(users=[("root", "localhost"), ("root", "127.0.0.1"), ("", "localhost"),
                               ("hostkit_repl", "10.0.0.0/255.255.255.0")])
    facts = facts_mod.run({"variables": ["READ_ONLY", "server_id", "no_such_variable"],
                           "accounts": ["root", "", "hostkit_repl", "hostkit_monitor"]},
                          lambda p: server.connect())
    assert facts["variables"] == {"read_only": "ON", "server_id": "11"}
    assert facts["accounts"] == {"root": ["127.0.0.1", "localhost"], "": ["localhost"],
                                 "hostkit_repl": ["10.0.0.0/255.255.255.0"],
                                 "hostkit_monitor": []}
    # names and account names are parameters, never part of the SQL text
    sql = [q for q, _ in server.executed if "WHERE" in q.upper()]
    assert all("root" not in q and "server_id" not in q for q in sql)


def test_facts_wait_for_a_server_that_is_starting() -> None:
    server, clock, refusals = FakeServer(), Clock(), []

    def connector(params: dict[str, Any]) -> Any:
        if len(refusals) < 3:
            refusals.append(clock.now)
            raise pymysql.err.OperationalError(2002, "Can't connect through socket")
        return server.connect()

    facts = facts_mod.run({"wait": 10}, connector, (pymysql.err.OperationalError,),
                          clock.sleep, clock)
    assert facts["role_hint"] == "standalone_read_only" and refusals == [0.0, 0.5, 1.0]


def test_facts_give_up_after_the_wait() -> None:
    clock = Clock()

    def refuse(params: dict[str, Any]) -> Any:
        raise pymysql.err.OperationalError(2002, "Can't connect through socket")

    with pytest.raises(pymysql.err.OperationalError):
        facts_mod.run({"wait": 2}, refuse, (pymysql.err.OperationalError,), clock.sleep, clock)
    assert clock.now == 2.0
    with pytest.raises(pymysql.err.OperationalError):   # no wait: one try
        facts_mod.run({}, refuse, (pymysql.err.OperationalError,), clock.sleep, Clock())


def test_facts_without_variables_or_accounts_ask_nothing_more() -> None:
    server = FakeServer()
    facts = facts_mod.run({}, lambda p: server.connect())
    assert facts["variables"] == {} and facts["accounts"] == {}
    assert not any("mysql.user" in q for q in server.statements())


def test_facts_of_a_replica() -> None:
    server = FakeServer(binary_logs=["mariadb-bin.000003"],
                        binlog_start={"mariadb-bin.000003": "0-1-2"})
    server.replicate_from("10.0.0.1")
    server.status.update(Rpl_semi_sync_slave_status="ON")
    facts = facts_mod.run({}, lambda p: server.connect())
    assert facts["changed"] is False
    assert facts["role_hint"] == "replica" and facts["is_replica"] is True
    assert (facts["source_host"], facts["source_port"], facts["source_user"]) == \
        ("10.0.0.1", 3306, "repl")
    assert facts["io_running"] and facts["sql_running"] and facts["seconds_behind"] == 0
    assert facts["using_gtid"] == "slave_pos"
    assert facts["gtid"] == {"current": "0-1-5", "slave": "0-1-5", "binlog": "0-1-5",
                             "binlog_state": "0-1-5", "io": "0-1-5"}
    assert facts["oldest_binlog_gtid_pos"] == "0-1-2"
    assert facts["read_only"] is True and facts["log_bin"] is True
    assert facts["semi_sync"]["slave_status"] is True
    assert facts["flavor"] == "mariadb" and facts["server_id"] == 11
    assert "super_read_only" not in facts
    assert server.closed


@pytest.mark.parametrize(("read_only", "hint"), [("OFF", "master"),
                                                 ("ON", "standalone_read_only")])
def test_facts_role_hint_without_source(read_only: str, hint: str) -> None:
    server = FakeServer()
    server.variables["read_only"] = read_only
    facts = facts_mod.run({}, lambda p: server.connect())
    assert facts["role_hint"] == hint
    assert facts["source_host"] is None and facts["io_running"] is False


def test_facts_module_renders_in_ansible_doc() -> None:
    for name in ("mysql_replication_facts", "mysql_replica"):
        proc = subprocess.run([str(Path(sys.executable).parent / "ansible-doc"), "-M",
                               str(REPO_ROOT / "library"), "--json", name],
                              capture_output=True, text=True, cwd=REPO_ROOT)
        assert proc.returncode == 0, proc.stderr
        doc = json.loads(proc.stdout)[name]
        assert doc["doc"]["options"] and doc["examples"] and doc["return"]
        assert "WARNING" not in proc.stderr


def test_argument_specs_match_the_documentation() -> None:
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-doc"), "-M",
                           str(REPO_ROOT / "library"), "--json", "mysql_replica",
                           "mysql_replication_facts"],
                          capture_output=True, text=True, cwd=REPO_ROOT)
    docs = json.loads(proc.stdout)
    for name, mod in (("mysql_replica", replica_mod), ("mysql_replication_facts", facts_mod)):
        options = docs[name]["doc"]["options"]
        assert set(options) == set(mod.ARGUMENT_SPEC), name
        for option, spec in mod.ARGUMENT_SPEC.items():
            assert options[option]["type"] == spec["type"], (name, option)
            assert options[option].get("default") == spec.get("default"), (name, option)


# ---------------------------------------------------------------------------------------------
# mysql_replica


def test_points_a_new_replica_and_is_idempotent() -> None:
    local, source = FakeServer(), FakeServer()
    local.variables.update(gtid_binlog_state="")
    clock = Clock()
    first = replica_mod.run(replica_params(), False, connector(local, source), clock.sleep, clock)
    assert first["changed"] is True and first["action"] == "pointed"
    assert first["queries"][0] == "STOP SLAVE" and first["queries"][-1] == "START SLAVE"
    assert first["before"]["configured"] is False
    assert first["after"]["source_host"] == "10.0.0.1" and first["after"]["io_running"]
    assert "pa'ss" not in json.dumps(first)
    change = next(e for e in local.executed if e[0].startswith("CHANGE MASTER"))
    assert change[1] == ("10.0.0.1", 3306, "hostkit_repl", "pa'ss", 5)
    assert source.logins == [{"host": "10.0.0.1", "port": 3306, "user": "hostkit_repl",
                              "password": "pa'ss"}]
    second = replica_mod.run(replica_params(), False, connector(local), clock.sleep, clock)
    assert second == {"changed": False, "action": "none", "queries": [],
                      "before": second["after"], "after": second["after"]}


def test_check_mode_changes_nothing() -> None:
    local, source = FakeServer(), FakeServer()
    result = run(replica_params(), True, connector(local, source))
    assert result["changed"] is True and result["action"] == "pointed"
    assert local.replica is None
    assert not any(sql.startswith(("CHANGE", "STOP", "START")) for sql in local.statements())


def test_a_replica_of_another_source_is_re_pointed() -> None:
    local, source = FakeServer(), FakeServer()
    local.replicate_from("10.0.0.9")
    result = run(replica_params(), False, connector(local, source))
    assert result["action"] == "pointed"
    assert result["before"]["source_host"] == "10.0.0.9"
    assert local.replica["Master_Host"] == "10.0.0.1"


def test_position_only_mode_is_re_pointed_to_gtid() -> None:
    local, source = FakeServer(), FakeServer()
    local.replicate_from("10.0.0.1", user="hostkit_repl", using_gtid="No")
    result = run(replica_params(), False, connector(local, source))
    assert result["action"] == "pointed"
    assert local.replica["Using_Gtid"] == "Slave_Pos"


def test_stopped_threads_are_only_started() -> None:
    local = FakeServer()
    local.replicate_from("10.0.0.1", user="hostkit_repl", io="No", sql="No")
    result = run(replica_params(), False, connector(local))
    assert result["action"] == "started" and result["queries"] == ["START SLAVE"]
    assert result["after"]["io_running"] and result["after"]["sql_running"]


def test_a_sql_thread_error_is_reported_not_skipped() -> None:
    local = FakeServer()
    local.replicate_from("10.0.0.1", user="hostkit_repl", sql="No")
    local.replica.update(Last_SQL_Errno=1062,
                         Last_SQL_Error="Duplicate entry '1' for key 'PRIMARY'")
    with pytest.raises(replica_mod.ReplicaError, match="error 1062: Duplicate entry"):
        run(replica_params(), False, connector(local))
    assert "START SLAVE" not in local.statements()


def test_semi_sync_enabled_late_restarts_the_io_thread() -> None:
    local = FakeServer()
    local.replicate_from("10.0.0.1", user="hostkit_repl")
    local.status["Rpl_semi_sync_slave_status"] = "OFF"
    result = run(replica_params(), False, connector(local))
    assert result["action"] == "semi_sync_registered"
    assert result["queries"] == ["STOP SLAVE IO_THREAD", "START SLAVE IO_THREAD"]


def test_gtid_slave_pos_of_a_seeded_replica_is_set_before_the_change() -> None:
    local, source = FakeServer(), FakeServer()
    local.variables.update(gtid_slave_pos="", gtid_binlog_state="")
    run(replica_params(gtid_slave_pos="0-1-4"), False, connector(local, source))
    statements = local.statements()
    assert statements.index("SET GLOBAL gtid_slave_pos = %s") < \
        next(i for i, s in enumerate(statements) if s.startswith("CHANGE MASTER"))
    assert local.variables["gtid_slave_pos"] == "0-1-4"


def test_errant_transactions_stop_the_re_pointing() -> None:
    local, source = FakeServer(), FakeServer()
    local.variables.update(gtid_binlog_state="0-1-5,0-7-1")
    source.variables.update(gtid_binlog_state="0-1-9")
    clock = Clock()
    with pytest.raises(replica_mod.ReplicaError, match=r"lacks \(0-7-1\).*not re-pointing"):
        replica_mod.run(replica_params(wait_timeout=3), False, connector(local, source),
                        clock.sleep, clock)
    assert clock.now >= 3  # it waited for a source that might only be behind
    assert local.replica is None


def test_wrong_password_names_the_source() -> None:
    local = FakeServer()
    denied = pymysql.err.OperationalError(1045, "Access denied for user 'hostkit_repl'")
    with pytest.raises(replica_mod.ReplicaError,
                       match="cannot log in to the source 10.0.0.1:3306 as hostkit_repl"):
        run(replica_params(), False, connector(local, fail=denied))


def test_io_thread_that_never_connects_fails_with_its_error() -> None:
    error = "error connecting to master 'hostkit_repl@10.0.0.1:3306'"
    local = FakeServer(start_io="Connecting", start_io_error=error)
    source = FakeServer()
    clock = Clock()
    with pytest.raises(replica_mod.ReplicaError, match="IO thread Connecting.*error connecting"):
        replica_mod.run(replica_params(wait_timeout=5), False, connector(local, source),
                        clock.sleep, clock)


def test_absent_resets_and_is_idempotent() -> None:
    local = FakeServer()
    local.replicate_from("10.0.0.1")
    result = run(replica_params(state="absent"), False, connector(local))
    assert result["changed"] and result["queries"] == ["STOP SLAVE", "RESET SLAVE ALL"]
    assert local.replica is None
    again = run(replica_params(state="absent"), False, connector(local))
    assert again["changed"] is False


def test_required_source_fields() -> None:
    with pytest.raises(replica_mod.ReplicaError, match="source_password is required"):
        run(replica_params(source_password=None), False, connector(FakeServer()))


def test_login_uses_the_socket_unless_a_host_is_given() -> None:
    calls: list[dict[str, Any]] = []

    class Driver:
        @staticmethod
        def connect(**kwargs: Any) -> None:
            calls.append(kwargs)

    mysql_login.connect(Driver, {"login_unix_socket": "/run/x.sock"})
    mysql_login.connect(Driver, {"login_unix_socket": "/run/x.sock"}, host="10.0.0.1", port=3306,
                        user="repl", password="pw")
    assert calls[0]["unix_socket"] == "/run/x.sock" and "host" not in calls[0]
    assert calls[0]["user"] == "root" and "password" not in calls[0]
    assert "unix_socket" not in calls[1]
    assert (calls[1]["host"], calls[1]["user"], calls[1]["password"]) == ("10.0.0.1", "repl", "pw")


def test_main_fails_naming_the_socket_it_cannot_reach(tmp_path: Path, capsys) -> None:
    from ansible.module_utils.testing import patch_module_args

    socket = str(tmp_path / "missing.sock")
    with patch_module_args({"login_unix_socket": socket, "connect_timeout": 1}), \
            pytest.raises(SystemExit):
        facts_mod.main()
    out = json.loads(capsys.readouterr().out)
    assert out["failed"] is True
    assert f"cannot read the server at {socket}" in out["msg"]
    with patch_module_args({"login_unix_socket": socket, "source_host": "10.0.0.1",
                            "source_user": "r", "source_password": "secret-pw"}), \
            pytest.raises(SystemExit):
        replica_mod.main()
    out = json.loads(capsys.readouterr().out)
    assert out["failed"] is True and "mysql_replica:" in out["msg"]
    assert "secret-pw" not in json.dumps(out)
