#!/usr/bin/python
"""Ansible module: make a MariaDB (or MySQL) server replicate from a source with GTID, or stop."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from typing import Any

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

try:
    from ansible.module_utils.mysql_flavor import (
        change_source_statements,
        errant_gtids,
        execute,
        gtid_position,
        replication_status,
        reset_replica_statement,
        semi_sync_status,
        server_flavor,
        start_replica_statement,
        stop_replica_statement,
    )
    from ansible.module_utils.mysql_login import LOGIN_ARGUMENT_SPEC, connect
except ImportError as exc:  # reported by fail_json, not as a traceback
    IMPORT_ERROR: ImportError | None = exc
    LOGIN_ARGUMENT_SPEC = {}
else:
    IMPORT_ERROR = None

try:
    import pymysql
except ImportError:
    pymysql = None
    PYMYSQL_TRACEBACK: str | None = traceback.format_exc()
else:
    PYMYSQL_TRACEBACK = None

DOCUMENTATION = r"""
module: mysql_replica
author: hostkit maintainers
short_description: Make a MariaDB or MySQL server replicate from a source with GTID
description:
  - With O(state=present) the server replicates from O(source_host) with GTID
    auto-positioning (MariaDB C(MASTER_USE_GTID), MySQL C(SOURCE_AUTO_POSITION)).
  - Idempotent - a server that already replicates from that host, port and account with GTID
    and whose threads run is left alone (C(changed=false)); one that is pointed right but
    stopped only gets its threads started; anything else is re-pointed (stop, change source,
    start).
  - Before it re-points, the module logs in to the source with the replication account (so a
    wrong password or a closed firewall fails here, naming the source) and compares GTIDs - a
    server with transactions the source lacks (errant transactions, or a source that is
    behind) is not re-pointed; the module waits up to O(wait_timeout) seconds for a source
    that is only behind.
  - After starting, it waits up to O(wait_timeout) seconds for both replica threads to run,
    and fails with the thread's last error when they do not.
  - A replica whose semi-synchronous side is enabled but not active (enabled after its IO
    thread connected) gets its IO thread restarted, so that it acknowledges.
  - With O(state=absent) the server forgets its source (C(STOP SLAVE), C(RESET SLAVE ALL)),
    as a promotion does.
  - The password is sent as a statement parameter, never put into the SQL text, and never
    returned.
  - M(community.mysql.mysql_replication) cannot express this - its C(changeprimary) runs
    C(CHANGE MASTER) on every call (always C(changed)), needs the threads stopped by separate
    tasks, and puts the password into the SQL text.
version_added: "1.0.0"
extends_documentation_fragment:
  - hostkit_mysql_login
options:
  state:
    description: V(present) replicate from the source; V(absent) stop and forget the source.
    type: str
    choices: [present, absent]
    default: present
  source_host:
    description: Address of the source (required with O(state=present)).
    type: str
  source_port:
    description: Port of the source.
    type: int
    default: 3306
  source_user:
    description: Replication account on the source (required with O(state=present)).
    type: str
  source_password:
    description: Password of O(source_user) (required with O(state=present)).
    type: str
  use_gtid:
    description: MariaDB C(MASTER_USE_GTID) mode (MySQL always uses auto-positioning).
    type: str
    choices: [slave_pos, current_pos]
    default: slave_pos
  connect_retry:
    description: Seconds between the IO thread's reconnection attempts.
    type: int
    default: 5
  heartbeat_period:
    description: Seconds between heartbeats from the source (server default when not given).
    type: float
  gtid_slave_pos:
    description:
      - MariaDB - the GTID position to start from (C(SET GLOBAL gtid_slave_pos)), for a server
        just seeded from a copy. Applied only when the module points the server at the source.
    type: str
  check_source:
    description: Log in to the source and compare GTIDs before re-pointing.
    type: bool
    default: true
  force:
    description:
      - Re-point even when the server already replicates from the source (for example after
        the replication password changed).
    type: bool
    default: false
  wait_timeout:
    description: Seconds to wait for the threads to run, and for a source that is behind.
    type: int
    default: 30
