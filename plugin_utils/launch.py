"""Planning a web launch: how many servers, in which zones, under which names.

Pure functions over the global config document (no Ansible imports); the filter
`hostkit_plan_web_launch` (filter_plugins/launch.py) gives them to playbooks/launch_web.yml.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from host_programs.common.topology import least_loaded_az

NAME_PREFIX = "hostkit-web"


class LaunchPlanError(ValueError):
    """The launch asked for cannot be planned; the message names the argument."""


def _count(value: Any, current: int) -> int:
    if value is None or value == "":
        return current + 1
    try:
        count = int(value)
    except (TypeError, ValueError):
        raise LaunchPlanError(f"count must be a whole number, got {value!r}") from None
    if count < 1:
        raise LaunchPlanError(f"count must be at least 1, got {count}")
    return count


def _names(prefix: str, taken: set[str]) -> Iterable[str]:
    """hostkit-web-1, -2, ...: the lowest numbers nobody uses."""
    number = 1
    while True:
        name = f"{prefix}-{number}"
        if name not in taken:
            yield name
        number += 1


def in_service_web(doc: Mapping[str, Any], product: str) -> list[str]:
    servers = doc.get("servers") or {}
    return sorted(sid for sid, s in servers.items()
                  if s.get("role") == "web" and product in (s.get("products") or [])
                  and s.get("state") == "in_service")


def plan_web_launch(doc: Mapping[str, Any], product: str, zones: Iterable[str],
                    taken: Iterable[str] = (), count: Any = None, az: str | None = None,
                    prefix: str = NAME_PREFIX) -> dict[str, Any]:
    """{product, count, current, new: [{name, az}]}: the servers to launch so that
    `product` has `count` web servers in service (default: one more than now)."""
    zones = [str(z) for z in zones or []]
    if not zones:
        raise LaunchPlanError("no availability zones to launch into (hostkit_availability_zones)")
    if az and az not in zones:
        raise LaunchPlanError(f"az '{az}' is not one of the platform's zones ({', '.join(zones)})")
    if not re.fullmatch(r"[a-z][a-z0-9-]*", prefix):
        raise LaunchPlanError(f"name prefix '{prefix}' is not a valid host name prefix")
    current = in_service_web(doc, product)
    target = _count(count, len(current))
    servers = {sid: dict(s) for sid, s in (doc.get("servers") or {}).items()}
    names = _names(prefix, set(servers) | {str(t) for t in taken})
    new = []
    for _ in range(max(0, target - len(current))):
        zone = az or least_loaded_az(servers, "web", zones)
        name = next(names)
        servers[name] = {"role": "web", "az": zone, "state": "provisioning"}
        new.append({"name": name, "az": zone})
    return {"product": product, "count": target, "current": current, "new": new}


def traffic_sites(doc: Mapping[str, Any], products: Iterable[Mapping[str, Any]]
                  ) -> list[dict[str, Any]]:
    """The traffic list of every product the document knows: its domains, health-check path
    and web servers in service (name + address). The edge (sandbox) and Route53 records
    (production) are written from it."""
    servers = doc.get("servers") or {}
    sites = []
    for product in products:
        entry = (doc.get("products") or {}).get(product["name"])
        if entry is None:
            continue
        members = [{"name": sid, "address": servers[sid]["address"]}
                   for sid in entry.get("web") or []
                   if sid in servers and servers[sid].get("state") == "in_service"]
        sites.append({"name": product["name"], "domains": list(product["domains"]),
                      "healthcheck": product.get("healthcheck", "/"), "servers": members})
    return sites


PHASES = ("plan", "create", "connect", "roles", "smoke", "config", "publish")


def next_phase(done: Iterable[str], phases: Iterable[str]) -> str:
    """The first of `phases` not in `done`: where a run stopped."""
    finished = set(done)
    return next((p for p in phases if p not in finished), "after the last phase")


def timeline(marks: Mapping[str, Any], host_marks: Iterable[Mapping[str, Any]] = ()
             ) -> list[str]:
    """Lines "phase  seconds  cumulative" from time stamps of phase ends. `marks` has
    `start` and the controller's phases; `host_marks` the new servers' own (the slowest
    server's time counts)."""
    ends: dict[str, float] = {k: float(v) for k, v in marks.items()}
    for host in host_marks:
        for phase, stamp in (host or {}).items():
            ends[phase] = max(ends.get(phase, 0.0), float(stamp))
    start = ends.pop("start")
    lines, previous = [], start
    for phase in PHASES:
        if phase in ends:
            lines.append(f"{phase:<8} {ends[phase] - previous:6.1f} s  "
                         f"(at {ends[phase] - start:6.1f} s)")
            previous = ends[phase]
    lines.append(f"{'total':<8} {previous - start:6.1f} s")
    return lines


def haproxy_servers_up(csv_text: str) -> list[str]:
    """Names of the servers HAProxy's stats CSV shows UP (any backend)."""
    lines = [line for line in csv_text.splitlines() if line.strip()]
    if not lines or not lines[0].startswith("# "):
        return []
    header = lines[0][2:].split(",")
    try:
        svname, status = header.index("svname"), header.index("status")
    except ValueError:
        return []
    up = []
    for line in lines[1:]:
        fields = line.split(",")
        if len(fields) > status and fields[svname] not in ("FRONTEND", "BACKEND") \
                and fields[status] == "UP":
            up.append(fields[svname])
    return up


def traffic_records(sites: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One entry per domain with the servers that answer it (DNS view of the sites)."""
    return [{"domain": domain, "servers": list(site.get("servers") or [])}
            for site in sites for domain in site.get("domains") or []]


DB_POSITIONS = ("master", "candidate", "slave_candidate", "backup")


def _product_cluster(product: Mapping[str, Any]) -> str | None:
    database = product.get("database")
    if not isinstance(database, Mapping):
        return None
    return str(database.get("cluster") or product.get("name"))


def _seed_positions(groups: Mapping[str, Iterable[str]], cluster: str,
                    names: Sequence[str]) -> dict[str, str | None]:
    """A new cluster's positions from the labels (groups dbrole_<position>) of the hosts of
    its products (groups product_<name>); one host per position."""
    members = {h for n in names for h in groups.get(f"product_{n}") or []}
    db: dict[str, str | None] = {}
    for position in DB_POSITIONS:
        holders = sorted(members & set(groups.get(f"dbrole_{position}") or []))
        if len(holders) > 1:
            raise ValueError(f"cluster '{cluster}': db position {position} is held by "
                             f"{len(holders)} hosts ({', '.join(holders)})")
        db[position] = holders[0] if holders else None
    return db


def cluster_plan(groups: Mapping[str, Iterable[str]], products: Iterable[Mapping[str, Any]],
                 doc: Mapping[str, Any]) -> dict[str, Any]:
    """What site.yml writes about the database clusters so that the global config follows
    products.yml (each product's `database.cluster`, default its own name), never against the
    live positions:

    - renames: [old, new] for a live cluster whose products all want another name that no
      cluster has yet (a document upgraded from version 1 named each cluster after a product);
    - products: [{name, cluster}] for a product on no cluster, or on one without servers;
    - clusters: [{name, db}] initial positions, from the labels, of every cluster that has
      no master yet (once a cluster has positions only failovers, switchovers and rejoins
      change them).

    A product whose live cluster has servers and is not the one products.yml names would have
    to move its data: ValueError naming it (nothing is written)."""
    desired = {str(p["name"]): c for p in products if (c := _product_cluster(p)) is not None}
    live_clusters = {name: dict(entry.get("db") or {})
                     for name, entry in (doc.get("clusters") or {}).items()}
    live_product = {name: (entry or {}).get("cluster")
                    for name, entry in (doc.get("products") or {}).items()}
    problems: list[str] = []
    renames: list[list[str]] = []
    for old in sorted(live_clusters):
        users = sorted(p for p, c in live_product.items() if c == old and p in desired)
        wanted = sorted({desired[p] for p in users})
        if len(wanted) == 1 and wanted[0] != old:
            if wanted[0] in live_clusters:
                if any(live_clusters[old].values()) and any(live_clusters[wanted[0]].values()):
                    continue  # both hold servers: reported below, product by product
            else:
                renames.append([old, wanted[0]])
                live_clusters[wanted[0]] = live_clusters.pop(old)
                live_product.update({p: wanted[0] for p in users})
    assign: list[dict[str, str]] = []
    for name, cluster in desired.items():
        current = live_product.get(name)
        if current == cluster:
            continue
        if current is not None and any(live_clusters.get(current, {}).values()):
            problems.append(f"product '{name}': its database is on cluster '{current}' (global "
                            f"config), products.yml names cluster '{cluster}': moving a "
                            "database between clusters is not automated (copy the data, then "
                            "change products.yml or the global config)")
            continue
        assign.append({"name": name, "cluster": cluster})
    if problems:
        raise ValueError("; ".join(problems))
    initial = []
    by_cluster: dict[str, list[str]] = {}
    for name, cluster in desired.items():
        by_cluster.setdefault(cluster, []).append(name)
    for cluster, names in sorted(by_cluster.items()):
        if (live_clusters.get(cluster) or {}).get("master"):
            continue
        db = _seed_positions(groups, cluster, names)
        if db["master"]:
            initial.append({"name": cluster, "db": db})
    return {"renames": renames, "products": assign, "clusters": initial}


# Free positions are filled in this order (the master never: only a failover or a
# switchover names one).
FILL_ORDER = ("candidate", "slave_candidate", "backup")
SOURCE_OF = {"candidate": "master", "backup": "master", "slave_candidate": "candidate"}


def db_place_plan(doc: Mapping[str, Any], host: str, position: str | None = None,
                  cluster: str | None = None) -> dict[str, Any]:
    """Where a database server goes in its cluster (rejoin.yml, launch.yml -e role=db):

    - a server the global config knows (a fenced old master, or one that diverged): its
      cluster (cluster_of_server), and its own position when it still holds one;
    - a new server: `cluster` must be given.
    The position is `position` when given (it must be free, or the server's own), else the
    server's own, else the first free one of candidate, slave_candidate, backup. Its source
    must hold its position already. Returns {host, cluster, products, position, source,
    fenced, known, positions (the cluster's, with the server placed)}; ValueError naming
    the reason otherwise (nothing is changed)."""
    from module_utils.global_config import cluster_of_server, cluster_products

    servers = doc.get("servers") or {}
    clusters = doc.get("clusters") or {}
    entry = servers.get(host)
    if entry is not None and entry.get("role") != "db":
        raise ValueError(f"{host} is a {entry.get('role')} server, not a database server")
    known = cluster_of_server(doc, host) if entry is not None else None
    if cluster and known and cluster != known:
        raise ValueError(f"{host} belongs to cluster '{known}', not '{cluster}'")
    name = cluster or known
    if not name:
        raise ValueError(f"{host} is in no database cluster of the global config: say which "
                         "with -e cluster=NAME")
    if name not in clusters:
        raise ValueError(f"cluster '{name}' is not in the global config (known: "
                         f"{', '.join(sorted(clusters)) or 'none'})")
    positions = dict(clusters[name].get("db") or {})
    own = next((p for p, h in positions.items() if h == host), None)
    if own == "master":
        raise ValueError(f"{host} is the master of cluster '{name}': nothing to rejoin (a "
                         "master moves only by a switchover)")
    if position is not None:
        if position not in SOURCE_OF:
            raise ValueError(f"position must be one of {', '.join(FILL_ORDER)} (a master is "
                             f"named only by a failover or a switchover), got '{position}'")
        if positions.get(position) not in (None, host):
            raise ValueError(f"position {position} of cluster '{name}' is held by "
                             f"{positions[position]}")
        chosen = position
    elif own is not None:
        chosen = own
    else:
        free = [p for p in FILL_ORDER if not positions.get(p)]
        if not free:
            raise ValueError(f"cluster '{name}' has no free position (positions: "
                             + ", ".join(f"{p} {h}" for p, h in positions.items()) + ")")
        chosen = free[0]
    source = positions.get(SOURCE_OF[chosen])
    if not source:
        raise ValueError(f"cluster '{name}' has no {SOURCE_OF[chosen]} for a "
                         f"{chosen} to replicate from")
    if source == host:
        raise ValueError(f"{host} is the {own} of cluster '{name}', which a {chosen} "
                         "replicates from: it cannot replicate from itself")
    if own is not None and own != chosen:
        positions[own] = None
    positions[chosen] = host
    return {"host": host, "cluster": name, "products": cluster_products(doc).get(name, []),
            "position": chosen, "source": source,
            "fenced": (entry or {}).get("state") == "fenced", "known": entry is not None,
            "positions": positions}


ROLE_PREFIXES = {"db": "hostkit-db", "memcached": "hostkit-mc", "monitor": "hostkit-monitor"}


def plan_role_launch(doc: Mapping[str, Any], role: str, zones: Iterable[str],
                     taken: Iterable[str] = (), az: str | None = None,
                     products: Iterable[str] | None = None, cluster: str | None = None,
                     position: str | None = None,
                     catalog: Iterable[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """One new server of `role` (db, memcached, monitor; web servers: plan_web_launch):
    {name, role, az, products, and for a database server cluster, position, source}.

    The zone is `az`, else the one with the fewest servers of the role; the name the lowest
    free hostkit-<db|mc|monitor>-N. A database server goes into a free position of `cluster`
    (db_place_plan) and serves the cluster's products; a memcached server joins the pool of
    `products` (default: the products of the memcached servers in service, else every
    product of `catalog` that uses memcached); a monitor serves no product."""
    if role not in ROLE_PREFIXES:
        raise LaunchPlanError(f"role must be one of {', '.join(ROLE_PREFIXES)} (web servers: "
                              f"launch_web.yml), got '{role}'")
    zones = [str(z) for z in zones or []]
    if not zones:
        raise LaunchPlanError("no availability zones to launch into (hostkit_availability_zones)")
    if az and az not in zones:
        raise LaunchPlanError(f"az '{az}' is not one of the platform's zones ({', '.join(zones)})")
    servers = doc.get("servers") or {}
    name = next(_names(ROLE_PREFIXES[role], set(servers) | {str(x) for x in taken}))
    plan: dict[str, Any] = {"name": name, "role": role,
                            "az": az or least_loaded_az(servers, role, zones), "products": []}
    known = set(doc.get("products") or {})
    if role == "db":
        if not cluster:
            raise LaunchPlanError("a database server needs its cluster: -e cluster=NAME")
        try:
            place = db_place_plan(doc, name, position, cluster)
        except ValueError as exc:
            raise LaunchPlanError(str(exc)) from None
        plan.update(products=place["products"], cluster=place["cluster"],
                    position=place["position"], source=place["source"])
    elif role == "memcached":
        if products:
            wanted = [str(p) for p in products]
        else:
            pool = sorted({p for s in servers.values() if s.get("role") == "memcached"
                           and s.get("state") == "in_service" for p in s.get("products") or []})
            wanted = pool or [str(p["name"]) for p in catalog if p.get("memcached")]
        unknown = sorted(set(wanted) - known)
        if unknown:
            raise LaunchPlanError(f"unknown product(s) {', '.join(unknown)} (global config "
                                  f"has: {', '.join(sorted(known)) or 'none'})")
        if not wanted:
            raise LaunchPlanError("no product uses memcached: say which with -e products=A,B")
        plan["products"] = wanted
    return plan


def errant_transactions(mine: Mapping[str, Any], master: Mapping[str, Any],
                        flavor: str = "mariadb") -> str:
    """The transactions a server has (`mine`: mysql_replication_facts' gtid) that the master
    (`master`: the same for the master) lacks: writes that reached only this server (an old
    master's last acknowledged writes after the failover, or a replica written to directly).
    '' when there are none."""
    from host_programs.failover.decide import gtid_state, not_applied_by
    from module_utils.mysql_flavor import Flavor

    kind = Flavor(flavor, (10, 11, 0) if flavor == "mariadb" else (8, 0, 36))
    return not_applied_by(gtid_state(dict(mine), kind), gtid_state(dict(master), kind), kind)


def fleet_table(doc: Mapping[str, Any], url: str = "",
                products: Sequence[Mapping[str, Any]] = ()) -> list[str]:
    """The servers of the document as table lines (name, role, products, AZ, address,
    state), with each product's db master, and the site's URL first when given, followed by
    one command per product (of `products`, the platform_products entries) that asks for
    its page through that URL with the product's first domain as the Host header."""
    lines = [f"site: {url}"] if url else []
    if url:
        for product in products:
            domains = product.get("domains") or []
            if domains:
                lines.append(f"{product.get('name')}: curl -H 'Host: {domains[0]}' {url}")
    lines.append(f"{'name':<16} {'role':<10} {'products':<12} {'az':<12} {'address':<15} state")
    for sid, server in sorted((doc.get("servers") or {}).items(),
                              key=lambda kv: (kv[1].get("role", ""), kv[0])):
        lines.append(f"{sid:<16} {server.get('role', ''):<10} "
                     f"{','.join(server.get('products') or []):<12} {server.get('az', ''):<12} "
                     f"{server.get('address', ''):<15} {server.get('state', '')}")
    for name, product in sorted((doc.get("products") or {}).items()):
        master = (product.get("db") or {}).get("master") or "-"
        lines.append(f"product {name}: db master {master}, web {len(product.get('web') or [])}, "
                     f"memcached {len(product.get('memcached') or [])} (epoch {doc.get('epoch')})")
    return lines


def sole_web_products(doc: Mapping[str, Any], server_id: str) -> list[str]:
    """Products for which `server_id` is the only web server in service."""
    servers = doc.get("servers") or {}
    out = []
    for product in (servers.get(server_id) or {}).get("products") or []:
        others = [sid for sid in in_service_web(doc, product) if sid != server_id]
        if server_id in in_service_web(doc, product) and not others:
            out.append(product)
    return out
