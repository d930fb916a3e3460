#!/usr/bin/python
"""Ansible module: the replication state of a MariaDB (or MySQL) server, normalised."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from typing import Any

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

try:
    from ansible.module_utils.mysql_flavor import (
        account_hosts,
        binlogs_beyond,
        global_variables,
        gtid_position,
        oldest_binlog_gtid_pos,
        query_value,
        read_only_state,
        replication_status,
        semi_sync_status,
        server_flavor,
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
module: mysql_replication_facts
author: hostkit maintainers
short_description: Replication state of a MariaDB or MySQL server
description:
  - Reads, without changing anything, what a failover or a replication playbook needs to know
    about one server - a role hint, its replication source, the replica threads and their
    errors, the lag, GTID positions, semi-synchronous replication and C(read_only).
  - Column and variable names differ between MariaDB and MySQL (C(Slave_IO_Running) or
    C(Replica_IO_Running), C(rpl_semi_sync_master_*) or C(rpl_semi_sync_source_*), ...); the
    module returns the same keys for both (module_utils C(mysql_flavor)).
  - Logs in over the server's unix socket as root by default, so run it with C(become). A
    monitoring account (O(login_user)) needs C(PROCESS), C(BINLOG MONITOR) and C(SLAVE
    MONITOR) (MariaDB 10.5.9+) or C(REPLICATION CLIENT) (MySQL).
version_added: "1.0.0"
extends_documentation_fragment:
  - hostkit_mysql_login
options:
  wait:
    description:
      - Seconds to keep trying to connect while the server refuses (just started or
        restarting, socket not there yet) before failing; V(0) tries once.
    type: int
    default: 0
  variables:
    description:
      - Global variables to read as well, returned in RV(variables). A role compares them with
        the values it wants and sets only the ones that differ.
    type: list
    elements: str
    default: []
  accounts:
    description:
      - Account names whose host parts to read as well (from C(mysql.user)), returned in
        RV(accounts); V("") is the anonymous account.
    type: list
    elements: str
    default: []
  binlogs_beyond:
    description:
      - A GTID position (another server's, such as its cluster's master's). The binary log
        files that hold every transaction of this server past it are returned in
        RV(binlogs_beyond), to be saved before a diverged server's data is thrown away.
    type: str
attributes:
  check_mode:
    description: Reads only; the same in check mode.
    support: full
notes:
  - C(role_hint) is what the server itself says, not the topology; a fresh server and a fenced
    old master both read as V(standalone_read_only).
"""

EXAMPLES = r"""
- name: Read the replication state
  mysql_replication_facts:
  become: true
  register: repl

- name: Stop when the replica is not replicating
  ansible.builtin.assert:
    that:
      - repl.io_running and repl.sql_running
    fail_msg: "{{ inventory_hostname }}: {{ repl.last_io_error or repl.last_sql_error }}"
  when: repl.role_hint == 'replica'

- name: Read the server's settings and accounts as well
  mysql_replication_facts:
    variables: [max_connections, sync_binlog]
    accounts: [root, ""]
  become: true
  register: repl

- name: The binary logs that hold what the master never got
  mysql_replication_facts:
    binlogs_beyond: "{{ master_state.gtid.binlog }}"
  become: true
  register: diverged

- name: Semi-synchronous replication on the master
  ansible.builtin.debug:
    msg: >-
      {{ repl.semi_sync.master_clients }} semi-sync replica(s),
      active {{ repl.semi_sync.master_status }}
"""

