"""Products: the desired-state description of each web product, and its validation.

A product is described once, in git (`inventory/<env>/group_vars/all/products.yml`, the list
`platform_products`). Roles receive the products of their host as a list and check them
with `product_problems` before they change anything, so a bad entry stops the run with a
message that names the product and the field. No Ansible imports: unit-testable as is.

products.yml is written by product teams: an entry must not be able to gain root on its
hosts or touch another product (plugin_utils/product_trust.py has the rules). Operators may
allow a product more in the platform setting `platform_product_exceptions`, passed here as
`exceptions`; products.yml itself cannot.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from plugin_utils import product_trust as trust

NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,30}$")
USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
# RFC 1123 host names of at least two labels whose last label starts with a letter (no
# address, no `localhost`); a leading `*.` (a wildcard alias) is allowed.
DOMAIN_RE = re.compile(r"^(?=.{1,253}$)(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+"
                       r"[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")
CRON_FIELD_RE = re.compile(r"^[0-9A-Za-z*/,\-]+$")
SOURCE_TYPES = {"local": ("path",), "git": ("repo",), "tarball": ("url",), "s3": ("bucket", "key")}
# Where a product's code may come from: a path in this repository (relative, no '..'), and
# remote sources over the network only (no file://, no ext:: or local git repositories).
GIT_REPO_RE = re.compile(r"^(https://|ssh://|git@[A-Za-z0-9.-]+:)[^\s]+$")
TARBALL_URL_RE = re.compile(r"^https?://[^\s]+$")
S3_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
# A directory inside the release: relative (a leading / is read as relative too).
DOCROOT_RE = re.compile(r"^/?[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*/?$")
DOT_SEGMENT_RE = re.compile(r"(^|/)\.\.?(/|$)")
# Ordinary (non-system) group ids of Debian and EL.
GID_RANGE = (1000, 59999)


def product_users(product: Mapping[str, Any]) -> list[str]:
    """The product's system user first, then its extra users."""
    names = [str(product.get("user") or product.get("name", ""))]
    names += [str(u.get("name", "")) for u in product.get("users") or [] if isinstance(u, dict)]
    return names


def product_groups(product: Mapping[str, Any]) -> list[str]:
    """The product's group first, then its extra groups."""
    names = [str(product.get("group") or product.get("name", ""))]
    names += [str(g.get("name", "")) for g in product.get("groups") or [] if isinstance(g, dict)]
    return names


def _domains(name: str, product: Mapping[str, Any], _exceptions: Any = None) -> list[str]:
    domains = product.get("domains")
    if not isinstance(domains, list) or not domains:
        return [f"product '{name}': field 'domains' is missing or empty (a list of host names)"]
    return [f"product '{name}': field 'domains' has an invalid host name '{d}'"
            for d in domains if not isinstance(d, str) or not DOMAIN_RE.match(d.lower())]


def _source(name: str, product: Mapping[str, Any], _exceptions: Any = None) -> list[str]:
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


def _source_location(source: Mapping[str, Any]) -> tuple[str, str] | None:
    """(field, what it must be) when the source's location is refused."""
    kind = source.get("type")
    path, repo, url = source.get("path"), source.get("repo"), source.get("url")
    if kind == "local" and path and (not isinstance(path, str) or path.startswith("/")
                                     or DOT_SEGMENT_RE.search(path) or "\n" in path):
        return "path", "a relative path inside the repository, without '..'"
    if kind == "git" and repo and not (isinstance(repo, str) and GIT_REPO_RE.match(repo)):
        return "repo", "an https://, ssh:// or git@host: repository address"
    if kind == "tarball" and url and not (isinstance(url, str) and TARBALL_URL_RE.match(url)):
        return "url", "an http:// or https:// address"
    if kind == "s3" and source.get("bucket") and not S3_BUCKET_RE.match(str(source["bucket"])):
        return "bucket", "an S3 bucket name"
    return None


