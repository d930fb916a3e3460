"""Products: the desired-state description of each web product, and its validation.

A product is described once, in git (`inventory/<env>/group_vars/all/products.yml`, the list
`platform_products`). Roles receive the products of their host as a list and check them
with `product_problems` before they change anything, so a bad entry stops the run with a
message that names the product and the field. No Ansible imports: unit-testable as is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,30}$")
USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
DOMAIN_RE = re.compile(r"^(?=.{1,253}$)(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*"
                       r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
CRON_FIELD_RE = re.compile(r"^[0-9A-Za-z*/,\-]+$")
SOURCE_TYPES = {"local": ("path",), "git": ("repo",), "tarball": ("url",), "s3": ("bucket", "key")}
# Users a cron job may run as besides the product's own users.
SYSTEM_CRON_USERS = frozenset({"root"})


def product_users(product: Mapping[str, Any]) -> list[str]:
    """The product's system user first, then its extra users."""
    names = [str(product.get("user") or product.get("name", ""))]
    names += [str(u.get("name", "")) for u in product.get("users") or [] if isinstance(u, dict)]
    return names


def _domains(name: str, product: Mapping[str, Any]) -> list[str]:
    domains = product.get("domains")
    if not isinstance(domains, list) or not domains:
        return [f"product '{name}': field 'domains' is missing or empty (a list of host names)"]
    return [f"product '{name}': field 'domains' has an invalid host name '{d}'"
            for d in domains if not isinstance(d, str) or not DOMAIN_RE.match(d.lower())]


def _source(name: str, product: Mapping[str, Any]) -> list[str]:
    source = product.get("source")
    if not isinstance(source, dict):
        return [f"product '{name}': field 'source' is missing (type: local, git, tarball or s3)"]
    kind = source.get("type")
    if kind not in SOURCE_TYPES:
        return [f"product '{name}': field 'source.type' is '{kind}', "
                f"expected one of {', '.join(sorted(SOURCE_TYPES))}"]
    return [f"product '{name}': field 'source.{key}' is required for a {kind} source"
            for key in SOURCE_TYPES[kind] if not source.get(key)]


CHECKSUM_RE = re.compile(r"^(sha1|sha256|sha512|md5):[0-9a-fA-F]+$")
HEALTHCHECK_RE = re.compile(r"^/\S*$")


def _source_details(name: str, product: Mapping[str, Any]) -> list[str]:
    source = product.get("source")
    checksum = source.get("checksum") if isinstance(source, dict) else None
    if checksum is not None and not CHECKSUM_RE.match(str(checksum)):
        return [f"product '{name}': field 'source.checksum' must be <algorithm>:<hex digest>, "
                f"got '{checksum}'"]
    return []


def _healthcheck(name: str, product: Mapping[str, Any]) -> list[str]:
    path = product.get("healthcheck")
    if path is not None and not (isinstance(path, str) and HEALTHCHECK_RE.match(path)):
        return [f"product '{name}': field 'healthcheck' must be a path starting with /, "
                f"got '{path}'"]
    return []


def _database(name: str, product: Mapping[str, Any]) -> list[str]:
    database = product.get("database")
    if database is not None and not isinstance(database, dict):
        return [f"product '{name}': field 'database' must be a mapping (name, user, cluster)"]
    cluster = (database or {}).get("cluster")
    if cluster is not None and not (isinstance(cluster, str) and NAME_RE.match(cluster)):
        return [f"product '{name}': field 'database.cluster' must be a cluster name (lower "
                f"case letters, digits and _, starting with a letter), got '{cluster}'"]
    return []


def database_cluster(product: Mapping[str, Any]) -> str | None:
    """The database cluster of a product: `database.cluster`, by default the product's
    name (a cluster of its own); None for a product without a database."""
    database = product.get("database")
    if not isinstance(database, Mapping):
        return None
    return str(database.get("cluster") or product.get("name"))


def _shared_clusters(products: Sequence[Mapping[str, Any]]) -> list[str]:
    """Products on one cluster share its servers: each needs a database and an account of
    its own there."""
    problems: list[str] = []
    seen: dict[tuple[str, str, str], str] = {}
    for product in products:
        cluster = database_cluster(product)
        database = product.get("database")
        if cluster is None or not isinstance(database, Mapping):
            continue
        name = str(product.get("name"))
        for field, value in (("name", database.get("name")),
                             ("user", database.get("user") or name)):
            key = (cluster, field, str(value))
            if value and key in seen:
                problems.append(f"product '{name}': field 'database.{field}' is '{value}', as "
                                f"for product '{seen[key]}' on the same cluster '{cluster}'")
            seen.setdefault(key, name)
    return problems