attributes:
  check_mode:
    description: Reports what it would do without doing it (the source is still checked).
    support: full
"""

EXAMPLES = r"""
- name: Replicate from the master with GTID
  mysql_replica:
    source_host: 172.30.0.3
    source_user: hostkit_repl
    source_password: "{{ replication_password }}"
  become: true
  no_log: true

- name: Start a freshly seeded replica from the copy's position
  mysql_replica:
    source_host: 172.30.0.4
    source_user: hostkit_repl
    source_password: "{{ replication_password }}"
    gtid_slave_pos: 0-2887647235-1042
  become: true
  no_log: true

- name: Promotion - forget the source
  mysql_replica:
    state: absent
  become: true
"""

RETURN = r"""
action:
  description:
    - What the module did (or would do in check mode) - V(none), V(started) (threads started),
      V(semi_sync_registered) (IO thread restarted), V(pointed) (source changed), V(reset).
  returned: always
  type: str
  sample: pointed
queries:
  description: The statements run, without their parameters (no password).
  returned: always
  type: list
  elements: str
  sample:
    - STOP SLAVE
    - CHANGE MASTER TO MASTER_HOST=%s, ..., MASTER_USE_GTID=slave_pos
    - START SLAVE
before:
  description: Replication status before (keys as in M(mysql_replication_facts)).
  returned: always
  type: dict
after:
  description: Replication status after.
  returned: always
  type: dict
