"""Settings checks of role mysql (tasks/validate.yml): this server's source in the topology,
the address it listens on, and the role's own settings."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from plugin_utils.product_trust import database_name_problem, database_user_problem
from plugin_utils.role_checks.common import jinja_items, one_of, whole_number_as_written

IPV4 = re.compile(r"^([0-9]{1,3}[.]){3}[0-9]{1,3}$")


def source_address(host: str, plan: Mapping[str, Any], address: Any) -> list[str]:
    """A replica's source needs an IPv4 address in this run (MASTER_HOST)."""
    if plan.get("source") and not IPV4.match(str(address)):
        return [f"host {host} ({plan.get('position')}) replicates from {plan.get('source')}, "
                "which has no IPv4 address in this run (gather its facts: run the play on "
                "role_db)"]
    return []


def bind_address(settings: Mapping[str, Any], host_addresses: Iterable[str]) -> list[str]:
    """mysql_bind_address is, as written, an IPv4 address of this host or 127.0.0.1."""
    value = str(settings.get("mysql_bind_address"))
    known = [*(str(a) for a in host_addresses), "127.0.0.1"]
    if value not in known:
        return [f"mysql_bind_address {value or repr('')} is not an IPv4 address of this host "
                f"({', '.join(known)})"]
    return []


def app_hosts(settings: Mapping[str, Any]) -> list[str]:
    """mysql_app_hosts maps names of products of mysql_products to host patterns."""
    value = settings.get("mysql_app_hosts")
    if not isinstance(value, Mapping):
        return [f"mysql_app_hosts must map product names to lists of host patterns, "
                f"got {value!r}"]
    names = [p["name"] for p in jinja_items(settings.get("mysql_products")) or []
             if isinstance(p, Mapping) and "name" in p]
    return [f"mysql_app_hosts names product {product}, which platform_products does not "
            "describe" for product in value if product not in names]


PLATFORM_ACCOUNTS = ("mysql_replication_user", "mysql_monitor_user", "mysql_failover_user")


def product_databases(settings: Mapping[str, Any]) -> list[str]:
    """Each product's database name and account, as the role writes them into GRANTs:
    plain identifiers, no system schema, no root or platform account (the product filter
    checks the same; this is the role's own guard, for whatever reaches mysql_products)."""
    platform = [str(settings.get(name)) for name in PLATFORM_ACCOUNTS if settings.get(name)]
    found = []
    for product in jinja_items(settings.get("mysql_products")) or []:
        database = product.get("database") if isinstance(product, Mapping) else None
        if not isinstance(database, Mapping):
            continue
        name = product.get("name")
        if database.get("name") is not None:
            problem = database_name_problem(database.get("name"))
            if problem:
                found.append(f"product '{name}': field 'database.name' {problem}")
        problem = database_user_problem(database.get("user") or name, platform)
        if problem:
            found.append(f"product '{name}': field 'database.user' {problem}")
    return found


def problems(settings: Mapping[str, Any], host_addresses: Iterable[str] = (),
             host: str = "", plan: Mapping[str, Any] | None = None,
             source: Any = "") -> list[str]:
    """`host_addresses`: the host's IPv4 addresses; `host`: its inventory name; `plan`: its
    place in the topology (position, source host); `source`: the source's address."""
    return [
        *source_address(host, plan or {}, source),
        *bind_address(settings, host_addresses),
        *whole_number_as_written(settings, "mysql_port", 1, 65535),
        *whole_number_as_written(settings, "mysql_server_id", 1, 4294967295),
        *one_of(settings, "mysql_password_source", ["local", "ssm"]),
        *app_hosts(settings),
        *product_databases(settings),
    ]
