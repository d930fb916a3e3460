"""Jinja filter: a product's runtime settings (runtime.json) from the global config.

The logic is host_programs/config_agent/runtime_settings.py, which the config agent on
every web server uses too: the product role's first copy of the file and the agent's
later ones are the same function of the same document. Documented in
hostkit_runtime_settings.yml."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleFilterError

from host_programs.config_agent.runtime_settings import (
    DEFAULT_DB_PORT,
    DEFAULT_MEMCACHED_PORT,
    render,
)


def hostkit_runtime_settings(doc: Mapping[str, Any], product: Mapping[str, Any],
                             db_port: Any = DEFAULT_DB_PORT,
                             memcached_port: Any = DEFAULT_MEMCACHED_PORT) -> dict[str, Any]:
    try:
        return render(doc, product, db_port, memcached_port)
    except (KeyError, ValueError) as exc:
        message = exc.args[0] if exc.args else str(exc)
        raise AnsibleFilterError(f"hostkit_runtime_settings: {message}") from None


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"hostkit_runtime_settings": hostkit_runtime_settings}
