"""The global config document in S3: schema, checks, changes and a safe read-modify-write.

One JSON object in S3 holds the live topology of the fleet (which server has which role,
products, availability zone, private address and state; each product's database positions,
memcached and web servers). This module is its only reader and writer:

- `problems(doc)` / `validate(doc)`: the JSON Schema (`schemas/global_config.schema.json`,
  embedded here as `SCHEMA` so that a module shipped to a host or the config agent needs no
  second file) plus the cross-references a schema cannot express (`semantic_problems`).
- pure changes (`set_server`, `remove_server`, `set_product`, `set_product_db`,
  `remove_product`) that return a new document and whether anything changed;
- `GlobalConfig(client, bucket, key)`: `read`, `read_if_changed` (If-None-Match),
  `update` (conditional PUT with If-Match on the ETag, or If-None-Match: * for the first
  write; epoch + 1; re-read and re-apply after a lost race, a bounded number of times);
- `EpochGuard` / `Reader`: a reader never accepts a document whose epoch is lower than the
  last one it accepted, nor one that fails the checks.

No Ansible imports: the module in library/, the lookup, the config agent and the failover
watcher import this file as it is. It runs on Python 3.9 (EL 9 hosts) and up.
"""

from __future__ import annotations

import copy
import json
import random
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

try:
    from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError
except ImportError as exc:  # reported by make_client / the store, not on import
    BOTO_IMPORT_ERROR: ImportError | None = exc
    ClientError = BotoCoreError = ParamValidationError = ()  # type: ignore[assignment,misc]
else:
    BOTO_IMPORT_ERROR = None

try:
    import jsonschema
except ImportError as exc:
    JSONSCHEMA_IMPORT_ERROR: ImportError | None = exc
else:
    JSONSCHEMA_IMPORT_ERROR = None

# The one client factory (module_utils/aws.py): as ansible.module_utils.aws inside a module,
# as module_utils.aws in the plugins and the host programs.
try:
    from ansible.module_utils.aws import AwsClientError, aws_client
except ImportError:
    from module_utils.aws import AwsClientError, aws_client

ROLES = ("web", "db", "memcached", "monitor")
STATES = ("provisioning", "in_service", "draining", "fenced")
DB_POSITIONS = ("master", "candidate", "slave_candidate", "backup")
# Which product list a server of a role joins when it is in service.
MEMBER_LISTS = {"web": "web", "memcached": "memcached"}
CONTENT_TYPE = "application/json"

_SERVER_ID = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$"}
_PRODUCT_NAME = {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,30}$"}
_CLUSTER_NAME = {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,30}$"}


