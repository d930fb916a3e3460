"""The failover watcher installed on a monitor host: user, files, service, state file."""

from __future__ import annotations

import json
import time

PROGRAM = "/opt/hostkit/failover/hostkit-failover"
CONFIG = "/etc/hostkit-failover/config.json"


def test_the_service_runs_as_its_own_user(host):
    service = host.service("hostkit-failover")
    assert service.is_running and service.is_enabled
    user = host.user("hostkit-failover")
    assert user.shell == "/usr/sbin/nologin"
    pid = host.check_output("systemctl show -p MainPID --value hostkit-failover")
    assert host.file(f"/proc/{pid}").user == "hostkit-failover"


def test_secrets_are_readable_by_root_and_the_watcher_only(host):
    config = host.file(CONFIG)
    assert (config.user, config.group, config.mode) == ("root", "hostkit-failover", 0o640)
    data = json.loads(host.check_output(f"cat {CONFIG}"))
    assert data["aws_environment"] == {"AWS_ACCESS_KEY_ID": "molecule",
                                       "AWS_SECRET_ACCESS_KEY": "molecule"}
    assert data["fence"] == {"method": "none"} and data["clusters"] == ["hello"]
    assert data["interval"] == 0.5 and data["rounds"] == 3 and len(data["mysql_password"]) == 32
    assert host.file(PROGRAM).user == "root" and host.file(PROGRAM).mode == 0o755


def test_the_program_checks_its_configuration(host):
    out = host.run(f"runuser -u hostkit-failover -- {PROGRAM} --config {CONFIG} check-config")
    assert out.rc == 0 and "ok" in out.stdout


def test_unreachable_global_config_is_said_and_the_state_still_written(host):
    deadline = time.monotonic() + 30
    state = {}
    while time.monotonic() < deadline:
        text = host.run("cat /var/lib/hostkit-failover/state.json").stdout
        state = json.loads(text) if text else {}
        if state.get("updated_at"):
            break
        time.sleep(1)
    assert state["program"] == "hostkit-failover"
    log = host.check_output("journalctl -u hostkit-failover --no-pager")
    assert "event=watcher_start" in log
    assert "event=global_config_unreadable" in log
    check = host.run(f"runuser -u hostkit-failover -- {PROGRAM} --config {CONFIG} check")
    assert check.rc == 0, check.stdout   # no clusters known yet: nothing to alarm about
