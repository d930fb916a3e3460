#!/usr/bin/python
"""Ansible module: one MariaDB (or MySQL) account name from a list of hosts, in one call."""

from __future__ import annotations

from typing import Any

from ansible.module_utils.basic import AnsibleModule

try:
    from ansible.module_utils.mysql_accounts import (
        AccountError,
        plan_account,
        priv_string,
    )
except ImportError as exc:  # reported by fail_json, not as a traceback
    IMPORT_ERROR: ImportError | None = exc
else:
    IMPORT_ERROR = None

from ansible_collections.community.mysql.plugins.module_utils.mysql import (
    mysql_common_argument_spec,
    mysql_connect,
    mysql_driver,
    mysql_driver_fail_msg,
)
from ansible_collections.community.mysql.plugins.module_utils.user import (
    InvalidPrivsError,
    get_mode,
    privileges_unpack,
    user_add,
    user_delete,
    user_get_hostnames,
    user_mod,
)

DOCUMENTATION = r"""
---
module: mysql_account
short_description: One MariaDB or MySQL account name from a list of hosts, in one call
description:
  - An account is a name and a host part; an account allowed "from these hosts" is one account
    per host part. This module creates or brings up to date (password or authentication
    plugin, privileges) the account of O(name) for every host part of O(hosts), and with
    O(exclusive) drops the host parts of that name that are no longer listed - one remote call
    and one connection, where M(community.mysql.mysql_user) takes a task per host part plus a
    query for the ones to drop.
  - Each account is compared and changed by community.mysql's own account code (the same as
    M(community.mysql.mysql_user) with O(update_password=always) and
    C(column_case_sensitive=true)), so passwords are passed as parameters, never in SQL text.
  - With O(sql_log_bin=false) nothing it does is written to the binary log, so a replica
    keeps no transactions of its own (errant GTIDs) and each server holds its own accounts.
version_added: "1.0.0"
author: hostkit maintainers
extends_documentation_fragment:
  - community.mysql.mysql
options:
  name:
    description: The account name (or give O(accounts)).
    type: str
  hosts:
    description:
      - The host parts (addresses, V(localhost), networks as the server writes them - see the
        C(mysql_host_pattern) filter). With O(state=present) and O(exclusive), an empty list
        drops every host part of the account (allowed from nowhere).
    type: list
    elements: str
  password:
    description: The password of every host part of the account (none with O(plugin)).
    type: str
  plugin:
    description: Authentication plugin instead of a password, such as V(unix_socket).
    type: str
  priv:
    description:
      - Privileges, as M(community.mysql.mysql_user) takes them - a string
        V(db.table:PRIV,PRIV/db2.*:PRIV) or a mapping of V(db.table) to privileges. The account
        gets exactly these (others are revoked).
    type: raw
  exclusive:
    description: Drop the host parts of O(name) that O(hosts) does not list.
    type: bool
    default: true
  state:
    description: V(present) - the account from each of O(hosts); V(absent) - no account of
      O(name) from any of O(hosts).
    type: str
    choices: [present, absent]
    default: present
  accounts:
    description:
      - Several account names in the same call and connection, in order, each with the
        suboptions of the single-account form (O(name), O(hosts), ...). Mutually exclusive
        with O(name).
    type: list
    elements: dict
    suboptions:
      name:
        description: The account name.
        type: str
        required: true
      hosts:
        description: The host parts, as O(hosts).
        type: list
        elements: str
        required: true
      password:
        description: The password, as O(password).
        type: str
      plugin:
        description: Authentication plugin, as O(plugin).
        type: str
      priv:
        description: Privileges, as O(priv).
        type: raw
      exclusive:
        description: As O(exclusive).
        type: bool
        default: true
      state:
        description: As O(state).
        type: str
        choices: [present, absent]
        default: present
  sql_log_bin:
    description: Whether the changes are written to the binary log (replicated).
    type: bool
    default: true
attributes:
  check_mode:
    description: Reports what would change, changes nothing.
    support: full
requirements:
  - PyMySQL on the managed host (Debian C(python3-pymysql), EL C(python3-PyMySQL))
seealso:
  - module: community.mysql.mysql_user
"""

EXAMPLES = r"""
- name: The replication account from each database server, nowhere else
  mysql_account:
    login_unix_socket: /run/mysqld/mysqld.sock
    login_user: root
    name: hostkit_repl
    hosts: [172.30.20.2, 172.30.20.3, 172.30.20.4]
    password: "{{ replication_password }}"
    priv: {"*.*": "REPLICATION SLAVE,BINLOG MONITOR"}
    sql_log_bin: false
  no_log: true

- name: Root by the unix socket only
  mysql_account:
    login_unix_socket: /run/mysqld/mysqld.sock
    login_user: root
    name: root
    hosts: [localhost]
    plugin: unix_socket
    priv: "*.*:ALL,GRANT"
    exclusive: false

- name: The replication and monitoring accounts in one call
  mysql_account:
    login_unix_socket: /run/mysqld/mysqld.sock
    login_user: root
    accounts:
      - {name: hostkit_repl, hosts: [172.30.20.2, 172.30.20.3], password: "{{ repl_password }}",
         priv: "*.*:REPLICATION SLAVE"}
      - {name: hostkit_monitor, hosts: [172.30.0.9], password: "{{ monitor_password }}",
         priv: "*.*:PROCESS,BINLOG MONITOR,SLAVE MONITOR"}
    sql_log_bin: false
  no_log: true

- name: No anonymous accounts
  mysql_account:
    login_unix_socket: /run/mysqld/mysqld.sock
    login_user: root
    name: ""
    hosts: [localhost, "{{ ansible_facts['hostname'] }}"]
    state: absent
"""

