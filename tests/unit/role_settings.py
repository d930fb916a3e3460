"""A role's variables as a sandbox host gets them, for the role checks' tests
(tests/unit/test_role_checks_*.py): the role's defaults/main.yml, overridden by the sandbox
inventory's group_vars, with the templated values rendered.

Plain Jinja2 renders the templates that only read other variables (`{{ hostkit_region |
default('us-east-1') }}`), against those same files, each referenced variable rendered first.
Templates that need Ansible (this project's filters, lookups, facts, role_path) cannot be
rendered here: the test names each of them with the value it has on the sandbox host it
describes (a substitute). A substitute must replace a template: one for a value that is no
longer templated fails, and so does a template without one that plain Jinja2 cannot render,
so the list stays true to the files."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml
from jinja2 import StrictUndefined, meta
from jinja2.nativetypes import NativeEnvironment

ROOT = Path(__file__).resolve().parents[2]
SANDBOX_GROUP_VARS = ROOT / "inventory" / "sandbox" / "group_vars"

# A substitute: the value, or a function of the (unrendered) variables that gives it.
Substitute = Any | Callable[[Mapping[str, Any]], Any]

_JINJA = NativeEnvironment(undefined=StrictUndefined)


def _load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text()) or {}


def sandbox_variables(role: str) -> dict[str, Any]:
    """defaults/main.yml of `role`, then every sandbox group_vars file in name order (the
    sandbox sets the roles' variables for group `all` only)."""
    merged = _load(ROOT / "roles" / role / "defaults" / "main.yml")
    for path in sorted(SANDBOX_GROUP_VARS.rglob("*.yml")):
        merged.update(_load(path))
    return merged


def _templated(value: Any) -> bool:
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, Mapping):
        return any(_templated(v) for v in value.values())
    if isinstance(value, list):
        return any(_templated(v) for v in value)
    return False


class _Renderer:
    def __init__(self, variables: Mapping[str, Any], substitutes: Mapping[str, Substitute]):
        self.variables = variables
        self.substitutes = substitutes
        self.done: dict[str, Any] = {}

    def variable(self, name: str) -> Any:
        if name not in self.done:
            if name in self.substitutes:
                given = self.substitutes[name]
                self.done[name] = given(self.variables) if callable(given) else given
            elif name in self.variables:
                self.done[name] = self.value(self.variables[name], name)
            else:
                raise KeyError(name)
        return self.done[name]

    def value(self, value: Any, name: str) -> Any:
        if isinstance(value, Mapping):
            return {k: self.value(v, name) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v, name) for v in value]
        if not isinstance(value, str) or not _templated(value):
            return value
        used = meta.find_undeclared_variables(_JINJA.parse(value))
        known = self.variables.keys() | self.substitutes.keys()
        context = {n: self.variable(n) for n in used if n in known}
        try:
            return _JINJA.from_string(value).render(context)
        except Exception as exc:
            raise AssertionError(f"{name}: plain Jinja2 cannot render {value!r} ({exc}); "
                                 "give the test a substitute for it") from exc


def sandbox_settings(role: str, substitutes: Mapping[str, Substitute]) -> dict[str, Any]:
    """Every `<role>_` variable with its value on a sandbox host (see the module)."""
    variables = sandbox_variables(role)
    stale = sorted(n for n in substitutes if not _templated(variables.get(n)))
    assert stale == [], f"substitutes for values that are not templated: {stale}"
    renderer = _Renderer(variables, substitutes)
    return {name: renderer.variable(name) for name in variables
            if name.startswith(f"{role}_")}



# What Ansible computes on the sandbox's backup replica (hostkit-db-4, cluster hello; the
# fleet in inventory/sandbox/group_vars/all/fleet.yml): the database topology and the
# global config come from this project's filters and lookups, the addresses from facts.
SANDBOX_BACKUP_HOST: dict[str, Any] = {
    "mysql_backup_live_positions": {},
    "mysql_backup_cluster": "hello",
    "mysql_backup_master": "hostkit-db-1",
    "mysql_backup_master_address": "172.30.20.11",
    "mysql_backup_binlog_user_hosts": ["172.30.20.14"],
    "mysql_backup_binlog_account_servers": ["hostkit-db-1", "hostkit-db-2", "hostkit-db-3",
                                            "hostkit-db-4"],
    "mysql_backup_credentials_dir": str(ROOT / "credentials" / "sandbox"),
}

