"""The database topology of each product: which server is the master, the candidate, the slave
candidate and the backup replica, and who replicates from whom.

It is derived from the inventory: group `role_db` (the database servers), groups
`dbrole_<position>` (label io.hostkit.db_role / tag DbRole) and `product_<name>` (the products
a server's databases belong to); an override mapping (later: the global config's
`products.<name>.db`, the same shape) replaces a product's inventory positions. Every problem
is reported with the product and host it concerns, so a playbook can stop before it changes a
server. No Ansible imports; filter_plugins/db_topology.py exposes the functions to Jinja.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from typing import Any

POSITIONS = ("master", "candidate", "slave_candidate", "backup")
# position -> the position it replicates from
SOURCE_OF = {"candidate": "master", "backup": "master", "slave_candidate": "candidate"}
# Preferred donors for seeding a new replica, most preferred first: the backup replica exists
# to be copied, the candidate is kept free of extra load because it acknowledges the master's
# commits.
DONOR_PREFERENCE = ("backup", "slave_candidate", "candidate")
DB_GROUP = "role_db"
POSITION_GROUP_PREFIX = "dbrole_"
PRODUCT_GROUP_PREFIX = "product_"

Topology = dict[str, dict[str, str | None]]


class TopologyError(ValueError):
    """The topology cannot be built; the message lists every problem."""


def group_name(prefix: str, value: str) -> str:
    """The inventory group Ansible makes for a keyed value (invalid characters become _)."""
    return re.sub(r"[^A-Za-z0-9_]", "_", f"{prefix}{value}")


def _members(groups: Mapping[str, Any], name: str) -> list[str]:
    return [str(h) for h in groups.get(name) or []]


def _products_by_name(products: Any) -> dict[str, Mapping[str, Any]]:
    return {str(p["name"]): p for p in products or []
            if isinstance(p, Mapping) and isinstance(p.get("name"), str)}


def _quote(hosts: Iterable[str]) -> str:
    return ", ".join(f"'{h}'" for h in hosts)


def _inventory_positions(groups: Mapping[str, Any], problems: list[str]) -> dict[str, list[str]]:
    """host -> positions from the dbrole_<position> groups; unknown positions are problems."""
    positions: dict[str, list[str]] = {}
    for group in sorted(groups):
        if not group.startswith(POSITION_GROUP_PREFIX):
            continue
        position = group[len(POSITION_GROUP_PREFIX):]
        for host in _members(groups, group):
            if position in POSITIONS:
                positions.setdefault(host, []).append(position)
            else:
                problems.append(f"host '{host}': unknown database position '{position}' "
                                f"(label io.hostkit.db_role / tag DbRole: one of "
                                f"{', '.join(POSITIONS)})")
    return positions


def _product_groups(groups: Mapping[str, Any], products: Mapping[str, Any]) -> dict[str, str]:
    """group name -> product name, for the products of the catalog."""
    return {group_name(PRODUCT_GROUP_PREFIX, name): name for name in products}


def _check_hosts(groups: Mapping[str, Any], products: Mapping[str, Any],
                 host_positions: Mapping[str, list[str]], problems: list[str]) -> None:
    """Problems of single hosts: a position but not a database server, a database server of
    no known product. (Several positions are reported per product by _check_cluster.)"""
    db_hosts = set(_members(groups, DB_GROUP))
    known_groups = _product_groups(groups, products)
    for host, positions in sorted(host_positions.items()):
        if host not in db_hosts:
            problems.append(f"host '{host}': has database position '{positions[0]}' but is not "
                            f"a database server (group {DB_GROUP})")
    for group in sorted(groups):
        if group.startswith(PRODUCT_GROUP_PREFIX) and group not in known_groups:
            for host in sorted(db_hosts & set(_members(groups, group))):
                problems.append(f"host '{host}': serves the database of product "
                                f"'{group[len(PRODUCT_GROUP_PREFIX):]}', which platform_products "
                                "does not describe")
    in_products = {h for g in known_groups for h in _members(groups, g)}
    for host in sorted(db_hosts - in_products):
        problems.append(f"host '{host}': is a database server (group {DB_GROUP}) of no product "
                        "(label io.hostkit.products / tag Product)")


def _cluster_from_inventory(name: str, members: list[str],
                            host_positions: Mapping[str, list[str]],
                            problems: list[str]) -> dict[str, list[str]]:
    cluster: dict[str, list[str]] = {p: [] for p in POSITIONS}
    for host in members:
        positions = host_positions.get(host, [])
        if not positions:
            problems.append(f"product '{name}': database server '{host}' has no database "
                            f"position (label io.hostkit.db_role / tag DbRole: one of "
                            f"{', '.join(POSITIONS)})")
        for position in positions:  # several positions: each is checked (two masters, ...)
            cluster[position].append(host)
    return cluster


def _cluster_from_override(name: str, override: Any, db_hosts: set[str],
                           problems: list[str]) -> dict[str, list[str]]:
    cluster: dict[str, list[str]] = {p: [] for p in POSITIONS}
    if not isinstance(override, Mapping):
        problems.append(f"product '{name}': the topology override must map positions "
                        f"({', '.join(POSITIONS)}) to hosts")
        return cluster
    for position, host in override.items():
        if position not in POSITIONS:
            problems.append(f"product '{name}': unknown database position '{position}' in the "
                            f"topology override (one of {', '.join(POSITIONS)})")
            continue
        for item in host if isinstance(host, list) else [host]:
            if item in (None, ""):
                continue
            if not isinstance(item, str):
                problems.append(f"product '{name}': position '{position}' of the topology "
                                f"override must name a host, got {item!r}")
            elif db_hosts and item not in db_hosts:
                problems.append(f"product '{name}': host '{item}' ({position} in the topology "
                                f"override) is not a database server (group {DB_GROUP})")
            else:
                cluster[position].append(item)
    return cluster


def _check_cluster(name: str, product: Mapping[str, Any], cluster: Mapping[str, list[str]],
                   problems: list[str]) -> None:
    hosts = [h for p in POSITIONS for h in cluster[p]]
    seen: dict[str, str] = {}
    for position in POSITIONS:
        if len(cluster[position]) > 1:
            label = "two masters" if position == "master" and len(cluster[position]) == 2 \
                else f"more than one {position}"
            problems.append(f"product '{name}': {label}: {_quote(cluster[position])}")
        for host in cluster[position]:
            if host in seen:
                problems.append(f"product '{name}': host '{host}' holds two positions "
                                f"({seen[host]} and {position})")
            seen.setdefault(host, position)
    for position, source in SOURCE_OF.items():
        if cluster[position] and not cluster[source]:
            for host in cluster[position]:
                problems.append(f"product '{name}': host '{host}' is the {position} but the "
                                f"product has no {source} for it to replicate from")
    database = product.get("database")
    db_name = database.get("name") if isinstance(database, Mapping) else None
    if hosts and not (isinstance(db_name, str) and db_name.strip()):
        problems.append(f"product '{name}': has database servers ({_quote(hosts)}) but no "
                        "database name (field 'database.name')")


def _check_hosts_across_products(topology: Mapping[str, Mapping[str, Any]],
                                 problems: list[str]) -> None:
    """A server has one position and one source, whichever products it serves."""
    roles: dict[str, dict[tuple[str, str | None], list[str]]] = {}
    for product, cluster in sorted(topology.items()):
        for position in POSITIONS:
            host = cluster.get(position)
            if host:
                source = cluster.get(SOURCE_OF[position]) if position in SOURCE_OF else None
                roles.setdefault(host, {}).setdefault((position, source), []).append(product)
    for host, variants in sorted(roles.items()):
        if len(variants) > 1:
            described = "; ".join(
                f"{pos}{' of ' + src if src else ''} for {', '.join(prods)}"
                for (pos, src), prods in variants.items())
            problems.append(f"host '{host}': different positions or sources for different "
                            f"products ({described}); one server has one position")


def _analyse(groups: Any, products: Any, overrides: Any) -> tuple[Topology, list[str]]:
    problems: list[str] = []
    if not isinstance(groups, Mapping):
        return {}, ["the inventory groups must be a mapping of group name to hosts"]
    overrides = overrides or {}
    if not isinstance(overrides, Mapping):
        return {}, ["the topology override must map product names to positions"]
    catalog = _products_by_name(products)
    host_positions = _inventory_positions(groups, problems)
    _check_hosts(groups, catalog, host_positions, problems)
    db_hosts = set(_members(groups, DB_GROUP))
    for name in sorted(set(overrides) - set(catalog)):
        problems.append(f"product '{name}': in the topology override but not in "
                        "platform_products")
    topology: Topology = {}
    for name, product in catalog.items():
        if name in overrides:
            cluster = _cluster_from_override(name, overrides[name], db_hosts, problems)
        else:
            members = [h for h in _members(groups, group_name(PRODUCT_GROUP_PREFIX, name))
                       if h in db_hosts]
            cluster = _cluster_from_inventory(name, members, host_positions, problems)
        if not any(cluster.values()):
            continue
        _check_cluster(name, product, cluster, problems)
        topology[name] = {p: (cluster[p][0] if cluster[p] else None) for p in POSITIONS}
    _check_hosts_across_products(topology, problems)
    return topology, list(dict.fromkeys(problems))


def topology_problems(groups: Any, products: Any, overrides: Any = None) -> list[str]:
    """Every problem of the topology (empty when it is fine), each naming product and host."""
    return _analyse(groups, products, overrides)[1]


def build_topology(groups: Any, products: Any, overrides: Any = None) -> Topology:
    """{product: {master, candidate, slave_candidate, backup}} (host names, None where a
    position is empty) for every product with database servers. Raises TopologyError listing
    every problem."""
    topology, problems = _analyse(groups, products, overrides)
    if problems:
        raise TopologyError("database topology: " + "; ".join(problems))
    return topology


def replication_plan(topology: Mapping[str, Mapping[str, Any]], host: str) -> dict[str, Any]:
    """What `host` is: position (None when it is in no product's cluster), source (the host it
    replicates from, None for the master), products (whose clusters it is in) and peers (every
    host of those clusters, itself included)."""
    position: str | None = None
    source: str | None = None
    products: list[str] = []
    peers: list[str] = []
    for product, cluster in sorted(topology.items()):
        for pos in POSITIONS:
            if cluster.get(pos) == host:
                position = pos
                source = cluster.get(SOURCE_OF[pos]) if pos in SOURCE_OF else None
                products.append(product)
                peers += [h for h in (cluster.get(p) for p in POSITIONS) if h]
    return {"position": position, "source": source, "products": products,
            "peers": list(dict.fromkeys(peers))}


def _downstream(cluster: Mapping[str, Any], position: str) -> list[str]:
    """Positions that replicate, directly or through others, from `position`."""
    below = [p for p, s in SOURCE_OF.items() if s == position]
    return below + [q for p in below for q in _downstream(cluster, p)]


def seed_donors(topology: Mapping[str, Mapping[str, Any]], host: str) -> list[str]:
    """Servers a new, empty `host` may be copied from, most preferred first: replicas below
    its source (never ahead of the source, so the copy's GTID position is one the source can
    continue from), the source itself last when it is the master. The host and anything
    below it are never donors."""
    plan = replication_plan(topology, host)
    if plan["position"] is None or plan["source"] is None:
        return []
    cluster = topology[plan["products"][0]]
    source_position = SOURCE_OF[plan["position"]]
    excluded = {plan["position"], *_downstream(cluster, plan["position"])}
    allowed = set(_downstream(cluster, source_position)) | {source_position}
    donors = [cluster.get(p) for p in DONOR_PREFERENCE if p in allowed and p not in excluded]
    if source_position == "master":
        donors.append(cluster.get("master"))
    return [d for d in dict.fromkeys(donors) if d and d != host]


def server_id(address: str) -> int:
    """A server_id derived from the server's IPv4 address: the address as a 32-bit number.
    Distinct addresses give distinct ids, the same server always gets the same one, and the
    id reads back as the address (server_id 2887647235 is 172.30.0.3)."""
    try:
        value = int(ipaddress.IPv4Address(str(address).strip()))
    except ValueError:
        raise ValueError(f"cannot derive a server_id from {address!r}: not an IPv4 address "
                         "(set mysql_server_id)") from None
    if value == 0:
        raise ValueError("cannot derive a server_id from 0.0.0.0 (set mysql_server_id)")
    return value
