"""Verify roles/mysql_backup on one server that is its own master: units, files, accounts,
a snapshot through the timer's service, and binary logs shipped."""

from __future__ import annotations

import json
import time

import pytest

UNITS = ["hostkit-mysql-binlog-stream.service", "hostkit-mysql-binlog-ship.service"]


def status(host) -> dict:
    return json.loads(host.check_output("hostkit-mysql-backup status"))


def test_timer_on_its_schedule(host) -> None:
    timer = host.service("hostkit-mysql-backup.timer")
    assert timer.is_enabled and timer.is_running
    unit = host.file("/etc/systemd/system/hostkit-mysql-backup.timer").content_string
    assert "OnCalendar=*:0/30" in unit and "Persistent=true" in unit
    assert "snapshot of database cluster hello" in unit


@pytest.mark.parametrize("unit", UNITS)
def test_binlog_services_run(host, unit: str) -> None:
    service = host.service(unit)
    assert service.is_enabled and service.is_running
    assert "Restart=always" in host.file(f"/etc/systemd/system/{unit}").content_string


@pytest.mark.parametrize(("path", "user"), [
    ("/etc/hostkit/mysql-backup.cnf", "hostkit_backup"),
    ("/etc/hostkit/mysql-binlog.cnf", "hostkit_binlog"),
    ("/etc/hostkit/mysql-backup.env", None),
])
def test_secrets_are_root_only(host, path: str, user: str | None) -> None:
    secret = host.file(path)
    assert secret.user == "root" and secret.mode == 0o600
    if user:
        assert f"user={user}" in secret.content_string


def test_settings_reach_the_program(host) -> None:
    config = json.loads(host.file("/etc/hostkit/mysql-backup.json").content_string)
    assert config["bucket"] == "hostkit-molecule-backups" and config["keep_recent"] == 5
    assert config["ship_interval"] == 5.0 and config["cluster"] == "hello"
    assert "product" not in config
    source = json.loads(host.file("/etc/hostkit/mysql-binlog-source.json").content_string)
    assert source["name"] == "mysql-backup" and source["port"] == 3306


def test_accounts_have_only_what_they_need(host) -> None:
    grants = host.check_output("mariadb -N -B -e \"SHOW GRANTS FOR 'hostkit_backup'@'localhost'\"")
    assert "GRANT RELOAD, PROCESS, LOCK TABLES, BINLOG MONITOR ON *.*" in grants
    hosts = host.check_output("mariadb -N -B -e \"SELECT host FROM mysql.user "
                              "WHERE user = 'hostkit_binlog'\"").split()
    assert len(hosts) == 1
    account = f"'hostkit_binlog'@'{hosts[0]}'"
    grants = host.check_output(f"mariadb -N -B -e \"SHOW GRANTS FOR {account}\"")
    assert "GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.*" in grants


def test_a_snapshot_through_the_timer_service(host) -> None:
    host.run_expect([0], "systemctl start hostkit-mysql-backup.service")
    backup = status(host)["backup"]["backup"]
    assert backup["status"] == "ok" and backup["last_error"] is None
    listed = json.loads(host.check_output("hostkit-mysql-backup list"))
    assert backup["last_success"]["data_key"] in [m["data_key"] for m in listed]


def test_binary_logs_are_shipped(host) -> None:
    host.run_expect([0], "mariadb -e 'CREATE TABLE IF NOT EXISTS hello.molecule_probe (id INT)"
                         "; INSERT INTO hello.molecule_probe VALUES (1)'")
    deadline = time.monotonic() + 60
    shipped: dict = {}
    while time.monotonic() < deadline:
        shipped = status(host)["binlogs"].get("shipped", {})
        if shipped and not status(host)["binlogs"].get("last_error"):
            break
        time.sleep(2)
    assert shipped, status(host)["binlogs"]
    series = status(host)["stream"]["series"]
    assert series in shipped and series.startswith("mysql-backup-sid")
