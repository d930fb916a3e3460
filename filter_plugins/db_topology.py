"""Jinja filters of the database tier: the replication topology of each cluster (logic in
plugin_utils/db_topology.py) and the MariaDB/MySQL account details the mysql role needs
(module_utils/mysql_flavor.py). Each filter is documented in the .yml file of its name."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from ansible.errors import AnsibleFilterError

from module_utils import mysql_flavor
from plugin_utils import db_topology as topo


def _filter(function: Callable[..., Any]) -> Callable[..., Any]:
    """The function, with a ValueError turned into an AnsibleFilterError."""
    @wraps(function)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except ValueError as exc:
            raise AnsibleFilterError(str(exc)) from None
    return run


def _flavor(flavor: str, version: str) -> mysql_flavor.Flavor:
    if flavor not in (mysql_flavor.MARIADB, mysql_flavor.MYSQL):
        raise ValueError(f"flavor must be '{mysql_flavor.MARIADB}' or '{mysql_flavor.MYSQL}', "
                         f"got {flavor!r}")
    return mysql_flavor.Flavor(flavor, mysql_flavor.parse_version(str(version)))


@_filter
def db_topology(groups: Any, products: Any, live: Any = None) -> dict[str, Any]:
    return topo.build_topology(groups, products, live)


def db_topology_problems(groups: Any, products: Any, live: Any = None) -> list[str]:
    return topo.topology_problems(groups, products, live)


def db_replication_plan(topology: Any, host: str, products: Any = None) -> dict[str, Any]:
    return topo.replication_plan(topology or {}, str(host), products)


def db_cluster_products(products: Any) -> dict[str, list[str]]:
    return topo.cluster_products(products)


def db_seed_donors(topology: Any, host: str) -> list[str]:
    return topo.seed_donors(topology or {}, str(host))


@_filter
def db_server_id(address: str) -> int:
    return topo.server_id(address)


@_filter
def mysql_host_pattern(pattern: str, flavor: str = mysql_flavor.MARIADB,
                       version: str = "10.11") -> str:
    return mysql_flavor.host_pattern(pattern, _flavor(flavor, version))


@_filter
def mysql_privileges(kind: str, flavor: str = mysql_flavor.MARIADB,
                     version: str = "10.11") -> list[str]:
    kinds = {"monitor": mysql_flavor.monitor_privileges,
             "replication": mysql_flavor.replication_privileges,
             "failover": mysql_flavor.failover_privileges}
    if kind not in kinds:
        raise ValueError(f"mysql_privileges: kind must be one of {', '.join(kinds)}, got {kind!r}")
    return kinds[kind](_flavor(flavor, version))


def mysql_settings_to_change(wanted: Any, current: Any) -> dict[str, Any]:
    return mysql_flavor.settings_to_change(dict(wanted or {}), dict(current or {}))


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "db_topology": db_topology,
            "db_topology_problems": db_topology_problems,
            "db_replication_plan": db_replication_plan,
            "db_cluster_products": db_cluster_products,
            "db_seed_donors": db_seed_donors,
            "db_server_id": db_server_id,
            "mysql_host_pattern": mysql_host_pattern,
            "mysql_privileges": mysql_privileges,
            "mysql_settings_to_change": mysql_settings_to_change,
        }