"""

REPLICA_SPEC: dict[str, Any] = {
    "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
    "source_host": {"type": "str"},
    "source_port": {"type": "int", "default": 3306},
    "source_user": {"type": "str"},
    "source_password": {"type": "str", "no_log": True},
    "use_gtid": {"type": "str", "choices": ["slave_pos", "current_pos"], "default": "slave_pos"},
    "connect_retry": {"type": "int", "default": 5},
    "heartbeat_period": {"type": "float"},
    "gtid_slave_pos": {"type": "str"},
    "check_source": {"type": "bool", "default": True},
    "force": {"type": "bool", "default": False},
    "wait_timeout": {"type": "int", "default": 30},
}
ARGUMENT_SPEC: dict[str, Any] = {**REPLICA_SPEC, **LOGIN_ARGUMENT_SPEC}


class ReplicaError(Exception):
    """The server cannot be made to replicate; the message says why."""


Connector = Callable[..., Any]


def _points_at_source(status: dict[str, Any], params: dict[str, Any], mysql: bool) -> bool:
    wanted_gtid = "auto_position" if mysql else params["use_gtid"]
    return (status["configured"] and status["source_host"] == params["source_host"]
            and status["source_port"] == params["source_port"]
            and status["source_user"] == params["source_user"]
            and status["using_gtid"] == wanted_gtid)


def _check_source(local: Any, params: dict[str, Any], connector: Connector,
                  sleep: Callable[[float], None], clock: Callable[[], float]) -> None:
    """Log in to the source with the replication account; refuse when this server has GTIDs
    the source lacks after waiting wait_timeout seconds for the source to catch up."""
    host, port = params["source_host"], params["source_port"]
    try:
        source = connector(params, host=host, port=port, user=params["source_user"],
                           password=params["source_password"])
    except Exception as exc:  # the driver's error, whatever it is, named with the source
        raise ReplicaError(f"cannot log in to the source {host}:{port} as "
                           f"{params['source_user']}: {exc}") from None
    try:
        flavor = server_flavor(local)
        key = "binlog_state" if flavor.is_mariadb else "executed"
        mine = gtid_position(local, flavor)[key]
        deadline = clock() + params["wait_timeout"]
        while True:
            missing = errant_gtids(mine, gtid_position(source, flavor)[key], flavor)
            if not missing or clock() >= deadline:
                break
            sleep(1)
    finally:
        source.close()
    if missing:
        raise ReplicaError(
            f"this server has transactions the source {host}:{port} lacks ({missing}): errant "
            f"transactions here, or a source still behind after {params['wait_timeout']}s; "
            "not re-pointing")


def _wait_running(local: Any, params: dict[str, Any], sleep: Callable[[float], None],
                  clock: Callable[[], float]) -> dict[str, Any]:
    deadline = clock() + params["wait_timeout"]
    while True:
        status = replication_status(local)
        if status["io_running"] and status["sql_running"]:
            return status
        if status["last_sql_errno"] or clock() >= deadline:
            raise ReplicaError(
                f"replication from {params['source_host']}:{params['source_port']} does not run "
                f"(IO thread {status['io_thread']}, SQL thread {status['sql_thread']}): "
                f"{status['last_io_error'] or status['last_sql_error'] or 'no error reported'}")
        sleep(0.5)


def _present(local: Any, params: dict[str, Any], check_mode: bool, connector: Connector,
             sleep: Callable[[float], None], clock: Callable[[], float]) -> dict[str, Any]:
    for name in ("source_host", "source_user", "source_password"):
        if not params.get(name):
            raise ReplicaError(f"{name} is required with state=present")
    flavor = server_flavor(local)
    before = replication_status(local, flavor)
    statements: list[tuple[str, tuple[Any, ...]]]
    if _points_at_source(before, params, not flavor.is_mariadb) and not params["force"]:
        if before["io_running"] and before["sql_running"]:
            semi = semi_sync_status(local, flavor)
            if not (semi["slave_enabled"] and not semi["slave_status"]):
                return {"action": "none", "statements": [], "before": before}
            action = "semi_sync_registered"
            statements = [(stop_replica_statement(flavor, "io"), ()),
                          (start_replica_statement(flavor, "io"), ())]
        else:
            if before["last_sql_errno"]:
                raise ReplicaError(f"the SQL thread stopped with error {before['last_sql_errno']}: "
                                   f"{before['last_sql_error']} (fix it, then run again)")
            action, statements = "started", [(start_replica_statement(flavor), ())]
    else:
        if params["check_source"]:
            _check_source(local, params, connector, sleep, clock)
        action = "pointed"
        statements = change_source_statements(
            flavor, params["source_host"], params["source_port"], params["source_user"],
            params["source_password"], use_gtid=params["use_gtid"],
            connect_retry=params["connect_retry"], heartbeat_period=params["heartbeat_period"],
            gtid_slave_pos=params["gtid_slave_pos"] if flavor.is_mariadb else None)
    if not check_mode:
        execute(local, statements)
        _wait_running(local, params, sleep, clock)
    return {"action": action, "statements": statements, "before": before}


def _absent(local: Any, check_mode: bool) -> dict[str, Any]:
    flavor = server_flavor(local)
    before = replication_status(local, flavor)
    if not before["configured"]:
        return {"action": "none", "statements": [], "before": before}
    statements = [(stop_replica_statement(flavor), ()), (reset_replica_statement(flavor), ())]
    if not check_mode:
        execute(local, statements)
    return {"action": "reset", "statements": statements, "before": before}


def run(params: dict[str, Any], check_mode: bool, connector: Connector,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic) -> dict[str, Any]:
    local = connector(params)
    try:
        if params["state"] == "absent":
            done = _absent(local, check_mode)
        else:
            done = _present(local, params, check_mode, connector, sleep, clock)
        after = done["before"] if check_mode or not done["statements"] \
            else replication_status(local)
    finally:
        local.close()
    return {"changed": bool(done["statements"]), "action": done["action"],
            "queries": [sql for sql, _ in done["statements"]], "before": done["before"],
            "after": after}


def main() -> None:
    if IMPORT_ERROR is not None:
        AnsibleModule(argument_spec={}, bypass_checks=True).fail_json(
            msg=f"cannot import the hostkit module_utils: {IMPORT_ERROR}")
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True,
                           required_if=[("state", "present",
                                         ("source_host", "source_user", "source_password"))])
    if pymysql is None:
        module.fail_json(msg=missing_required_lib("PyMySQL"), exception=PYMYSQL_TRACEBACK)
    try:
        result = run(module.params, module.check_mode,
                     lambda p, **kw: connect(pymysql, p, **kw))
    except ReplicaError as exc:
        module.fail_json(msg=f"mysql_replica: {exc}")
    except pymysql.MySQLError as exc:
        module.fail_json(msg=f"mysql_replica: {exc}")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