def _source_details(name: str, product: Mapping[str, Any]) -> list[str]:
    source = product.get("source")
    if not isinstance(source, dict):
        return []
    problems = []
    checksum = source.get("checksum")
    if checksum is not None and not CHECKSUM_RE.match(str(checksum)):
        problems.append(f"product '{name}': field 'source.checksum' must be <algorithm>:<hex "
                        f"digest>, got '{checksum}'")
    refused = _source_location(source) if source.get("type") in SOURCE_TYPES else None
    if refused:
        field, what = refused
        problems.append(f"product '{name}': field 'source.{field}' must be {what}, "
                        f"got '{source.get(field)}'")
    return problems


def _docroot(name: str, product: Mapping[str, Any], _exceptions: Any = None) -> list[str]:
    docroot = product.get("docroot") or ""
    if (not isinstance(docroot, str) or not (docroot == "" or DOCROOT_RE.match(docroot))
            or DOT_SEGMENT_RE.search(docroot)):
        return [f"product '{name}': field 'docroot' must be a directory inside the release "
                f"(letters, digits, . _ - and /, no '..'), got '{docroot}'"]
    return []


def _healthcheck(name: str, product: Mapping[str, Any], _exceptions: Any = None) -> list[str]:
    path = product.get("healthcheck")
    if path is not None and not (isinstance(path, str) and HEALTHCHECK_RE.match(path)):
        return [f"product '{name}': field 'healthcheck' must be a path starting with /, "
                f"got '{path}'"]
    return []


def _database(name: str, product: Mapping[str, Any], _exceptions: Any = None) -> list[str]:
    database = product.get("database")
    if database is None:
        return []
    if not isinstance(database, dict):
        return [f"product '{name}': field 'database' must be a mapping (name, user, cluster)"]
    problems = []
    cluster = database.get("cluster")
    if cluster is not None and not (isinstance(cluster, str) and NAME_RE.match(cluster)):
        problems.append(f"product '{name}': field 'database.cluster' must be a cluster name "
                        "(lower case letters, digits and _, starting with a letter), "
                        f"got '{cluster}'")
    if database.get("name") is not None:
        problem = trust.database_name_problem(database["name"])
        if problem:
            problems.append(f"product '{name}': field 'database.name' {problem}")
    user = database.get("user") or name
    problem = trust.database_user_problem(user)
    if problem:
        problems.append(f"product '{name}': field 'database.user' {problem}")
    return problems


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


def _owned(name: str, field: str, value: Any) -> list[str]:
    """A unix user or group name of the product: valid, and the product's own."""
    if not (isinstance(value, str) and USER_RE.match(value)):
        return [f"product '{name}': field '{field}' is not a valid name: '{value}'"]
    if not trust.owned_name(name, value):
        return [f"product '{name}': field '{field}' is '{value}': a product's users and "
                f"groups are named '{name}' or '{name}_...'"]
    return []


def _extra_groups(name: str, product: Mapping[str, Any]) -> list[str]:
    problems = []
    for i, group in enumerate(product.get("groups") or []):
        if not isinstance(group, dict):
            problems.append(f"product '{name}': field 'groups[{i}]' is not a mapping")
            continue
        problems += _owned(name, f"groups[{i}].name", group.get("name"))
        gid = group.get("gid")
        if gid is not None and (isinstance(gid, bool) or not str(gid).isdigit()
                                or not GID_RANGE[0] <= int(str(gid)) <= GID_RANGE[1]):
            problems.append(f"product '{name}': field 'groups[{i}].gid' must be a whole number "
                            f"from {GID_RANGE[0]} to {GID_RANGE[1]}, got '{gid}'")
    return problems


def _user_rights(name: str, product: Mapping[str, Any], i: int, user: Mapping[str, Any],
                 exceptions: Any) -> list[str]:
    """An extra user's groups (the product's own) and sudo rules (as the product's own
    users), besides what the operators allow the product."""
    where = f"product '{name}': field 'users[{i}]"
    problems = []
    groups = set(product_groups(product))
    joinable = groups | set(trust.allowed(exceptions, name, "user_groups"))
    member_of = user.get("groups") or []
    for group in member_of if isinstance(member_of, list) else []:
        if group not in joinable:
            problems.append(f"{where}.groups' names group '{group}', which is not the "
                            f"product's (its groups: {', '.join(sorted(groups))})")
    rules = user.get("sudo") or []
    granted = set(trust.allowed(exceptions, name, "sudo"))
    for j, rule in enumerate(rules if isinstance(rules, list) else []):
        if rule in granted:
            continue
        problem = trust.sudo_rule_problem(rule, product_users(product), groups)
        if problem:
            problems.append(f"{where}.sudo[{j}]' {problem}")
    return problems


