"""One database account name from a list of hosts: which host parts to create or update,
and which to remove. Used by library/mysql_account.py (which applies the plan through
community.mysql); no Ansible imports, so the decisions are unit-tested on their own.

An account in MariaDB and MySQL is a name AND a host part (`repl@'10.0.1.%'`); an account
"from these hosts" is one row per host part. A run makes each listed host part match (created
or updated) and, when exclusive, drops the host parts of that name no longer listed, so a web
server that left the product loses its login with the next run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

PRESENT, ABSENT = "present", "absent"
MAX_NAME = 80    # MariaDB; MySQL allows 32
MAX_HOST = 255


class AccountError(ValueError):
    """Bad input, with a message naming the account and the value."""


@dataclass(frozen=True)
class AccountPlan:
    name: str
    keep: tuple[str, ...]      # host parts to create or bring up to date (state present)
    remove: tuple[str, ...]    # host parts to drop


def _hosts(name: str, hosts: Iterable[object]) -> tuple[str, ...]:
    out: list[str] = []
    for host in hosts:
        if not isinstance(host, str) or not host.strip():
            raise AccountError(f"account {name!r}: a host part must be a non-empty string, "
                               f"got {host!r}")
        if len(host) > MAX_HOST:
            raise AccountError(f"account {name!r}: host part {host[:40]!r}... is longer than "
                               f"{MAX_HOST} characters")
        if host not in out:
            out.append(host)
    return tuple(out)


def plan_account(name: str, hosts: Iterable[object], existing: Iterable[str],
                 state: str = PRESENT, exclusive: bool = True) -> AccountPlan:
    """What to do with account `name`: `hosts` are the host parts wanted (state present) or
    to drop (state absent); `existing` the host parts the server has for that name."""
    if not isinstance(name, str) or len(name) > MAX_NAME:
        raise AccountError(f"account name must be a string of at most {MAX_NAME} characters, "
                           f"got {name!r}")
    if state not in (PRESENT, ABSENT):
        raise AccountError(f"account {name!r}: state must be {PRESENT} or {ABSENT}, "
                           f"got {state!r}")
    wanted = _hosts(name, hosts)
    have = [str(h) for h in existing]
    if state == ABSENT:
        return AccountPlan(name, (), tuple(h for h in wanted if h in have))
    if name == "":
        raise AccountError("the anonymous account ('') can only be dropped (state absent)")
    # allowed from no host (say, no monitor host yet): exclusive drops every host part
    remove = tuple(h for h in have if h not in wanted) if exclusive else ()
    return AccountPlan(name, wanted, remove)


def priv_string(priv: str | Mapping[str, object] | None) -> str | None:
    """Privileges as community.mysql's string form, `db.table:PRIV,PRIV/db2.*:PRIV`, from
    that string or from a mapping of `db.table` to privileges (a string or a list)."""
    if priv is None or isinstance(priv, str):
        return priv or None
    if not isinstance(priv, Mapping):
        raise AccountError(f"priv must be a string or a mapping, got {type(priv).__name__}")
    parts = []
    for target, privileges in priv.items():
        if isinstance(privileges, (list, tuple)):
            privileges = ",".join(str(p) for p in privileges)
        if not str(target).strip() or not str(privileges).strip():
            raise AccountError(f"priv entry {target!r}: {privileges!r} needs a target and "
                               "privileges")
        parts.append(f"{target}:{privileges}")
    return "/".join(parts) or None
