"""Settings checks of role apache (tasks/validate.yml): what the product filter
(plugin_utils/products.py, called beside this in the same task) does not check of the
products, and the role's own settings."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from plugin_utils.role_checks.common import (
    address_or_network,
    each_matches,
    jinja_items,
    whole_number_as_written,
)

# A directory inside the release: relative (a leading / is read as relative too), plain
# names, no '.' or '..' segment.
DOCROOT = re.compile(r"^/?[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*/?$")
DOT_SEGMENT = re.compile(r"(^|/)[.][.]?(/|$)")
STATUS_PATH = re.compile(r"^/[A-Za-z0-9._/-]*$")
HEADER_NAME = re.compile(r"^[A-Za-z0-9-]+$")
# What a double-quoted value of the Apache configuration cannot hold.
UNQUOTABLE = re.compile(r'["\\\n]')
# How a source is written (the firewall templates take it as is): dotted IPv4 or IPv6 text,
# an optional /prefix, no zone (%eth0), no netmask, no leading zeros, no blanks.
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
IPV4_TEXT = re.compile(rf"^({_OCTET}\.){{3}}{_OCTET}(/([0-9]|[12][0-9]|3[0-2]))?$")
IPV6_TEXT = re.compile(r"^[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*(/([0-9]|[1-9][0-9]|1[01][0-9]|12[0-8]))?$")


def _sequence(value: Any) -> list[Any]:
    """Jinja's `value is sequence and value is not string`: a list or tuple, or a mapping
    (its keys); anything else is no sequence (nothing to loop over)."""
    if isinstance(value, str) or not (hasattr(value, "__len__") and hasattr(value, "__getitem__")):
        return []
    return list(value)


def _docroot(name: str, product: Mapping[str, Any]) -> list[str]:
    docroot = product.get("docroot") or ""
    if (not isinstance(docroot, str) or not (docroot == "" or DOCROOT.match(docroot))
            or DOT_SEGMENT.search(docroot)):
        return [f"product '{name}': field 'docroot' must be a directory inside the release "
                f"(letters, digits, . _ - and /, no '..'), got '{docroot}'"]
    return []


def products(settings: Mapping[str, Any]) -> list[str]:
    """Each product's docroot, and no domain (in any case) served by two products."""
    found: list[str] = []
    owners: dict[str, str] = {}
    for product in _sequence(settings.get("apache_products")):
        if not isinstance(product, Mapping) or "name" not in product:
            continue
        name = str(product["name"])
        found += _docroot(name, product)
        for domain in _sequence(product.get("domains")):
            if not isinstance(domain, str):
                continue
            owner = owners.setdefault(domain.lower(), name)
            if owner != name:
                found.append(f"product '{name}': field 'domains' repeats '{domain}' "
                             f"of product '{owner}'")
    return found


def _text(settings: Mapping[str, Any], name: str, pattern: re.Pattern[str],
          what: str) -> list[str]:
    value = settings.get(name)
    if not pattern.match(str(value)):
        return [f"{name} must be {what}, got {value!r}"]
    return []


def security_headers(settings: Mapping[str, Any]) -> list[str]:
    value = settings.get("apache_security_headers")
    if not isinstance(value, Mapping):
        return [f"apache_security_headers must be a mapping of header names to values, "
                f"got {value!r}"]
    return [f"apache_security_headers: {header} needs a header name and a value without "
            f"quotes, backslashes or line breaks, got {text!r}"
            for header, text in value.items()
            if not HEADER_NAME.match(str(header)) or UNQUOTABLE.search(str(text))]


def cache_control(settings: Mapping[str, Any]) -> list[str]:
    value = settings.get("apache_dynamic_cache_control")
    if UNQUOTABLE.search(str(value)):
        return ["apache_dynamic_cache_control must not contain quotes, backslashes or line "
                f"breaks, got {value!r}"]
    return []


def source(item: Any) -> bool:
    """An IPv4/IPv6 address or CIDR, written as IPV4_TEXT or IPV6_TEXT say."""
    return (isinstance(item, str) and bool(IPV4_TEXT.match(item) or IPV6_TEXT.match(item))
            and address_or_network(item))


def allowed_sources(settings: Mapping[str, Any]) -> list[str]:
    """A list of IPv4/IPv6 addresses or CIDRs; empty (also '') lets anyone in."""
    name = "apache_allowed_sources"
    value = settings.get(name)
    items = jinja_items(value)
    if items is None or (isinstance(value, str) and value):
        return [f"{name} must be a list of addresses or CIDRs, got {value!r}"]
    return [f"{name}: {item!r} is not an IPv4/IPv6 address or CIDR"
            for item in items if not source(item)]


def problems(settings: Mapping[str, Any]) -> list[str]:
    return [
        *products(settings),
        *whole_number_as_written(settings, "apache_static_max_age", unit="seconds"),
        *_text(settings, "apache_status_path", STATUS_PATH, "a URL path starting with /"),
        *each_matches(settings, "apache_static_extensions", r"^[A-Za-z0-9]+$",
                      "a file extension (letters and digits)"),
        *each_matches(settings, "apache_compress_types", r"^[a-z0-9.+-]+/[a-z0-9.+-]+$",
                      "a content type"),
        *security_headers(settings),
        *cache_control(settings),
        *allowed_sources(settings),
    ]