def _users(name: str, product: Mapping[str, Any], exceptions: Any = None) -> list[str]:
    problems = []
    for field in ("user", "group"):
        value = product.get(field)
        if value is not None:
            problems += _owned(name, field, value)
    for i, user in enumerate(product.get("users") or []):
        if not isinstance(user, dict) or not USER_RE.match(str(user.get("name", ""))):
            problems.append(f"product '{name}': field 'users[{i}].name' is missing or invalid")
            continue
        problems += _owned(name, f"users[{i}].name", user["name"])
        problems += _user_rights(name, product, i, user, exceptions)
    return problems + _extra_groups(name, product)


def _cron(name: str, product: Mapping[str, Any], exceptions: Any = None) -> list[str]:
    problems = []
    known = set(product_users(product)) | set(trust.allowed(exceptions, name, "cron_users"))
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


def _directives(name: str, product: Mapping[str, Any], exceptions: Any = None) -> list[str]:
    lines = product.get("apache_directives") or []
    if not isinstance(lines, list) or not all(isinstance(x, str) for x in lines):
        return [f"product '{name}': field 'apache_directives' must be a list of lines"]
    extra = trust.allowed(exceptions, name, "apache_directives")
    problems = []
    for i, line in enumerate(lines):
        if "\n" in line:
            problems.append(f"product '{name}': field 'apache_directives' line {i + 1} spans lines")
            continue
        problem = trust.apache_directive_problem(line, extra)
        if problem:
            problems.append(f"product '{name}': field 'apache_directives' line {i + 1} "
                            f"{problem}")
    return problems


def _runtime_reload(name: str, product: Mapping[str, Any], _exceptions: Any = None) -> list[str]:
    value = product.get("runtime_reload", True)
    if not isinstance(value, bool):
        return [f"product '{name}': field 'runtime_reload' must be true or false, got {value!r}"]
    return []


CHECKS = {
    "domains": _domains,
    "source": lambda name, product, _exceptions=None: (_source(name, product)
                                                       + _source_details(name, product)),
    "docroot": _docroot,
    "healthcheck": _healthcheck,
    "database": _database,
    "users": _users,
    "cron": _cron,
    "apache_directives": _directives,
    "runtime_reload": _runtime_reload,
}


def _unix_names(product: Mapping[str, Any]) -> set[str]:
    return {n for n in product_users(product) + product_groups(product) if n}


def _shared_names(products: Sequence[Mapping[str, Any]], require: Iterable[str]) -> list[str]:
    """No two products of the list claim one unix user or group name (users), or one
    domain (domains)."""
    problems: list[str] = []
    fields = [f for f in ("users", "domains") if f in require]
    owners: dict[tuple[str, str], str] = {}
    for product in products:
        name = str(product.get("name"))
        claims = []
        if "users" in fields:
            claims += [("users", n) for n in sorted(_unix_names(product))]
        if "domains" in fields and isinstance(product.get("domains"), list):
            claims += [("domains", str(d).lower()) for d in product["domains"]]
        for field, value in claims:
            owner = owners.setdefault((field, value), name)
            if owner != name:
                problems.append(f"product '{name}': field '{field}' claims '{value}', which "
                                f"belongs to product '{owner}'")
    return problems


