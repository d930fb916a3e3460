"""Settings checks of role php (tasks/validate.yml): each product's `php` mapping and
`memcached` flag (once the product filter, called beside this in the same task, finds the
products' names and users right), and the role's own settings."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from plugin_utils.products import product_problems
from plugin_utils.role_checks.common import (
    each_matches,
    is_collection,
    jinja_items,
    whole_number_as_written,
)

PM_KEYS = ("pm", "pm_max_children", "pm_start_servers", "pm_min_spare_servers",
           "pm_max_spare_servers", "pm_max_requests", "pm_process_idle_timeout")
PM_MODES = ("dynamic", "ondemand", "static")
# Pool sizes that are whole numbers (pm_max_children at least 1).
PM_NUMBERS = ("pm_max_children", "pm_start_servers", "pm_min_spare_servers",
              "pm_max_spare_servers", "pm_max_requests")
# Set by the role for every pool: a product cannot widen or move them.
RESERVED_KEYS = ("open_basedir", "session.save_handler", "session.save_path", "display_errors")
PM_KEY = re.compile(r"^pm(_|$)")
INI_NAME = re.compile(r"^[a-z_][a-z0-9_.]*$")
UNSAFE_VALUE = re.compile(r'[\n";]')
DIGITS = re.compile(r"^[0-9]+$")


def _key(where: str, key: Any, value: Any) -> list[str]:
    """One key of a product's `php` mapping and its value."""
    if PM_KEY.match(str(key)) and key not in PM_KEYS:
        return [f"{where}.{key}' is not a pool setting ({', '.join(PM_KEYS)})"]
    if key in RESERVED_KEYS:
        return [f"{where}.{key}' is set by the php role"]
    if not INI_NAME.match(str(key)):
        return [f"{where}.{key}' is not a PHP ini setting name"]
    if isinstance(value, Mapping) or is_collection(value) or UNSAFE_VALUE.search(str(value)):
        return [f"{where}.{key}' must be one value without line breaks, quotes or "
                f"semicolons, got {value!r}"]
    return []


def _pool(where: str, pool: Mapping[str, Any]) -> list[str]:
    """The pool settings of a product: its `php` mapping over php_pool_defaults."""
    found = []
    if pool.get("pm") not in PM_MODES:
        found.append(f"{where}.pm' is '{pool.get('pm')}', expected dynamic, ondemand or static")
    for key in PM_NUMBERS:
        value = pool.get(key)
        text = str(value)
        if not DIGITS.match(text) or (key == "pm_max_children" and int(text) < 1):
            least = " >= 1" if key == "pm_max_children" else ""
            found.append(f"{where}.{key}' must be a whole number{least}, got '{value}'")
    return found


def _product(product: Mapping[str, Any], defaults: Any) -> list[str]:
    name = product["name"]
    where = f"product '{name}': field 'php"
    php = product.get("php") or {}
    found = []
    if not isinstance(php, Mapping):
        found.append(f"{where}' must be a mapping of pool and ini settings, got {php!r}")
    elif not isinstance(defaults, Mapping):
        found.append(f"php_pool_defaults must be a mapping of pool and ini settings, "
                     f"got {defaults!r}")
    else:
        for key, value in php.items():
            found += _key(where, key, value)
        found += _pool(where, {**defaults, **php})
    if "memcached" in product and not isinstance(product["memcached"], bool):
        found.append(f"product '{name}': field 'memcached' must be true or false, "
                     f"got {product['memcached']!r}")
    return found


def products(settings: Mapping[str, Any]) -> list[str]:
    """Each product's `php` and `memcached`, only when the product filter's check of
    php_products ('users': a list of named mappings, user names) finds nothing (its
    problems are reported beside these)."""
    listed = settings.get("php_products")
    if product_problems(listed, ("users",), exceptions=settings.get("php_product_exceptions")):
        return []
    found: list[str] = []
    for product in listed:
        found += _product(product, settings.get("php_pool_defaults"))
    return list(dict.fromkeys(found))


def memcached_servers(settings: Mapping[str, Any]) -> list[str]:
    name = "php_memcached_servers"
    value = settings.get(name)
    if isinstance(value, str) or not jinja_items(value):
        return [f"{name} must be a non-empty list of host:port, got {value!r}"]
    return each_matches(settings, name, r"^[A-Za-z0-9._-]+:[0-9]+$", "host:port")


def open_basedir_extra(settings: Mapping[str, Any]) -> list[str]:
    name = "php_open_basedir_extra"
    value = settings.get(name)
    if isinstance(value, str):
        return [f"{name} must be a list of absolute paths, got {value!r}"]
    return each_matches(settings, name, r"^/[^:\n]*$", "an absolute path without ':'",
                        falsy_is_empty=True)


def problems(settings: Mapping[str, Any]) -> list[str]:
    return [
        *products(settings),
        *memcached_servers(settings),
        *open_basedir_extra(settings),
        *whole_number_as_written(settings, "php_opcache_memory_mb", unit="megabytes"),
        *whole_number_as_written(settings, "php_opcache_interned_strings_mb", unit="megabytes"),
        *whole_number_as_written(settings, "php_opcache_max_accelerated_files"),
        *whole_number_as_written(settings, "php_opcache_revalidate_freq", unit="seconds"),
    ]
