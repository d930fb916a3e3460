"""Settings checks of role product (tasks/validate.yml): the role's own settings, and what
the product filter (plugin_utils/products.py, called beside this in the same task) cannot
know: that a `local` source names a directory on the controller (this runs there)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from plugin_utils.role_checks.common import (
    absolute_path,
    each_matches,
    int_at_least,
    jinja_items,
)


def shared_dirs(settings: Mapping[str, Any]) -> list[str]:
    """Plain directory names of shared/, other than config (the role's)."""
    name = "product_shared_dirs"
    value = settings.get(name)
    try:
        holds_config = "config" in value
    except TypeError:
        return [f"{name} must be a list of directory names, got {value!r}"]
    found = each_matches(settings, name, r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$",
                         "a plain directory name", falsy_is_empty=True)
    if holds_config:
        found.append(f"{name} must not hold 'config' (shared/config is the role's), "
                     f"got {value!r}")
    return found


def local_sources(settings: Mapping[str, Any]) -> list[str]:
    """Each `local` source path (relative: to product_source_root) is a directory."""
    root = settings.get("product_source_root")
    found = []
    for product in jinja_items(settings.get("product_products")) or []:
        if not isinstance(product, Mapping) or "name" not in product:
            continue
        source = product.get("source")
        if not isinstance(source, Mapping) or source.get("type") != "local":
            continue
        path = source.get("path")
        if not path:
            continue
        where = path if isinstance(path, str) and os.path.isabs(path) else f"{root}/{path}"
        if not os.path.isdir(where):
            found.append(f"product '{product['name']}': field 'source.path' names no "
                         f"directory on the controller ({where})")
    return found


def problems(settings: Mapping[str, Any]) -> list[str]:
    return [
        *int_at_least(settings, "product_releases_keep", 2),
        *int_at_least(settings, "product_healthcheck_retries", 1),
        *int_at_least(settings, "product_healthcheck_timeout", 1),
        *int_at_least(settings, "product_healthcheck_delay", 0),
        *absolute_path(settings, "product_base_dir"),
        *shared_dirs(settings),
        *local_sources(settings),
    ]