RETURN = r"""
flavor:
  description: V(mariadb) or V(mysql).
  returned: always
  type: str
  sample: mariadb
version:
  description: Server version.
  returned: always
  type: str
  sample: 10.11.6-MariaDB-0+deb12u1-log
server_id:
  description: The server's C(server_id).
  returned: always
  type: int
  sample: 2887647235
role_hint:
  description:
    - V(replica) - a replication source is configured;
    - V(master) - no source, writable (C(read_only) off);
    - V(standalone_read_only) - no source, read-only (a fresh server, or a fenced old master).
  returned: always
  type: str
  sample: replica
is_replica:
  description: Whether a replication source is configured.
  returned: always
  type: bool
source_host:
  description: Host the server replicates from (V(null) when none).
  returned: always
  type: str
  sample: 172.30.0.3
source_port:
  description: Port of the source.
  returned: always
  type: int
  sample: 3306
source_user:
  description: Replication account on the source.
  returned: always
  type: str
io_running:
  description: The replica IO thread is connected and reading (C(Slave_IO_Running=Yes)).
  returned: always
  type: bool
sql_running:
  description: The replica SQL thread is applying.
  returned: always
  type: bool
io_thread:
  description: Raw IO thread state, V(Yes), V(No) or V(Connecting).
  returned: always
  type: str
sql_thread:
  description: Raw SQL thread state, V(Yes) or V(No).
  returned: always
  type: str
seconds_behind:
  description: Replication lag in seconds (C(Seconds_Behind_Master/Source)); V(null) when the
    threads do not run.
  returned: always
  type: int
using_gtid:
  description: V(slave_pos), V(current_pos) (MariaDB), V(auto_position) (MySQL) or V(no).
  returned: always
  type: str
last_io_errno:
  description: Last IO thread error number (0 when none).
  returned: always
  type: int
last_io_error:
  description: Last IO thread error.
  returned: always
  type: str
last_sql_errno:
  description: Last SQL thread error number (0 when none).
  returned: always
  type: int
last_sql_error:
  description: Last SQL thread error.
  returned: always
  type: str
gtid:
  description:
    - MariaDB - C(current) (gtid_current_pos), C(slave) (gtid_slave_pos), C(binlog)
      (gtid_binlog_pos), C(binlog_state) (gtid_binlog_state), C(io) (Gtid_IO_Pos, received).
    - MySQL - C(executed), C(purged), C(io) (Retrieved_Gtid_Set).
  returned: always
  type: dict
  sample: {current: 0-2887647235-42, slave: 0-2887647235-42, binlog: 0-2887647235-42,
           binlog_state: 0-2887647235-42, io: 0-2887647235-42}
oldest_binlog_gtid_pos:
  description:
    - GTID position at the start of the oldest binary log on the server; V("") when the binary
      logs hold the whole history (a new empty replica can replay them), V(null) when the
      binary log is off.
  returned: always
  type: str
binlogs_beyond:
  description:
    - The binary log files (full paths, oldest first) that hold every transaction of this
      server past O(binlogs_beyond); V([]) when the binary log is off.
  returned: when O(binlogs_beyond) is given
  type: list
  elements: str
  sample: [/var/lib/mysql/mysql-bin.000007]
log_bin:
  description: Whether the binary log is on.
  returned: always
  type: bool
read_only:
  description: The server's C(read_only).
  returned: always
  type: bool
super_read_only:
  description: MySQL's C(super_read_only).
  returned: when the server is MySQL
  type: bool
semi_sync:
  description: Semi-synchronous replication, normalised.
  returned: always
  type: dict
  contains:
    master_enabled:
      description: The master side is enabled (C(rpl_semi_sync_master_enabled)).
      type: bool
    master_status:
      description: The master side is active (C(Rpl_semi_sync_master_status)).
      type: bool
    master_clients:
      description: Semi-synchronous replicas connected.
      type: int
    master_yes_tx:
      description: Commits acknowledged by a replica.
      type: int
    master_no_tx:
      description: Commits not acknowledged in time.
      type: int
    slave_enabled:
      description: The replica side is enabled (C(rpl_semi_sync_slave_enabled)).
      type: bool
    slave_status:
      description: This replica acknowledges its source's commits.
      type: bool
    wait_point:
      description: C(AFTER_SYNC) or C(AFTER_COMMIT).
      type: str
    timeout:
      description: Milliseconds the master waits for an acknowledgement.
      type: int
variables:
  description: The current global value of each variable of O(variables), by lower-case name;
    a variable the server does not have is left out.
  returned: always
  type: dict
  sample: {max_connections: "151", gtid_strict_mode: "ON"}
accounts:
  description: The host parts of each account name of O(accounts), sorted; V([]) when the
    server has no such account.
  returned: always
  type: dict
  sample: {root: [localhost], hostkit_repl: ["172.30.20.0/255.255.255.0"]}
"""