RETURN = r"""
created:
  description: Accounts (V(name@host)) that were (in check mode, would be) created.
  returned: always
  type: list
  elements: str
  sample: [hostkit_repl@172.30.20.4]
updated:
  description: Accounts whose password, plugin or privileges were changed.
  returned: always
  type: list
  elements: str
  sample: []
removed:
  description: Accounts that were dropped.
  returned: always
  type: list
  elements: str
  sample: [hostkit_repl@172.30.20.9]
"""

ACCOUNT_OPTIONS: dict[str, Any] = {
    "name": {"type": "str", "required": True},
    "hosts": {"type": "list", "elements": "str", "required": True},
    "password": {"type": "str", "no_log": True},
    "plugin": {"type": "str"},
    "priv": {"type": "raw"},
    "exclusive": {"type": "bool", "default": True},
    "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
}

ARGUMENT_SPEC: dict[str, Any] = {
    **mysql_common_argument_spec(),
    **{k: {**v, "required": False} for k, v in ACCOUNT_OPTIONS.items()},
    "accounts": {"type": "list", "elements": "dict", "options": ACCOUNT_OPTIONS,
                 "mutually_exclusive": [("password", "plugin")]},
    "sql_log_bin": {"type": "bool", "default": True},
}


def _connect(module: AnsibleModule) -> Any:
    p = module.params
    try:
        cursor, _conn = mysql_connect(
            module, p["login_user"], p["login_password"], p["config_file"], p["client_cert"],
            p["client_key"], p["ca_cert"], "", connect_timeout=p["connect_timeout"],
            check_hostname=p["check_hostname"], autocommit=True)
    except Exception as exc:  # the driver's own errors, named as community.mysql does
        where = p.get("login_unix_socket") or f"{p['login_host']}:{p['login_port']}"
        module.fail_json(msg=f"mysql_account: cannot connect to the server at {where} as "
                             f"{p['login_user']}: {exc}")
    return cursor


def _account_specs(params: dict[str, Any]) -> list[dict[str, Any]]:
    if params.get("accounts"):
        return list(params["accounts"])
    if params.get("name") is None or params.get("hosts") is None:
        raise AccountError("give name and hosts, or accounts")
    return [{k: params.get(k) for k in ACCOUNT_OPTIONS}]


def _apply(module: AnsibleModule, cursor: Any, spec: dict[str, Any],
           done: dict[str, list[str]]) -> None:
    """One account name: its host parts created, brought up to date or dropped."""
    existing = user_get_hostnames(cursor, spec["name"])
    plan = plan_account(spec["name"], spec["hosts"], existing, spec["state"], spec["exclusive"])
    privileges = None
    wanted = priv_string(spec.get("priv"))
    if wanted and plan.keep:
        privileges = privileges_unpack(wanted, get_mode(cursor), True)
    for host in plan.keep:
        common = dict(password=spec.get("password"), encrypted=False, plugin=spec.get("plugin"),
                      plugin_hash_string=None, plugin_auth_string=None, salt=None,
                      new_priv=privileges, attributes=None, tls_requires=None, module=module,
                      password_expire=None, password_expire_interval=None)
        if host in existing:
            result = user_mod(cursor, plan.name, host, False, append_privs=False,
                              subtract_privs=False, **common)
            if result["changed"]:
                done["updated"].append(f"{plan.name}@{host}")
        else:
            user_add(cursor, plan.name, host, False, reuse_existing_password=False, **common)
            done["created"].append(f"{plan.name}@{host}")
    for host in plan.remove:
        user_delete(cursor, plan.name, host, False, module.check_mode)
        done["removed"].append(f"{plan.name}@{host}")


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True,
                           mutually_exclusive=[("password", "plugin"), ("name", "accounts")])
    if IMPORT_ERROR is not None:
        module.fail_json(msg=f"cannot import the hostkit module_utils: {IMPORT_ERROR}")
    if mysql_driver is None:
        module.fail_json(msg=mysql_driver_fail_msg)
    p = module.params
    done: dict[str, list[str]] = {"created": [], "updated": [], "removed": []}
    name = p.get("name")
    try:
        specs = _account_specs(p)
    except AccountError as exc:
        module.fail_json(msg=f"mysql_account: {exc}")
    cursor = _connect(module)
    try:
        if not p["sql_log_bin"]:
            cursor.execute("SET SQL_LOG_BIN=0")
        for spec in specs:
            name = spec["name"]
            _apply(module, cursor, spec, done)
    except (AccountError, InvalidPrivsError) as exc:
        module.fail_json(msg=f"mysql_account {name!r}: {exc}", **done)
    except mysql_driver.Error as exc:
        module.fail_json(msg=f"mysql_account {name!r}: the server refused: {exc}", **done)
    finally:
        cursor.close()
    module.exit_json(changed=any(done.values()), **done)


if __name__ == "__main__":
    main()
