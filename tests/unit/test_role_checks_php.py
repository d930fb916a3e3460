"""plugin_utils/role_checks/php.py through the filter hostkit_settings_problems."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from filter_plugins.role_checks import hostkit_settings_problems

ROOT = Path(__file__).resolve().parents[2]
POOL = {"pm": "dynamic", "pm_max_children": 5, "pm_start_servers": 2, "pm_min_spare_servers": 1,
        "pm_max_spare_servers": 3, "pm_max_requests": 500, "pm_process_idle_timeout": "10s",
        "memory_limit": "128M"}
SHOP = {"name": "shop", "php": {"memory_limit": "256M", "pm_max_children": "8",
                                "opcache.enable_cli": True}, "memcached": True}
GOOD = {"php_products": [SHOP, {"name": "blog"}], "php_pool_defaults": POOL,
        "php_memcached_servers": ["10.0.3.7:11211", "mc-1.internal:11211"],
        "php_open_basedir_extra": ["/usr/share/php"], "php_opcache_memory_mb": 128,
        "php_opcache_interned_strings_mb": "16", "php_opcache_max_accelerated_files": 20000,
        "php_opcache_revalidate_freq": 0}


def check(**changes: Any) -> list[str]:
    return hostkit_settings_problems({**GOOD, **changes}, "php")


def shop(**php: Any) -> list[str]:
    return check(php_products=[{**SHOP, "php": {**SHOP["php"], **php}}])


def test_good_settings_have_no_problem() -> None:
    assert check() == []
    assert check(php_open_basedir_extra=[], php_products=[]) == []
    assert shop(pm="static", pm_max_requests=0) == []


@pytest.mark.parametrize(("changes", "message"), [
    ({"pm_servers": 3}, "product 'shop': field 'php.pm_servers' is not a pool setting (pm, "),
    ({"open_basedir": "/"}, "product 'shop': field 'php.open_basedir' is set by the php role"),
    ({"session.save_path": "/tmp"}, "field 'php.session.save_path' is set by the php role"),
    ({"Memory_Limit": "1G"}, "field 'php.Memory_Limit' is not a PHP ini setting name"),
    ({"error_log": "/x;y"},
     "field 'php.error_log' must be one value without line breaks, quotes or semicolons, got"),
    ({"disable_functions": ["exec"]}, "field 'php.disable_functions' must be one value"),
    ({"pm": "adaptive"},
     "field 'php.pm' is 'adaptive', expected dynamic, ondemand or static"),
    ({"pm_max_children": 0}, "field 'php.pm_max_children' must be a whole number >= 1, got '0'"),
    ({"pm_start_servers": "two"}, "field 'php.pm_start_servers' must be a whole number, got 'two'"),
])
def test_each_pool_problem_is_named(changes: dict[str, Any], message: str) -> None:
    found = shop(**changes)
    assert len(found) == 1 and message in found[0], found


@pytest.mark.parametrize(("changes", "message"), [
    ({"php_products": [{**SHOP, "php": "256M"}]},
     "product 'shop': field 'php' must be a mapping of pool and ini settings, got '256M'"),
    ({"php_products": [{**SHOP, "memcached": "yes"}]},
     "product 'shop': field 'memcached' must be true or false, got 'yes'"),
    ({"php_pool_defaults": {**POOL, "pm_max_spare_servers": -1},
      "php_products": [{"name": "blog"}]},
     "product 'blog': field 'php.pm_max_spare_servers' must be a whole number, got '-1'"),
    ({"php_pool_defaults": None}, "php_pool_defaults must be a mapping of pool and ini settings"),
    ({"php_memcached_servers": []}, "php_memcached_servers must be a non-empty list of host:port"),
    ({"php_memcached_servers": "10.0.3.7:11211"}, "must be a non-empty list of host:port"),
    ({"php_memcached_servers": ["10.0.3.7"]}, "php_memcached_servers: '10.0.3.7' is not host:port"),
    ({"php_open_basedir_extra": "/srv"}, "php_open_basedir_extra must be a list of absolute paths"),
    ({"php_open_basedir_extra": ["/a:/b"]},
     "php_open_basedir_extra: '/a:/b' is not an absolute path without ':'"),
    ({"php_opcache_memory_mb": "128M"},
     "php_opcache_memory_mb must be a whole number of megabytes, got '128M'"),
    ({"php_opcache_max_accelerated_files": -1}, "php_opcache_max_accelerated_files must be a"),
    ({"php_opcache_revalidate_freq": " 2"}, "php_opcache_revalidate_freq must be a whole number"),
])
def test_each_setting_problem_is_named(changes: dict[str, Any], message: str) -> None:
    found = check(**changes)
    assert len(found) == 1 and message in found[0], found


def test_pools_wait_for_the_product_filter() -> None:
    """Products the product filter refuses (names, users) get no pool checks: the filter,
    called beside this one, reports them."""
    assert check(php_products=[{**SHOP, "user": "Bad User", "php": "x"}]) == []
    assert check(php_products="shop") == []


def test_sandbox_settings_have_no_problem() -> None:
    """roles/php/defaults/main.yml under the sandbox group_vars. Templated defaults, as they
    render with no role_memcached host: php_products (hostkit_select_products) is every
    product of the catalog, php_memcached_servers 127.0.0.1:11211."""
    merged: dict[str, Any] = yaml.safe_load((ROOT / "roles/php/defaults/main.yml").read_text())
    for path in sorted((ROOT / "inventory/sandbox/group_vars").glob("**/*.yml")):
        merged.update(yaml.safe_load(path.read_text()) or {})
    merged["php_products"] = merged["platform_products"]
    merged["php_memcached_servers"] = ["127.0.0.1:11211"]
    settings = {name: merged[name] for name in GOOD}
    assert not any("{{" in str(value) for value in settings.values())
    assert hostkit_settings_problems(settings, "php") == []