ARGUMENT_SPEC: dict[str, Any] = {
    **LOGIN_ARGUMENT_SPEC,
    "wait": {"type": "int", "default": 0},
    "variables": {"type": "list", "elements": "str", "default": []},
    "accounts": {"type": "list", "elements": "str", "default": []},
    "binlogs_beyond": {"type": "str"},
}


def role_hint(is_replica: bool, read_only: bool) -> str:
    if is_replica:
        return "replica"
    return "standalone_read_only" if read_only else "master"


def gather(conn: Any, variables: list[str] | None = None,
           accounts: list[str] | None = None) -> dict[str, Any]:
    """Every fact of the RETURN block from one connection."""
    flavor = server_flavor(conn)
    status = replication_status(conn, flavor)
    gtid = gtid_position(conn, flavor)
    gtid["io"] = status["gtid_io_pos"]
    ro = read_only_state(conn, flavor)
    facts: dict[str, Any] = {
        "flavor": flavor.name,
        "version": str(query_value(conn, "SELECT VERSION()")),
        "server_id": int(query_value(conn, "SELECT @@GLOBAL.server_id") or 0),
        "role_hint": role_hint(status["configured"], ro["read_only"]),
        "is_replica": status["configured"],
        "gtid": gtid,
        "oldest_binlog_gtid_pos": oldest_binlog_gtid_pos(conn, flavor),
        "log_bin": str(query_value(conn, "SELECT @@GLOBAL.log_bin")).upper() in ("1", "ON"),
        "semi_sync": semi_sync_status(conn, flavor),
        "variables": global_variables(conn, variables or []),
        "accounts": account_hosts(conn, accounts or []),
        **ro,
    }
    for key in ("source_host", "source_port", "source_user", "io_running", "sql_running",
                "io_thread", "sql_thread", "seconds_behind", "using_gtid", "last_io_errno",
                "last_io_error", "last_sql_errno", "last_sql_error"):
        facts[key] = status[key]
    return facts


def connect_waiting(params: dict[str, Any], connector: Callable[[dict[str, Any]], Any],
                    retry_on: tuple[type[BaseException], ...] = (),
                    sleep: Callable[[float], None] = time.sleep,
                    clock: Callable[[], float] = time.monotonic) -> Any:
    """A connection; errors of `retry_on` are retried every half second for `wait` seconds."""
    deadline = clock() + max(0, int(params.get("wait") or 0))
    while True:
        try:
            return connector(params)
        except retry_on:
            if clock() >= deadline:
                raise
            sleep(0.5)


def run(params: dict[str, Any], connector: Callable[[dict[str, Any]], Any],
        retry_on: tuple[type[BaseException], ...] = (),
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic) -> dict[str, Any]:
    conn = connect_waiting(params, connector, retry_on, sleep, clock)
    try:
        facts = gather(conn, params.get("variables"), params.get("accounts"))
        if params.get("binlogs_beyond") is not None:
            facts["binlogs_beyond"] = binlogs_beyond(conn, params["binlogs_beyond"])
        return {"changed": False, **facts}
    finally:
        conn.close()


def main() -> None:
    if IMPORT_ERROR is not None:
        AnsibleModule(argument_spec={}, bypass_checks=True).fail_json(
            msg=f"cannot import the hostkit module_utils: {IMPORT_ERROR}")
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    if pymysql is None:
        module.fail_json(msg=missing_required_lib("PyMySQL"), exception=PYMYSQL_TRACEBACK)
    try:
        result = run(module.params, lambda p: connect(pymysql, p),
                     retry_on=(pymysql.err.OperationalError,))
    except pymysql.MySQLError as exc:
        where = module.params.get("login_host") or module.params.get("login_unix_socket")
        module.fail_json(msg=f"mysql_replication_facts: cannot read the server at {where}: {exc}")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
