"""Planning a web launch: how many servers, in which zones, under which names.

Pure functions over the global config document (no Ansible imports); the filter
`hostkit_plan_web_launch` (filter_plugins/launch.py) gives them to playbooks/launch_web.yml.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from module_utils.topology import least_loaded_az

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


def initial_db_positions(groups: Mapping[str, Iterable[str]],
                         products: Iterable[Mapping[str, Any]],
                         doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """For each product with a database and no master in the document yet: its positions
    from the inventory groups dbrole_<position> x product_<name> (one host each)."""
    out = []
    known = doc.get("products") or {}
    for product in products:
        name = product["name"]
        if not product.get("database") or ((known.get(name) or {}).get("db") or {}).get("master"):
            continue
        members = set(groups.get(f"product_{name}") or [])
        db: dict[str, str | None] = {}
        for position in DB_POSITIONS:
            holders = sorted(members & set(groups.get(f"dbrole_{position}") or []))
            if len(holders) > 1:
                raise ValueError(f"product '{name}': db position {position} is held by "
                                 f"{len(holders)} hosts ({', '.join(holders)})")
            db[position] = holders[0] if holders else None
        if db["master"]:
            out.append({"name": name, "db": db})
    return out


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