def _schema(version: int) -> dict[str, Any]:
    """The document's JSON Schema. Version 2 (the current one) has database clusters: each
    product names its cluster, and its `db` repeats the cluster's positions for readers.
    Version 1 (no clusters; each product held its own positions) is still read: parse()
    upgrades it in memory, and the next write stores version 2 (upgrade())."""
    product_required = ["cluster", "db", "memcached", "web"] if version == 2 else [
        "db", "memcached", "web"]
    product_properties: dict[str, Any] = {
        "db": {"$ref": "#/definitions/positions"},
        "memcached": {"$ref": "#/definitions/server_list"},
        "web": {"$ref": "#/definitions/server_list"},
    }
    if version == 2:
        product_properties = {
            "cluster": {
                "description": "The database cluster the product's database lives on; null: "
                               "the product has no database.",
                "anyOf": [{"$ref": "#/definitions/cluster_name"}, {"type": "null"}],
            },
            "db": {
                "description": "The positions of the product's cluster, repeated for readers "
                               "(always equal to clusters.<cluster>.db).",
                "$ref": "#/definitions/positions",
            },
            **{k: v for k, v in product_properties.items() if k != "db"},
        }
    top_required = ["epoch", "updated_at", "updated_by", "servers", "products"]
    top_properties: dict[str, Any] = {
        "epoch": {
            "description": (
                "Version of the document; every write stores the epoch it read plus one, and a "
                "reader never accepts a lower epoch than the last it accepted."
            ),
            "type": "integer",
            "minimum": 0,
        },
        "updated_at": {
            "description": "UTC time of the write (RFC 3339).",
            "type": "string",
            "format": "date-time",
            "pattern": (
                "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?"
                "(Z|[+-][0-9]{2}:[0-9]{2})$"
            ),
        },
        "updated_by": {
            "description": "Who wrote it, e.g. launch_web@controller.",
            "type": "string",
            "minLength": 1,
            "maxLength": 200,
        },
        "servers": {
            "description": (
                "Server id (the inventory host name: container name or EC2 Name tag) -> what "
                "it is."
            ),
            "type": "object",
            "propertyNames": {"$ref": "#/definitions/server_id"},
            "additionalProperties": {"$ref": "#/definitions/server"},
        },
        "products": {
            "description": (
                "Product name -> its database cluster and positions, its memcached and web "
                "servers."
            ),
            "type": "object",
            "propertyNames": {"$ref": "#/definitions/product_name"},
            "additionalProperties": {"$ref": "#/definitions/product"},
        },
    }
    definitions: dict[str, Any] = {
        "server_id": _SERVER_ID,
        "product_name": _PRODUCT_NAME,
        "server_ref": {
            "description": "A server id, or null when the position is empty.",
            "anyOf": [{"$ref": "#/definitions/server_id"}, {"type": "null"}],
        },
        "server_list": {
            "type": "array",
            "items": {"$ref": "#/definitions/server_id"},
            "uniqueItems": True,
        },
        "positions": {
            "type": "object",
            "additionalProperties": False,
            "required": list(DB_POSITIONS),
            "properties": {p: {"$ref": "#/definitions/server_ref"} for p in DB_POSITIONS},
        },
        "server": {
            "type": "object",
            "additionalProperties": False,
            "required": ["role", "products", "az", "address", "state"],
            "properties": {
                "role": {"enum": list(ROLES)},
                "products": {
                    "type": "array",
                    "items": {"$ref": "#/definitions/product_name"},
                    "uniqueItems": True,
                },
                "az": {
                    "description": (
                        "Availability zone (EC2 placement, a sandbox label, or a rack name)."
                    ),
                    "type": "string",
                    "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$",
                },
                "address": {
                    "description": "Private IPv4 or IPv6 address.",
                    "type": "string",
                    "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}],
                },
                "state": {"enum": list(STATES)},
            },
        },
        "product": {
            "type": "object",
            "additionalProperties": False,
            "required": product_required,
            "properties": product_properties,
        },
    }
    if version == 2:
        top_required.append("clusters")
        top_properties["clusters"] = {
            "description": (
                "Database cluster name -> its live positions. A cluster serves every product "
                "that names it; a failover or switchover moves all of them in one write."
            ),
            "type": "object",
            "propertyNames": {"$ref": "#/definitions/cluster_name"},
            "additionalProperties": {"$ref": "#/definitions/cluster"},
        }
        definitions["cluster_name"] = _CLUSTER_NAME
        definitions["cluster"] = {
            "type": "object",
            "additionalProperties": False,
            "required": ["db"],
            "properties": {"db": {"$ref": "#/definitions/positions"}},
        }
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$id": "https://hostkit.invalid/schemas/global_config.schema.json",
        "title": "hostkit global config",
        "description": (
            "The live topology of the fleet, kept in one S3 object. Written only by the control "
            "plane (launch, decommission, failover) with a conditional PUT and epoch + 1; read "
            "by Ansible, the config agent on every server and the control panel. "
            "Cross-references (a product's db master must be a known db server, ...) are "
            "checked by semantic_problems() in module_utils/global_config.py, which embeds a "
            "copy of this schema (tests/unit/test_global_config.py keeps the two equal)."
        ),
        "type": "object",
        "additionalProperties": False,
        "required": top_required,
        "properties": top_properties,
        "definitions": definitions,
    }


# Keep equal to schemas/global_config.schema.json (a unit test compares them).
SCHEMA: dict[str, Any] = _schema(2)
# Documents written before database clusters existed; read and upgraded, never written.
SCHEMA_V1: dict[str, Any] = _schema(1)

Doc = dict[str, Any]
Change = Callable[[Doc], "tuple[Doc, bool]"]


# --------------------------------------------------------------------------- errors


class GlobalConfigError(Exception):
    """Base of every error of this module; the message names the object and the problem."""


class BucketMissing(GlobalConfigError):
    pass


class AccessDenied(GlobalConfigError):
    pass


class DocumentMissing(GlobalConfigError):
    pass


class DocumentExists(GlobalConfigError):
    pass


class DocumentInvalid(GlobalConfigError):
    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = list(problems)
        shown = "; ".join(self.problems[:10])
        more = f" (and {len(self.problems) - 10} more)" if len(self.problems) > 10 else ""
        super().__init__(f"{source} is invalid: {shown}{more}")


class StaleEpoch(GlobalConfigError):
    def __init__(self, source: str, epoch: int, accepted: int) -> None:
        self.epoch = epoch
        self.accepted = accepted
        super().__init__(f"{source} has epoch {epoch}, lower than epoch {accepted} accepted "
                         "before: refused (an older copy, or a writer that skipped the "
                         "conditional write)")


class RetriesExhausted(GlobalConfigError):
    pass


class ChangeRejected(GlobalConfigError):
    """A change's input is wrong before any document is involved (e.g. a new server
    without an address)."""


class S3Unavailable(GlobalConfigError):
    """The endpoint could not be reached or answered with an error we do not interpret."""


# --------------------------------------------------------------------------- checks