def _users(name: str, product: Mapping[str, Any]) -> list[str]:
    problems = []
    for field in ("user", "group"):
        value = product.get(field)
        if value is not None and not (isinstance(value, str) and USER_RE.match(value)):
            problems.append(f"product '{name}': field '{field}' is not a valid name: '{value}'")
    for i, user in enumerate(product.get("users") or []):
        if not isinstance(user, dict) or not USER_RE.match(str(user.get("name", ""))):
            problems.append(f"product '{name}': field 'users[{i}].name' is missing or invalid")
    return problems


def _cron(name: str, product: Mapping[str, Any]) -> list[str]:
    problems = []
    known = set(product_users(product)) | SYSTEM_CRON_USERS
    for i, job in enumerate(product.get("cron") or []):
        where = f"product '{name}': cron job {job.get('name', i) if isinstance(job, dict) else i}"
        if not isinstance(job, dict):
            problems.append(f"{where}: is not a mapping")
            continue
        schedule = str(job.get("schedule", "")).split()
        if len(schedule) != 5 or not all(CRON_FIELD_RE.match(f) for f in schedule):
            problems.append(f"{where}: field 'schedule' must have 5 cron fields, "
                            f"got '{job.get('schedule', '')}'")
        if not str(job.get("command", "")).strip():
            problems.append(f"{where}: field 'command' is missing")
        if "\n" in str(job.get("command", "")):
            problems.append(f"{where}: field 'command' must be one line")
        user = job.get("user", product.get("user") or name)
        if user not in known:
            problems.append(f"{where}: field 'user' names unknown user '{user}' "
                            f"(known: {', '.join(sorted(known))})")
    return problems


def _directives(name: str, product: Mapping[str, Any]) -> list[str]:
    lines = product.get("apache_directives") or []
    if not isinstance(lines, list) or not all(isinstance(x, str) for x in lines):
        return [f"product '{name}': field 'apache_directives' must be a list of lines"]
    return [f"product '{name}': field 'apache_directives' line {i + 1} spans lines"
            for i, x in enumerate(lines) if "\n" in x]


def _runtime_reload(name: str, product: Mapping[str, Any]) -> list[str]:
    value = product.get("runtime_reload", True)
    if not isinstance(value, bool):
        return [f"product '{name}': field 'runtime_reload' must be true or false, got {value!r}"]
    return []


CHECKS = {
    "domains": _domains,
    "source": lambda name, product: _source(name, product) + _source_details(name, product),
    "healthcheck": _healthcheck,
    "database": _database,
    "users": _users,
    "cron": _cron,
    "apache_directives": _directives,
    "runtime_reload": _runtime_reload,
}


def product_problems(products: Any, require: Iterable[str] = tuple(CHECKS)) -> list[str]:
    """Every problem found in a list of products, each naming the product and the field.
    `require` picks the checks a role needs (all by default); names and duplicates are
    always checked. An empty list means the products are fine."""
    if not isinstance(products, Sequence) or isinstance(products, (str, bytes)):
        return [f"products must be a list of mappings, got {type(products).__name__}"]
    problems: list[str] = []
    seen: set[str] = set()
    for i, product in enumerate(products):
        if not isinstance(product, Mapping):
            problems.append(f"product #{i + 1}: is not a mapping")
            continue
        name = product.get("name")
        if not isinstance(name, str) or not NAME_RE.match(name):
            problems.append(f"product #{i + 1}: field 'name' is missing or invalid ('{name}'): "
                            "lower case letters, digits and _ , starting with a letter")
            continue
        if name in seen:
            problems.append(f"product '{name}': duplicate product name")
        seen.add(name)
        for check in require:
            problems.extend(CHECKS[check](name, product))
    if "database" in require:
        problems.extend(_shared_clusters([p for p in products if isinstance(p, Mapping)]))
    return problems


def select_products(catalog: Any, names: Iterable[str]) -> list[dict[str, Any]]:
    """The catalog entries of the named products, in the order of `names`."""
    entries = [p for p in catalog or [] if isinstance(p, Mapping)]
    by_name = {p.get("name"): p for p in entries}
    if len(by_name) != len(entries):
        dupes = sorted({str(p.get("name")) for p in entries
                        if sum(q.get("name") == p.get("name") for q in entries) > 1})
        raise KeyError("; ".join(f"product '{d}': field 'name' is used by more than one entry "
                                 "of the catalog" for d in dupes))
    missing = [n for n in names if n not in by_name]
    if missing:
        known = ", ".join(sorted(str(k) for k in by_name))
        raise KeyError(f"unknown product(s) {', '.join(missing)} (catalog has: {known})")
    return [dict(by_name[n]) for n in dict.fromkeys(names)]
