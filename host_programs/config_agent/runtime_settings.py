"""A product's runtime settings file, `shared/config/runtime.json`, from the global config.

The one place that decides what the file says when the global config is the source:
the config agent (host_programs/config_agent/agent.py) renders it on every change of the
document, and the product role writes the first copy on a new server through the filter
`hostkit_runtime_settings` (filter_plugins/runtime_settings.py), so both write the same
bytes. The format is the one the product code reads (products/hello/lib/runtime.php):

    {"db": {"host": ..., "port": 3306, "name": ..., "user": ...} | null,
     "memcached": ["host:port", ...],
     "source": "global_config"}

`db` is null for a product without a database; `memcached` lists the product's memcached
servers only when the product uses memcached (`memcached: true`). Secrets never appear
here: the database password is in secrets.json, written once by the product role.

Pure functions, no Ansible imports; Python 3.9+ (the agent runs on EL 9 hosts too).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from host_programs.common.topology import product_db_address, product_member_addresses

DEFAULT_DB_PORT = 3306
DEFAULT_MEMCACHED_PORT = 11211
SOURCE = "global_config"


def _port(value: Any, what: str, product: str) -> int:
    if isinstance(value, bool) or not str(value).isdigit() or not 1 <= int(value) <= 65535:
        raise ValueError(f"product '{product}': {what} must be a port number 1-65535, "
                         f"got {value!r}")
    return int(value)


def _endpoint(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def render(doc: Mapping[str, Any], product: Mapping[str, Any],
           db_port: Any = DEFAULT_DB_PORT,
           memcached_port: Any = DEFAULT_MEMCACHED_PORT) -> dict[str, Any]:
    """The runtime settings of `product` (its entry of platform_products: `name`, and
    `database` {name, user} and `memcached` when it uses them) in the global config `doc`.

    The database host is the private address of the product's db master; memcached
    servers are the addresses of the product's memcached list, in its order. KeyError
    (the product is not in the document, it has no master, a server is unknown) or
    ValueError (a bad product entry or port), each naming the product."""
    if not isinstance(product, Mapping) or not isinstance(product.get("name"), str):
        raise ValueError(f"expected a product mapping with a 'name', got {product!r}")
    name = product["name"]
    database = product.get("database")
    if database is not None and not isinstance(database, Mapping):
        raise ValueError(f"product '{name}': field 'database' must be a mapping "
                         f"(name, user), got {database!r}")
    products = doc.get("products") if isinstance(doc, Mapping) else None
    if not isinstance(products, Mapping) or name not in products:
        known = ", ".join(sorted(products)) if isinstance(products, Mapping) else ""
        raise KeyError(f"product '{name}' is not in the global config (products: "
                       f"{known or 'none'})")
    db = None
    if database is not None:
        db = {"host": product_db_address(doc, name),
              "port": _port(db_port, "the database port", name),
              "name": database.get("name", name),
              "user": database.get("user", name)}
    memcached: list[str] = []
    if product.get("memcached", False):
        port = _port(memcached_port, "the memcached port", name)
        memcached = [_endpoint(a, port) for a in product_member_addresses(doc, name, "memcached")]
    return {"db": db, "memcached": memcached, "source": SOURCE}


def dumps(settings: Mapping[str, Any]) -> bytes:
    """The file's bytes: what Ansible's `to_nice_json(indent=2)` gives, plus a newline
    (the product role writes the same object that way)."""
    text = json.dumps(settings, indent=2, sort_keys=True, separators=(",", ": "))
    return (text + "\n").encode("utf-8")


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()
