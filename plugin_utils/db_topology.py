"""The database clusters: which server is the master, the candidate, the slave candidate and
the backup replica of each cluster, and who replicates from whom.

A cluster is named in each product's `database.cluster` (default: the product's own name, a
cluster of its own) and serves every product that names it. A database server belongs to the
cluster of its products (groups `product_<name>`; label io.hostkit.products / tag Product).

Positions come from two places:
- **live**: the global config's `clusters.<name>.db`, once the cluster exists there. It is
  the only truth after bootstrap: a failover, a switchover or a rejoin changes it, and
  nothing here overrides it with the inventory;
- **seed**: for a cluster the live document does not know yet, the inventory groups
  `dbrole_<position>` (label io.hostkit.db_role / tag DbRole).

Every problem is reported with the cluster (or product) and host it concerns, so a playbook
can stop before it changes a server. No Ansible imports; filter_plugins/db_topology.py
exposes the functions to Jinja.
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
LABEL_HINT = "label io.hostkit.db_role / tag DbRole"

Topology = dict[str, dict[str, str | None]]


class TopologyError(ValueError):
    """The topology cannot be built; the message lists every problem."""


def group_name(prefix: str, value: str) -> str:
    """The inventory group Ansible makes for a keyed value (invalid characters become _)."""
    return re.sub(r"[^A-Za-z0-9_]", "_", f"{prefix}{value}")


def _members(groups: Mapping[str, Any], name: str) -> list[str]:
    return [str(h) for h in groups.get(name) or []]


def _quote(hosts: Iterable[str]) -> str:
    return ", ".join(f"'{h}'" for h in hosts)


def product_cluster(product: Mapping[str, Any]) -> str | None:
    """The cluster of a product: `database.cluster`, by default its own name; None for a
    product without a database."""
    database = product.get("database")
    if not isinstance(database, Mapping):
        return None
    return str(database.get("cluster") or product.get("name"))


def cluster_products(products: Any) -> dict[str, list[str]]:
    """Cluster name -> the products on it, in catalog order."""
    out: dict[str, list[str]] = {}
    for product in products or []:
        if isinstance(product, Mapping) and isinstance(product.get("name"), str):
            cluster = product_cluster(product)
            if cluster is not None:
                out.setdefault(cluster, []).append(str(product["name"]))
    return out


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
                                f"({LABEL_HINT}: one of {', '.join(POSITIONS)})")
    return positions


def _host_clusters(groups: Mapping[str, Any], products: list[Mapping[str, Any]],
                   problems: list[str]) -> dict[str, str]:
    """Database host -> its cluster, from its product groups. A host of two clusters, of a
    product without a database or of no product is a problem."""
    db_hosts = set(_members(groups, DB_GROUP))
    by_group = {group_name(PRODUCT_GROUP_PREFIX, str(p["name"])): p for p in products}
    seen: dict[str, set[str]] = {}
    for group in sorted(groups):
        if not group.startswith(PRODUCT_GROUP_PREFIX):
            continue
        hosts = sorted(db_hosts & set(_members(groups, group)))
        product = by_group.get(group)
        if product is None:
            problems += [f"host '{h}': serves the database of product "
                         f"'{group[len(PRODUCT_GROUP_PREFIX):]}', which platform_products "
                         "does not describe" for h in hosts]
            continue
        cluster = product_cluster(product)
        for host in hosts:
            if cluster is None:
                problems.append(f"host '{host}': is a database server of product "
                                f"'{product['name']}', which has no database (field 'database')")
            else:
                seen.setdefault(host, set()).add(cluster)
    out: dict[str, str] = {}
    for host in sorted(db_hosts):
        clusters = sorted(seen.get(host, set()))
        if not clusters:
            problems.append(f"host '{host}': is a database server (group {DB_GROUP}) of no "
                            "product (label io.hostkit.products / tag Product)")
        elif len(clusters) > 1:
            problems.append(f"host '{host}': serves products of several database clusters "
                            f"({', '.join(clusters)}); a server belongs to one cluster")
        else:
            out[host] = clusters[0]
    return out


def _seed(name: str, members: list[str], host_positions: Mapping[str, list[str]],
          problems: list[str]) -> dict[str, list[str]]:
    cluster: dict[str, list[str]] = {p: [] for p in POSITIONS}
    for host in members:
        positions = host_positions.get(host, [])
        if not positions:
            problems.append(f"cluster '{name}': database server '{host}' has no database "
                            f"position ({LABEL_HINT}: one of {', '.join(POSITIONS)})")
        for position in positions:  # several positions: each is checked (two masters, ...)
            cluster[position].append(host)
    return cluster


def _live(name: str, positions: Any, db_hosts: set[str], problems: list[str]
          ) -> dict[str, list[str]]:
    cluster: dict[str, list[str]] = {p: [] for p in POSITIONS}
    if not isinstance(positions, Mapping):
        problems.append(f"cluster '{name}': the live positions must map positions "
                        f"({', '.join(POSITIONS)}) to hosts")
        return cluster
    for position, host in positions.items():
        if position not in POSITIONS:
            problems.append(f"cluster '{name}': unknown database position '{position}' in the "
                            f"live positions (one of {', '.join(POSITIONS)})")
            continue
        if host in (None, ""):
            continue
        if not isinstance(host, str):
            problems.append(f"cluster '{name}': position '{position}' must name a host, "
                            f"got {host!r}")
        elif db_hosts and host not in db_hosts:
            problems.append(f"cluster '{name}': host '{host}' ({position} in the live "
                            f"positions) is not a database server (group {DB_GROUP})")
        else:
            cluster[position].append(host)
    return cluster


def _check(name: str, cluster: Mapping[str, list[str]], products: list[Mapping[str, Any]],
           problems: list[str]) -> None:
    seen: dict[str, str] = {}
    for position in POSITIONS:
        if len(cluster[position]) > 1:
            label = "two masters" if position == "master" and len(cluster[position]) == 2 \
                else f"more than one {position}"
            problems.append(f"cluster '{name}': {label}: {_quote(cluster[position])}")
        for host in cluster[position]:
            if host in seen:
                problems.append(f"cluster '{name}': host '{host}' holds two positions "
                                f"({seen[host]} and {position})")
            seen.setdefault(host, position)
    for position, source in SOURCE_OF.items():
        if cluster[position] and not cluster[source]:
            for host in cluster[position]:
                problems.append(f"cluster '{name}': host '{host}' is the {position} but the "
                                f"cluster has no {source} for it to replicate from")
    hosts = [h for p in POSITIONS for h in cluster[p]]
    for product in products:
        database = product.get("database")
        db_name = database.get("name") if isinstance(database, Mapping) else None
        if hosts and not (isinstance(db_name, str) and db_name.strip()):
            problems.append(f"product '{product['name']}': has database servers "
                            f"({_quote(hosts)}) but no database name (field 'database.name')")


def _analyse(groups: Any, products: Any, live: Any) -> tuple[Topology, list[str]]:
    problems: list[str] = []
    if not isinstance(groups, Mapping):
        return {}, ["the inventory groups must be a mapping of group name to hosts"]
    if live is not None and not isinstance(live, Mapping):
        return {}, ["the live positions must map cluster names to positions"]
    live = live_positions(live or {})
    catalog = [p for p in products or [] if isinstance(p, Mapping)
               and isinstance(p.get("name"), str)]
    clusters = cluster_products(catalog)
    by_name = {str(p["name"]): p for p in catalog}
    host_positions = _inventory_positions(groups, problems)
    db_hosts = set(_members(groups, DB_GROUP))
    for host, positions in sorted(host_positions.items()):
        if host not in db_hosts:
            problems.append(f"host '{host}': has database position '{positions[0]}' but is "
                            f"not a database server (group {DB_GROUP})")
    host_cluster = _host_clusters(groups, catalog, problems)
    for name in sorted(set(live) - set(clusters)):
        positions = live[name]
        if not isinstance(positions, Mapping) or any(positions.values()):
            problems.append(f"cluster '{name}': in the live positions but no product of "
                            "platform_products names it (field 'database.cluster')")
    topology: Topology = {}
    for name, names in clusters.items():
        known = live.get(name)
        if name in live and (not isinstance(known, Mapping) or any(known.values())):
            cluster = _live(name, known, db_hosts, problems)
        else:
            members = sorted(h for h, c in host_cluster.items() if c == name)
            cluster = _seed(name, members, host_positions, problems)
        if not any(cluster.values()):
            continue
        _check(name, cluster, [by_name[n] for n in names], problems)
        topology[name] = {p: (cluster[p][0] if cluster[p] else None) for p in POSITIONS}
    return topology, list(dict.fromkeys(problems))


def topology_problems(groups: Any, products: Any, live: Any = None) -> list[str]:
    """Every problem of the topology (empty when it is fine), each naming cluster or product
    and host."""
    return _analyse(groups, products, live)[1]


def build_topology(groups: Any, products: Any, live: Any = None) -> Topology:
    """{cluster: {master, candidate, slave_candidate, backup}} (host names, None where a
    position is empty) for every cluster with database servers: the live positions of a
    cluster the global config knows (`live`: its `clusters`, name -> {'db': positions} or
    name -> positions), the inventory's for the others. Raises TopologyError listing every
    problem."""
    topology, problems = _analyse(groups, products, live)
    if problems:
        raise TopologyError("database topology: " + "; ".join(problems))
    return topology


def live_positions(clusters: Any) -> dict[str, Any]:
    """name -> positions, from the global config's `clusters` (entries {'db': positions})
    or from a mapping that already gives positions."""
    if not isinstance(clusters, Mapping):
        return {}
    return {str(name): (entry.get("db") if isinstance(entry, Mapping) and "db" in entry
                        else entry) for name, entry in clusters.items()}


def replication_plan(topology: Mapping[str, Mapping[str, Any]], host: str,
                     products: Any = None) -> dict[str, Any]:
    """What `host` is: cluster and position (None when it holds no position), source (the
    host it replicates from, None for the master), peers (every host of its cluster, itself
    included) and, with the catalog `products`, the products of its cluster."""
    for name, cluster in sorted(topology.items()):
        for pos in POSITIONS:
            if cluster.get(pos) == host:
                source = cluster.get(SOURCE_OF[pos]) if pos in SOURCE_OF else None
                return {"cluster": name, "position": pos, "source": source,
                        "products": cluster_products(products).get(name, []),
                        "peers": [h for h in (cluster.get(p) for p in POSITIONS) if h]}
    return {"cluster": None, "position": None, "source": None, "products": [], "peers": []}


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
    cluster = topology[plan["cluster"]]
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
