"""Checks of a role's settings, in Python: what each role's tasks/validate.yml asks before
anything on the host changes (filter hostkit_settings_problems).

One module per role (plugin_utils/role_checks/<role>.py) with

    def problems(settings: Mapping[str, Any], **context: Any) -> list[str]

`settings` maps the role's variable names (memcached_port, ...) to their values, as the
task passes them; `context` carries what the check needs of the host or the inventory
(its addresses, the products). Every problem is one message that names the variable and
what was given; an empty list means the settings are good. The shared checks (whole
numbers in a range, addresses, lists) are in common.py. No Ansible imports: unit-tested in
tests/unit/test_role_checks_*.py.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from typing import Any

_ROLE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class UnknownRoleError(ValueError):
    """No checks exist for the role named."""


def settings_problems(role: str, settings: Mapping[str, Any], **context: Any) -> list[str]:
    """The problems of `settings` of `role` (see the module's docstring)."""
    if not _ROLE_NAME.match(role or "") or role == "common":
        raise UnknownRoleError(f"no settings checks for role '{role}'")
    try:
        module = importlib.import_module(f"{__name__}.{role}")
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{role}":
            raise
        raise UnknownRoleError(f"no settings checks for role '{role}'") from None
    if not isinstance(settings, Mapping):
        raise TypeError(f"settings of role '{role}' must be a mapping of variable names")
    return list(module.problems(settings, **context))
