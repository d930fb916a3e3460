"""Jinja filter hostkit_settings_problems: a role's settings checked in Python before the role
changes anything (plugin_utils/role_checks/<role>.py; documented in
hostkit_settings_problems.yml)."""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError

from plugin_utils.role_checks import UnknownRoleError, settings_problems


def hostkit_settings_problems(settings: Any, role: str, **context: Any) -> list[str]:
    """Problems of `settings` (variable name -> value) of `role`; [] when they are good."""
    try:
        return settings_problems(str(role), settings, **context)
    except (UnknownRoleError, TypeError) as exc:
        raise AnsibleFilterError(f"hostkit_settings_problems: {exc}") from None


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"hostkit_settings_problems": hostkit_settings_problems}