def product_problems(products: Any, require: Iterable[str] = tuple(CHECKS),
                     exceptions: Any = None) -> list[str]:
    """Every problem found in a list of products, each naming the product and the field.
    `require` picks the checks a role needs (all by default); names and duplicates are
    always checked. `exceptions` is the operators' platform_product_exceptions (product
    name -> what it is allowed besides the rules). An empty list means the products are
    fine."""
    if not isinstance(products, Sequence) or isinstance(products, (str, bytes)):
        return [f"products must be a list of mappings, got {type(products).__name__}"]
    require = tuple(require)
    problems: list[str] = trust.exceptions_problems(exceptions)
    seen: set[str] = set()
    valid: list[Mapping[str, Any]] = []
    for i, product in enumerate(products):
        if not isinstance(product, Mapping):
            problems.append(f"product #{i + 1}: is not a mapping")
            continue
        name = product.get("name")
        if not isinstance(name, str) or not NAME_RE.match(name):
            problems.append(f"product #{i + 1}: field 'name' is missing or invalid ('{name}'): "
                            "lower case letters, digits and _ , starting with a letter")
            continue
        if trust.reserved_name(name):
            problems.append(f"product '{name}': field 'name' is the name of a system or "
                            "platform account (or starts with 'hostkit')")
            continue
        if name in seen:
            problems.append(f"product '{name}': duplicate product name")
        seen.add(name)
        valid.append(product)
        for check in require:
            problems.extend(CHECKS[check](name, product, exceptions))
    problems.extend(_shared_names(valid, require))
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


def _extra_users(products: Sequence[Mapping[str, Any]]) -> list[tuple[Mapping[str, Any], Any]]:
    """(product, extra user) pairs, as subelements('users') gives them."""
    return [(product, user) for product in products or []
            for user in (product.get("users") or [])]


def sudo_files(products: Sequence[Mapping[str, Any]], directory: str, template: str,
               **extra: Any) -> list[dict[str, Any]]:
    """One file entry (hostkit_files) per product whose extra users have sudo rules:
    `<directory>/hostkit-<product>` from `template` with the product as `__common_product`,
    root-owned 0440 and checked with `visudo -cf`; `extra` (tags, say) added to each."""
    names = []
    for product, user in _extra_users(products):
        if user.get("sudo") and product["name"] not in names:
            names.append(product["name"])
    by_name = {p["name"]: p for p in products}
    return [{"path": f"{directory}/hostkit-{name}", "template": template,
             "vars": {"__common_product": by_name[name]}, "owner": "root", "group": "root",
             "mode": "0440", "validate": "visudo -cf %s", **extra} for name in names]


def absent_authorized_keys(products: Sequence[Mapping[str, Any]], **extra: Any
                           ) -> list[dict[str, Any]]:
    """A removal entry (hostkit_files) for `~user/.ssh/authorized_keys` of each extra user
    given `ssh_keys: []` (left out: keys untouched); `extra` added to each."""
    return [{"path": f"~{user['name']}/.ssh/authorized_keys", "state": "absent", **extra}
            for _product, user in _extra_users(products)
            if "ssh_keys" in user and not user["ssh_keys"]]


def missing_accounts(products: Sequence[Mapping[str, Any]], users: Iterable[str],
                     groups: Iterable[str]) -> list[str]:
    """Problems (empty when fine): each product's user and group, and each cron job's user,
    that is not among the host's `users` and `groups` (getent passwd and group)."""
    users, groups = set(users), set(groups)
    problems = []
    for product in products or []:
        where = f"product '{product['name']}': "
        user = product.get("user") or product["name"]
        group = product.get("group") or product["name"]
        if user not in users:
            problems.append(f"{where}field 'user': user '{user}' does not exist on this host")
        if group not in groups:
            problems.append(f"{where}field 'group': group '{group}' does not exist on this host")
        for index, job in enumerate(product.get("cron") or []):
            cron_user = job.get("user") or user
            if cron_user not in users:
                problems.append(f"{where}cron job {job.get('name') or index}: field 'user': "
                                f"user '{cron_user}' does not exist on this host")
    return problems


def with_accounts(products: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The products, each with its `user` and `group` filled in (the product's name when
    unset), as the roles run its processes and own its files."""
    return [{**product, "user": product.get("user") or product["name"],
             "group": product.get("group") or product["name"]} for product in products or []]
