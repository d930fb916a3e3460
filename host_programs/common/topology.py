"""Questions about the fleet asked of the global config document (or of its servers).

Pure functions, no Ansible imports: filter_plugins/topology.py exposes them to templates
and playbooks, and the config agent uses them to render a product's runtime settings.
Errors are ValueError / KeyError with a message that names the product, position or zone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

# A fenced server is out of the fleet: it counts for nothing.
COUNTED_STATES = ("provisioning", "in_service", "draining")
DB_POSITIONS = ("master", "candidate", "slave_candidate", "backup")
MEMBER_KINDS = ("web", "memcached")


def _servers(doc_or_servers: Any) -> list[tuple[str, Mapping[str, Any]]]:
    """(id, server) pairs from a document, its `servers` mapping, or a list of server
    mappings (document entries, or inventory hostvars with hostkit_role / hostkit_az)."""
    if isinstance(doc_or_servers, Mapping):
        servers = doc_or_servers.get("servers", doc_or_servers)
        if not isinstance(servers, Mapping):
            raise ValueError("the document's 'servers' is not a mapping")
        return [(str(k), v) for k, v in servers.items() if isinstance(v, Mapping)]
    if isinstance(doc_or_servers, Iterable) and not isinstance(doc_or_servers, (str, bytes)):
        return [(str(s.get("id", s.get("inventory_hostname", i))), s)
                for i, s in enumerate(doc_or_servers) if isinstance(s, Mapping)]
    raise ValueError(f"expected a global config document, its servers or a list of servers, "
                     f"got {type(doc_or_servers).__name__}")


def _field(server: Mapping[str, Any], name: str, default: Any = None) -> Any:
    """A server field, from the document (`az`) or from inventory hostvars (`hostkit_az`)."""
    return server.get(name, server.get(f"hostkit_{name}", default))


def least_loaded_az(doc_or_servers: Any, role: str, zones: Iterable[str]) -> str:
    """The zone of `zones` with the fewest servers of `role` (fenced ones do not count;
    servers in zones outside `zones` are ignored). Ties go to the zone listed first in
    `zones`, so the same fleet always gives the same answer."""
    candidates = list(dict.fromkeys(str(z) for z in zones or []))
    if not candidates:
        raise ValueError("no zones to choose from")
    counts = dict.fromkeys(candidates, 0)
    for _, server in _servers(doc_or_servers):
        zone = _field(server, "az")
        if (_field(server, "role") == role and zone in counts
                and _field(server, "state", "in_service") in COUNTED_STATES):
            counts[zone] += 1
    # min() keeps the first of equal counts, and counts is in the order of `zones`.
    return min(counts, key=counts.__getitem__)


def servers_of(doc: Any, role: str | None = None, product: str | None = None,
               state: str | None = None) -> list[str]:
    """Ids of the servers with that role (any when None), serving that product and in that
    state, sorted."""
    return sorted(sid for sid, s in _servers(doc)
                  if (role is None or _field(s, "role") == role)
                  and (product is None or product in (_field(s, "products") or []))
                  and (state is None or _field(s, "state") == state))


def _product(doc: Mapping[str, Any], product: str) -> Mapping[str, Any]:
    products = doc.get("products") if isinstance(doc, Mapping) else None
    if not isinstance(products, Mapping) or product not in products:
        known = ", ".join(sorted(products or {})) if isinstance(products, Mapping) else "none"
        raise KeyError(f"product '{product}' is not in the global config (products: "
                       f"{known or 'none'})")
    return products[product]


def server_address(doc: Mapping[str, Any], server_id: str) -> str:
    server = (doc.get("servers") or {}).get(server_id)
    if not isinstance(server, Mapping) or not server.get("address"):
        raise KeyError(f"server '{server_id}' is not in the global config servers")
    return str(server["address"])


def product_db_server(doc: Mapping[str, Any], product: str, position: str = "master") -> str:
    """Id of the server holding a product's db position; KeyError when empty."""
    if position not in DB_POSITIONS:
        raise ValueError(f"unknown db position '{position}' (positions: "
                         f"{', '.join(DB_POSITIONS)})")
    holder = (_product(doc, product).get("db") or {}).get(position)
    if not holder:
        raise KeyError(f"product '{product}' has no db {position} in the global config")
    return str(holder)


def product_db_address(doc: Mapping[str, Any], product: str, position: str = "master") -> str:
    """Private address of the server holding a product's db position."""
    return server_address(doc, product_db_server(doc, product, position))


def product_member_addresses(doc: Mapping[str, Any], product: str, kind: str) -> list[str]:
    """Private addresses of a product's web or memcached servers, in the list's order."""
    if kind not in MEMBER_KINDS:
        raise ValueError(f"unknown member kind '{kind}' (kinds: {', '.join(MEMBER_KINDS)})")
    return [server_address(doc, sid) for sid in _product(doc, product).get(kind) or []]