def _validator(schema: Mapping[str, Any]) -> Any:
    if JSONSCHEMA_IMPORT_ERROR is not None:
        raise GlobalConfigError(f"the Python package jsonschema is required: "
                                f"{JSONSCHEMA_IMPORT_ERROR}")
    # Draft 7: the newest draft that EL 9's python3-jsonschema (3.2) knows; Debian 12 has 4.10.
    return jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker())


def version_of(doc: Any) -> int:
    """2 for a document with database clusters, 1 for one written before them."""
    return 2 if isinstance(doc, Mapping) and "clusters" in doc else 1


def _dotted(path: Iterable[Any]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "document"


def _message(error: Any) -> str:
    description = error.schema.get("description") if isinstance(error.schema, dict) else None
    if error.validator in ("anyOf", "oneOf") and description:
        expected = description[0].lower() + description[1:].rstrip(".")
        return f"{error.instance!r} is not valid: expected {expected}"
    return str(error.message)


def schema_problems(doc: Any) -> list[str]:
    """Schema violations, each as '<dotted path>: <message>', in document order (against
    the schema of the document's version)."""
    schema = SCHEMA if version_of(doc) == 2 else SCHEMA_V1
    errors = sorted(_validator(schema).iter_errors(doc), key=lambda e: [str(p) for p in e.path])
    return [f"{_dotted(e.absolute_path)}: {_message(e)}" for e in errors]


def _ref_problems(doc: Mapping[str, Any], where: str, server_id: str, product: str | None,
                  role: str) -> list[str]:
    server = doc["servers"].get(server_id)
    if server is None:
        return [f"{where}: unknown server '{server_id}' (not in servers)"]
    found = []
    if server["role"] != role:
        found.append(f"{where}: server '{server_id}' has role '{server['role']}', "
                     f"expected '{role}'")
    if product is not None and product not in server["products"]:
        found.append(f"{where}: server '{server_id}' does not list product '{product}' "
                     "in its products")
    return found


def _positions_problems(doc: Mapping[str, Any], where: str, positions: Mapping[str, Any],
                        products: Iterable[str | None]) -> list[str]:
    """The positions of a cluster (v2) or a product (v1): known db servers that list the
    products served, one position per server, no fenced master."""
    found: list[str] = []
    holders: dict[str, list[str]] = {}
    for position in DB_POSITIONS:
        server_id = positions[position]
        if server_id is None:
            continue
        holders.setdefault(server_id, []).append(position)
        for product in products:
            found += _ref_problems(doc, f"{where}.{position}", server_id, product, "db")
        server = doc["servers"].get(server_id)
        if position == "master" and server is not None and server["state"] == "fenced":
            found.append(f"{where}.{position}: server '{server_id}' is fenced and cannot be "
                         "the master")
    for server_id, held in holders.items():
        if len(held) > 1:
            found.append(f"{where}: server '{server_id}' holds several positions "
                         f"({', '.join(held)})")
    return list(dict.fromkeys(found))


def _member_problems(doc: Mapping[str, Any], name: str, product: Mapping[str, Any]) -> list[str]:
    found: list[str] = []
    for kind in ("memcached", "web"):
        for i, server_id in enumerate(product[kind]):
            found += _ref_problems(doc, f"products.{name}.{kind}[{i}]", server_id, name, kind)
    return found


def _cluster_problems(doc: Mapping[str, Any]) -> list[str]:
    found: list[str] = []
    served = cluster_products(doc)
    seats: dict[str, list[str]] = {}
    for name, cluster in doc["clusters"].items():
        found += _positions_problems(doc, f"clusters.{name}.db", cluster["db"],
                                     served.get(name) or [None])
        for server_id in {s for s in cluster["db"].values() if s}:
            seats.setdefault(server_id, []).append(name)
    for server_id, clusters in sorted(seats.items()):
        if len(clusters) > 1:
            found.append(f"servers.{server_id}: holds positions in several clusters "
                         f"({', '.join(sorted(clusters))}); a server belongs to one cluster")
    for name, product in doc["products"].items():
        cluster = product["cluster"]
        if cluster is None:
            if any(product["db"].values()):
                found.append(f"products.{name}.db: positions without a cluster (set "
                             f"products.{name}.cluster)")
        elif cluster not in doc["clusters"]:
            found.append(f"products.{name}.cluster: unknown cluster '{cluster}' (not in "
                         "clusters)")
        elif product["db"] != doc["clusters"][cluster]["db"]:
            found.append(f"products.{name}.db: differs from clusters.{cluster}.db (the "
                         "positions of a product are those of its cluster)")
        found += _member_problems(doc, name, product)
    return found


def semantic_problems(doc: Mapping[str, Any]) -> list[str]:
    """Cross-references the schema cannot express, for a document that passes the schema:
    every server a cluster (or product) names exists, has the right role (db positions: db;
    memcached and web lists: memcached and web) and lists the product(s); one server holds
    at most one position, in one cluster; a fenced server is no master; a server's products
    exist; a product names a known cluster and repeats its positions."""
    found: list[str] = []
    for server_id, server in doc["servers"].items():
        found += [f"servers.{server_id}.products: unknown product '{p}' (not in products)"
                  for p in server["products"] if p not in doc["products"]]
    if version_of(doc) == 2:
        return found + _cluster_problems(doc)
    for name, product in doc["products"].items():
        found += _positions_problems(doc, f"products.{name}.db", product["db"], [name])
        found += _member_problems(doc, name, product)
    return found


def problems(doc: Any) -> list[str]:
    """Every problem of a document: schema first; cross-references when the schema passes."""
    found = schema_problems(doc)
    return found or semantic_problems(doc)


def validate(doc: Any, source: str = "document") -> Doc:
    """The document itself when it is valid (version 1 or 2), else DocumentInvalid naming
    every problem."""
    found = problems(doc)
    if found:
        raise DocumentInvalid(source, found)
    return doc


def upgrade(doc: Mapping[str, Any]) -> Doc:
    """A version 1 document as version 2, same epoch: products that share their database
    positions share one cluster, named after the first of them (playbooks may rename it,
    rename_cluster); a product without positions has no cluster. A version 2 document is
    returned as a copy. Products whose positions overlap without being equal cannot be
    placed on one cluster: DocumentInvalid."""
    new = copy.deepcopy(dict(doc))
    if version_of(new) == 2:
        return new
    new["clusters"] = {}
    by_positions: dict[tuple[Any, ...], str] = {}
    seats: dict[str, str] = {}
    for name in sorted(new["products"]):
        product = new["products"][name]
        positions = tuple(product["db"].get(p) for p in DB_POSITIONS)
        product["cluster"] = None
        if not any(positions):
            continue
        cluster = by_positions.get(positions)
        if cluster is None:
            clash = sorted({seats[s] for s in positions if s and s in seats})
            if clash:
                raise DocumentInvalid("the version 1 document", [
                    f"products.{name}.db shares servers with cluster '{clash[0]}' in other "
                    "positions: products on one cluster must have the same positions"])
            cluster = name
            by_positions[positions] = cluster
            new["clusters"][cluster] = {"db": dict(product["db"])}
            seats.update({s: cluster for s in positions if s})
        product["cluster"] = cluster
    return new


def parse_stored(body: bytes | str, source: str = "document") -> tuple[Doc, int]:
    """Decode and validate a stored document: (the document as version 2, the version it
    was stored as)."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DocumentInvalid(source, [f"not JSON: {exc}"]) from None
    return upgrade(validate(doc, source)), version_of(doc)


def parse(body: bytes | str, source: str = "document") -> Doc:
    """Decode and validate a stored document; a version 1 document comes back upgraded."""
    return parse_stored(body, source)[0]


def dumps(doc: Mapping[str, Any]) -> bytes:
    """The stored form: sorted keys, two-space indent, final newline (diff-friendly)."""
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode("utf-8")


def utc_now() -> str:
    # timezone.utc rather than datetime.UTC: the agent runs on Python 3.9 (EL 9) too.
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: UP017


def default_updated_by(program: str = "hostkit") -> str:
    return f"{program}@{socket.gethostname()}"


def create_document(updated_by: str, epoch: int = 0, now: str | None = None) -> Doc:
    """An empty, valid document: no servers, no clusters, no products."""
    return validate({"epoch": epoch, "updated_at": now or utc_now(), "updated_by": updated_by,
                     "servers": {}, "clusters": {}, "products": {}})


def empty_positions() -> dict[str, str | None]:
    return {p: None for p in DB_POSITIONS}


def empty_product() -> dict[str, Any]:
    return {"cluster": None, "db": empty_positions(), "memcached": [], "web": []}


# --------------------------------------------------------------------------- queries of
# a version 2 document


def cluster_products(doc: Mapping[str, Any]) -> dict[str, list[str]]:
    """Cluster name -> the products that name it, sorted (every cluster, even unused)."""
    out: dict[str, list[str]] = {name: [] for name in doc.get("clusters") or {}}
    for name, product in sorted((doc.get("products") or {}).items()):
        if product.get("cluster") is not None:
            out.setdefault(product["cluster"], []).append(name)
    return out


def cluster_of_server(doc: Mapping[str, Any], server_id: str) -> str | None:
    """The cluster a db server belongs to: the one where it holds a position, else (a
    fenced or spare server) the cluster of its products when they name exactly one."""
    for name, cluster in (doc.get("clusters") or {}).items():
        if server_id in cluster["db"].values():
            return name
    server = (doc.get("servers") or {}).get(server_id) or {}
    if server.get("role") != "db":
        return None
    clusters = {((doc.get("products") or {}).get(p) or {}).get("cluster")
                for p in server.get("products") or []} - {None}
    return clusters.pop() if len(clusters) == 1 else None


# --------------------------------------------------------------------------- changes
# Each change takes a document and returns (new document, changed). The input is never
# modified. Changes do not validate; update() validates the result before it writes.


def _sync_membership(doc: Doc, server_id: str) -> None:
    """A web or memcached server is in the list of each of its products exactly while it is
    in service; appended at the end, so the order of the others is kept."""
    server = doc["servers"].get(server_id)
    for name, product in doc["products"].items():
        for kind in MEMBER_LISTS.values():
            wanted = (server is not None and server["state"] == "in_service"
                      and MEMBER_LISTS.get(server["role"]) == kind and name in server["products"])
            members = product[kind]
            if wanted and server_id not in members:
                members.append(server_id)
            elif not wanted and server_id in members:
                members.remove(server_id)


def set_server(doc: Mapping[str, Any], server_id: str, *, role: str | None = None,
               products: Iterable[str] | None = None, az: str | None = None,
               address: str | None = None, state: str | None = None) -> tuple[Doc, bool]:
    """Create or update a server; fields left None keep their value. A new server needs
    role, az and address (products default to none, state to provisioning). A web or
    memcached server joins its products' web/memcached lists while it is in_service and
    leaves them otherwise (also when it drops a product)."""
    new = upgrade(doc)
    current = new["servers"].get(server_id)
    if current is None:
        missing = [f for f, v in (("role", role), ("az", az), ("address", address)) if v is None]
        if missing:
            raise ChangeRejected(f"server '{server_id}' is new: {', '.join(missing)} "
                                 f"{'is' if len(missing) == 1 else 'are'} required")
        current = {"role": role, "products": [], "az": az, "address": address,
                   "state": "provisioning"}
        new["servers"][server_id] = current
    fields = {"role": role, "az": az, "address": address, "state": state,
              "products": None if products is None else list(dict.fromkeys(products))}
    current.update({k: v for k, v in fields.items() if v is not None})
    _sync_membership(new, server_id)
    return new, new != doc


def remove_server(doc: Mapping[str, Any], server_id: str) -> tuple[Doc, bool]:
    """Remove a server and every reference to it: products' web and memcached lists, and
    the db positions it held (left empty). Unknown server: no change."""
    new = upgrade(doc)
    new["servers"].pop(server_id, None)
    for product in new["products"].values():
        for kind in ("web", "memcached"):
            product[kind] = [s for s in product[kind] if s != server_id]
    for name, cluster in new["clusters"].items():
        emptied = {p: None for p, holder in cluster["db"].items() if holder == server_id}
        if emptied:
            _set_positions(new, name, emptied)
    return new, new != doc


def _set_positions(doc: Doc, cluster: str, positions: Mapping[str, str | None]) -> None:
    """Set positions of a cluster (in place) and repeat them in each of its products."""
    unknown = sorted(set(positions) - set(DB_POSITIONS))
    if unknown:
        raise ChangeRejected(f"cluster '{cluster}': unknown db position(s) "
                             f"{', '.join(unknown)} (positions: {', '.join(DB_POSITIONS)})")
    entry = doc["clusters"].setdefault(cluster, {"db": empty_positions()})
    entry["db"].update(dict(positions))
    for product in doc["products"].values():
        if product["cluster"] == cluster:
            product["db"] = dict(entry["db"])


def set_cluster(doc: Mapping[str, Any], name: str,
                db: Mapping[str, str | None] | None = None) -> tuple[Doc, bool]:
    """Create a database cluster (empty positions) or set the positions `db` names (None
    empties one; the others keep their holder). Every product of the cluster gets the same
    positions in the same write."""
    new = upgrade(doc)
    _set_positions(new, name, db or {})
    return new, new != doc


def rename_cluster(doc: Mapping[str, Any], old: str, new_name: str) -> tuple[Doc, bool]:
    """Give a cluster another name (its products follow). Refused when the new name is taken."""
    new = upgrade(doc)
    if old == new_name:
        return new, new != doc
    if old not in new["clusters"]:
        raise ChangeRejected(f"cluster '{old}' does not exist")
    if new_name in new["clusters"]:
        raise ChangeRejected(f"cannot rename cluster '{old}' to '{new_name}': that name is taken")
    new["clusters"][new_name] = new["clusters"].pop(old)
    for product in new["products"].values():
        if product["cluster"] == old:
            product["cluster"] = new_name
    return new, new != doc


def remove_cluster(doc: Mapping[str, Any], name: str) -> tuple[Doc, bool]:
    """Remove a cluster that no product names (unknown cluster: no change)."""
    new = upgrade(doc)
    users = cluster_products(new).get(name) or []
    if users:
        raise ChangeRejected(f"cluster '{name}' still serves {', '.join(users)}")
    new["clusters"].pop(name, None)
    return new, new != doc


_UNSET: Any = object()


def set_product(doc: Mapping[str, Any], name: str, *,
                cluster: Any = _UNSET,
                db: Mapping[str, str | None] | None = None,
                memcached: Iterable[str] | None = None,
                web: Iterable[str] | None = None) -> tuple[Doc, bool]:
    """Create a product (no cluster, empty positions and lists) or update it.

    `cluster` names the database cluster of the product (None: no database); a product
    joins an existing cluster, or a new one (empty positions) when none has that name. A
    product that is already on a cluster with positions is never moved to another one
    (its data does not move with it): ChangeRejected. `db` sets positions of the product's
    cluster (a product without a cluster gets one named after it), so every product of the
    cluster gets them in the same write. `memcached` / `web` replace the lists."""
    new = upgrade(doc)
    product = new["products"].setdefault(name, empty_product())
    if cluster is not _UNSET and cluster != product["cluster"]:
        current = product["cluster"]
        if current is not None and any(new["clusters"].get(current, {}).get("db", {}).values()):
            raise ChangeRejected(
                f"product '{name}' is on cluster '{current}', which has servers: moving its "
                f"database to cluster '{cluster}' is not automated (copy the data, then "
                "change the product's cluster)")
        product["cluster"] = cluster
        if cluster is None:
            product["db"] = empty_positions()
        else:
            new["clusters"].setdefault(cluster, {"db": empty_positions()})
            product["db"] = dict(new["clusters"][cluster]["db"])
    if db is not None:
        if product["cluster"] is None:
            product["cluster"] = name
        _set_positions(new, product["cluster"], db)
    if memcached is not None:
        product["memcached"] = list(memcached)
    if web is not None:
        product["web"] = list(web)
    return new, new != doc


def set_product_db(doc: Mapping[str, Any], name: str, **positions: str | None
                   ) -> tuple[Doc, bool]:
    """The positions of a product's cluster (every product of the cluster follows), e.g.
    set_product_db(doc, 'hello', master='db-2')."""
    return set_product(doc, name, db=positions)


def remove_product(doc: Mapping[str, Any], name: str) -> tuple[Doc, bool]:
    """Remove a product and drop it from every server's products (its cluster stays)."""
    new = upgrade(doc)
    new["products"].pop(name, None)
    for server in new["servers"].values():
        server["products"] = [p for p in server["products"] if p != name]
    return new, new != doc


def chain(*changes: Change) -> Change:
    """Several changes applied in order as one (one write, one epoch)."""
    def run(doc: Doc) -> tuple[Doc, bool]:
        original = doc
        for change in changes:
            doc, _ = change(doc)
        return doc, doc != original
    return run


def apply_change(doc: Mapping[str, Any], change: Change, updated_by: str,
                 now: str | None = None, source: str = "document",
                 force: bool = False) -> tuple[Doc, bool]:
    """The next version of `doc` after `change`: epoch + 1, updated_at and updated_by set,
    validated. When the change changes nothing, `doc` itself and False (unless `force`: the
    stored copy is version 1 and must be written as version 2). A version 1 document is
    upgraded first; the upgrade alone is a change."""
    new, _ = change(upgrade(doc))
    if new == doc and not force:
        return dict(doc), False
    new = dict(new, epoch=int(doc["epoch"]) + 1, updated_at=now or utc_now(),
               updated_by=updated_by)
    return validate(new, f"{source} after the change"), True


# --------------------------------------------------------------------------- S3 store


def make_client(region: str | None = None, endpoint_url: str | None = None,
                max_attempts: int = 5, connect_timeout: float = 5,
                read_timeout: float = 10,
                credentials: Mapping[str, str] | None = None) -> Any:
    """The S3 client of the global config: module_utils/aws.py's client (its retry policy,
    path-style addressing when an endpoint, a local emulator, is given) with these
    attempts and timeouts. Without endpoint_url, boto3 still honours AWS_ENDPOINT_URL.
    `credentials` maps AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN to
    values; without them boto3 finds credentials the usual way."""
    if BOTO_IMPORT_ERROR is not None:
        raise GlobalConfigError(f"the Python package boto3 is required: {BOTO_IMPORT_ERROR}")
    try:
        return aws_client("s3", region, endpoint_url, credentials=credentials,
                          attempts=max_attempts, connect_timeout=connect_timeout,
                          read_timeout=read_timeout)
    except AwsClientError as exc:
        raise GlobalConfigError(str(exc)) from None


@dataclass(frozen=True)
class UpdateResult:
    doc: Doc                 # the document now stored (or the one read, when unchanged)
    etag: str | None         # its ETag (None when nothing exists and nothing was written)
    changed: bool
    before: Doc | None       # the document the change was applied to (None: first write)
    attempts: int            # conditional writes tried (0 when unchanged)

    @property
    def epoch(self) -> int:
        return int(self.doc["epoch"])


class _Conflict(Exception):
    """The conditional write lost a race (412 PreconditionFailed, 409 conflict)."""


_DENIED = {"AccessDenied", "AllAccessDisabled", "InvalidAccessKeyId", "SignatureDoesNotMatch",
           "ExpiredToken", "InvalidToken", "AccountProblem", "403"}
_CONFLICT = {"PreconditionFailed", "ConditionalRequestConflict", "412", "409"}


_CONDITION_HEADERS = {"IfMatch": "If-Match", "IfNoneMatch": "If-None-Match"}
_HEADER_LOCK = threading.Lock()


def _put_takes(client: Any, condition: Mapping[str, str]) -> bool:
    """Whether this botocore's PutObject has the conditional-write parameters (1.35+)."""
    try:
        members = client.meta.service_model.operation_model("PutObject").input_shape.members
    except Exception:  # not a real client (a test double): let the call itself answer
        return True
    return all(name in members for name in condition)


def _put_with_headers(client: Any, request: Mapping[str, Any],
                      condition: Mapping[str, str]) -> Any:
    """PutObject with If-Match / If-None-Match sent as HTTP headers: an older botocore (Debian
    12's 1.29, EL 9's) lacks the parameters, but S3 honours the headers all the same. The
    handler is added for this one call; the lock keeps it off other threads' calls."""
    headers = {_CONDITION_HEADERS[name]: value for name, value in condition.items()}

    def add(params: dict[str, Any], **_: Any) -> None:
        params["headers"].update(headers)

    events, event, uid = client.meta.events, "before-call.s3.PutObject", "hostkit-conditional-put"
    with _HEADER_LOCK:
        events.register(event, add, unique_id=uid)
        try:
            return client.put_object(**request)
        finally:
            events.unregister(event, unique_id=uid)


class GlobalConfig:
    """The document at s3://bucket/key, read and written safely.

    `sleep` and `jitter` are injectable so tests need not wait."""

    def __init__(self, client: Any, bucket: str, key: str,
                 sleep: Callable[[float], None] = time.sleep,
                 jitter: Callable[[float, float], float] = random.uniform) -> None:
        self.client = client
        self.bucket = bucket
        self.key = key
        self._sleep = sleep
        self._jitter = jitter
        # The version the document was stored as when last read (1: the next write upgrades).
        self.stored_version = 2

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    # -- errors
    def _error(self, exc: Exception, action: str) -> GlobalConfigError:
        if not isinstance(exc, ClientError):
            return S3Unavailable(f"cannot {action} {self.location}: {exc}")
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        detail = f"{code}: {error.get('Message', '')}".rstrip(": ")
        if code == "NoSuchBucket":
            return BucketMissing(f"cannot {action} {self.location}: bucket '{self.bucket}' "
                                 "does not exist (check the bucket name and the region/endpoint)")
        if code in _DENIED or status == 403:
            return AccessDenied(f"cannot {action} {self.location}: access denied ({detail}); "
                                "check the credentials and the bucket policy")
        if code in ("NoSuchKey", "404") or status == 404:
            return DocumentMissing(f"cannot {action} {self.location}: the document does not "
                                   "exist (create it first)")
        return S3Unavailable(f"cannot {action} {self.location}: {detail or exc}")

    @staticmethod
    def _code(exc: Any) -> str:
        return str(exc.response.get("Error", {}).get("Code", ""))

    # -- reading
    def _get(self, **extra: Any) -> tuple[Doc, str] | None:
        try:
            reply = self.client.get_object(Bucket=self.bucket, Key=self.key, **extra)
            body = reply["Body"].read()
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if extra.get("IfNoneMatch") and (status == 304 or self._code(exc) in
                                             ("304", "NotModified")):
                return None
            raise self._error(exc, "read") from None
        except BotoCoreError as exc:
            raise self._error(exc, "read") from None
        doc, self.stored_version = parse_stored(body, self.location)
        return doc, str(reply["ETag"])

    def read(self) -> tuple[Doc, str]:
        """The valid document and its ETag."""
        result = self._get()
        assert result is not None
        return result

    def read_if_changed(self, etag: str | None) -> tuple[Doc, str] | None:
        """None when the stored ETag is still `etag` (304, nothing downloaded)."""
        return self._get(IfNoneMatch=etag) if etag else self._get()

    # -- writing
    def _put(self, doc: Doc, etag: str | None) -> str:
        condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
        request = {"Bucket": self.bucket, "Key": self.key, "Body": dumps(doc),
                   "ContentType": CONTENT_TYPE, "ServerSideEncryption": "AES256"}
        try:
            if _put_takes(self.client, condition):
                reply = self.client.put_object(**request, **condition)
            else:
                reply = _put_with_headers(self.client, request, condition)
        except ClientError as exc:
            # NoSuchKey after If-Match: the document was deleted since we read it.
            if self._code(exc) in _CONFLICT or (etag and self._code(exc) == "NoSuchKey"):
                raise _Conflict() from None
            raise self._error(exc, "write") from None
        except ParamValidationError as exc:
            raise GlobalConfigError(f"cannot write {self.location}: this botocore does not "
                                    f"support S3 conditional writes (If-Match): {exc}") from None
        except BotoCoreError as exc:
            raise self._error(exc, "write") from None
        return str(reply["ETag"])

    def create(self, updated_by: str, doc: Doc | None = None) -> tuple[Doc, str]:
        """Write the first document (default: empty, epoch 0) only if none exists."""
        doc = validate(doc if doc is not None else create_document(updated_by),
                       f"new document for {self.location}")
        try:
            return doc, self._put(doc, None)
        except _Conflict:
            raise DocumentExists(f"{self.location} already exists: not overwritten") from None

    def _base(self, create: bool) -> tuple[Doc, str | None]:
        try:
            return self.read()
        except DocumentMissing:
            if not create:
                raise
            self.stored_version = 2
            return create_document("hostkit"), None

    def _apply(self, before: Doc, change: Change, updated_by: str) -> tuple[Doc, bool]:
        return apply_change(before, change, updated_by, source=self.location,
                            force=self.stored_version < 2)

    def plan(self, change: Change, updated_by: str, create: bool = False) -> UpdateResult:
        """What update() would write, without writing (check mode)."""
        before, etag = self._base(create)
        new, changed = self._apply(before, change, updated_by)
        return UpdateResult(new, etag, changed, before if etag else None, 0)

    def backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(1 s, 50 ms * 2**(attempt-1))]."""
        return self._jitter(0.0, min(1.0, 0.05 * 2 ** (attempt - 1)))

    def update(self, change: Change, updated_by: str, max_attempts: int = 5,
               create: bool = False) -> UpdateResult:
        """Read, apply `change`, write with If-Match (If-None-Match: * when the document does
        not exist yet and `create`), epoch + 1. After a lost race: wait a little, re-read,
        re-apply, at most `max_attempts` writes. No write when the change changes nothing."""
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        for attempt in range(1, max_attempts + 1):
            before, etag = self._base(create)
            new, changed = self._apply(before, change, updated_by)
            if not changed:
                return UpdateResult(before, etag, False, before if etag else None, attempt - 1)
            try:
                new_etag = self._put(new, etag)
            except _Conflict:
                if attempt < max_attempts:
                    self._sleep(self.backoff(attempt))
                continue
            return UpdateResult(new, new_etag, True, before if etag else None, attempt)
        raise RetriesExhausted(f"{self.location}: gave up after {max_attempts} conditional "
                               "writes, each lost to a concurrent writer; nothing was written "
                               "by this change")


# --------------------------------------------------------------------------- readers


class EpochGuard:
    """Accepts a document only when it is valid and its epoch is not lower than the last
    accepted one (an equal epoch is the same version read again)."""

    def __init__(self, epoch: int | None = None) -> None:
        self.epoch = epoch

    def accept(self, doc: Any, source: str = "document") -> Doc:
        validate(doc, source)
        if self.epoch is not None and doc["epoch"] < self.epoch:
            raise StaleEpoch(source, doc["epoch"], self.epoch)
        self.epoch = doc["epoch"]
        return doc


class Reader:
    """Polls a store: `poll()` returns the new document when it changed and is accepted,
    None when unchanged (If-None-Match), and raises when the new one is refused or cannot
    be read; `doc` stays the last good document either way."""

    def __init__(self, store: GlobalConfig, guard: EpochGuard | None = None) -> None:
        self.store = store
        self.guard = guard or EpochGuard()
        self.doc: Doc | None = None
        self.etag: str | None = None

    def poll(self) -> Doc | None:
        result = self.store.read_if_changed(self.etag)
        if result is None:
            return None
        doc, etag = result
        self.guard.accept(doc, self.store.location)
        self.doc, self.etag = doc, etag
        return doc


# --------------------------------------------------------------------------- queries


def resolve(doc: Any, path: str) -> Any:
    """The value at a dotted path, e.g. 'products.hello.db.master' or 'products.hello.web.0'.
    Keys may contain dots (server ids such as web01.rack1.example.net): at each level the
    longest matching key wins. KeyError names the part of the path that is missing."""
    parts = path.split(".") if path else []
    if any(p == "" for p in parts):
        raise KeyError(f"'{path}' is not a dotted path")
    node, done = doc, []
    while parts:
        for size in range(len(parts), 0, -1):
            key = ".".join(parts[:size])
            if isinstance(node, Mapping) and key in node:
                node, done, parts = node[key], done + [key], parts[size:]
                break
            if isinstance(node, list) and size == 1 and key.isdigit() and int(key) < len(node):
                node, done, parts = node[int(key)], done + [key], parts[1:]
                break
        else:
            where = ".".join(done) or "the document"
            raise KeyError(f"'{path}': '{parts[0]}' not found in {where}")
    return node
