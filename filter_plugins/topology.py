"""Jinja filters over the global config document (logic in host_programs/common/topology.py), so
that templates and playbooks ask questions of the fleet instead of walking the JSON.
Each filter is documented in the .yml file of its name beside this one."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from ansible.errors import AnsibleFilterError

from host_programs.common import topology


def _filter(function: Callable[..., Any]) -> Callable[..., Any]:
    """The function, with its ValueError/KeyError turned into an AnsibleFilterError that
    names the filter."""
    @wraps(function)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except (ValueError, KeyError) as exc:
            message = exc.args[0] if exc.args else str(exc)
            raise AnsibleFilterError(f"{function.__name__}: {message}") from None
    return run


least_loaded_az = _filter(topology.least_loaded_az)
servers_of = _filter(topology.servers_of)
product_db_address = _filter(topology.product_db_address)
product_db_server = _filter(topology.product_db_server)
product_member_addresses = _filter(topology.product_member_addresses)


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "least_loaded_az": least_loaded_az,
            "servers_of": servers_of,
            "product_db_address": product_db_address,
            "product_db_server": product_db_server,
            "product_member_addresses": product_member_addresses,
        }
