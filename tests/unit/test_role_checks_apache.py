"""plugin_utils/role_checks/apache.py through the filter hostkit_settings_problems."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from filter_plugins.role_checks import hostkit_settings_problems

ROOT = Path(__file__).resolve().parents[2]
PRODUCTS = [{"name": "shop", "domains": ["shop.test", "www.shop.test"], "docroot": "public"},
            {"name": "blog", "domains": ["blog.test"]}]
GOOD = {"apache_products": PRODUCTS, "apache_static_max_age": 86400,
        "apache_status_path": "/server-status", "apache_static_extensions": ["css", "woff2"],
        "apache_compress_types": ["text/html", "image/svg+xml"],
        "apache_security_headers": {"X-Frame-Options": "SAMEORIGIN"},
        "apache_dynamic_cache_control": "private, no-store",
        "apache_allowed_sources": ["10.0.1.0/24", "fd00::5"]}


def check(**changes: Any) -> list[str]:
    return hostkit_settings_problems({**GOOD, **changes}, "apache")


def test_good_settings_have_no_problem() -> None:
    assert check() == []
    assert check(apache_allowed_sources=[], apache_static_max_age="0") == []
    # As before: '' loops over nothing (anyone may connect), like [].
    assert check(apache_allowed_sources="") == []


@pytest.mark.parametrize(("changes", "message"), [
    ({"apache_static_max_age": "1d"},
     "apache_static_max_age must be a whole number of seconds, got '1d'"),
    ({"apache_static_max_age": " 60"}, "got ' 60'"),
    ({"apache_static_max_age": True}, "apache_static_max_age must be a whole number"),
    ({"apache_status_path": "status"},
     "apache_status_path must be a URL path starting with /, got 'status'"),
    ({"apache_static_extensions": ["css", ".js"]},
     "apache_static_extensions: '.js' is not a file extension"),
    ({"apache_static_extensions": 5}, "apache_static_extensions must be a list, got 5"),
    ({"apache_compress_types": ["Text/HTML"]},
     "apache_compress_types: 'Text/HTML' is not a content type"),
    ({"apache_security_headers": {"X Frame": "DENY"}}, "apache_security_headers: X Frame needs"),
    ({"apache_security_headers": {"X-A": 'a"b'}}, "got 'a\"b'"),
    ({"apache_security_headers": ["X-A"]},
     "apache_security_headers must be a mapping of header names to values"),
    ({"apache_dynamic_cache_control": "no-store\nX: y"},
     "apache_dynamic_cache_control must not contain quotes, backslashes or line breaks"),
    ({"apache_allowed_sources": ["10.0.0.0/8", "web-1"]},
     "apache_allowed_sources: 'web-1' is not an IPv4/IPv6 address or CIDR"),
    ({"apache_allowed_sources": ["fe80::1%eth0"]}, "'fe80::1%eth0' is not an IPv4/IPv6"),
    ({"apache_allowed_sources": ["10.0.0.0/08"]}, "'10.0.0.0/08' is not"),
    ({"apache_allowed_sources": "10.0.0.0/8"}, "must be a list of addresses or CIDRs"),
])
def test_each_setting_problem_is_named(changes: dict[str, Any], message: str) -> None:
    found = check(**changes)
    assert len(found) == 1 and message in found[0], found


@pytest.mark.parametrize("docroot", ["../x", "a/../b", "a/./b", "pub lic", "..", 5])
def test_a_docroot_outside_the_release_is_refused(docroot: Any) -> None:
    found = check(apache_products=[{**PRODUCTS[0], "docroot": docroot}])
    assert found == [f"product 'shop': field 'docroot' must be a directory inside the release "
                     f"(letters, digits, . _ - and /, no '..'), got '{docroot}'"]


@pytest.mark.parametrize("docroot", ["public", "/web/root/", "a.b/c-d_e", "", None])
def test_a_docroot_inside_the_release_is_taken(docroot: Any) -> None:
    assert check(apache_products=[{**PRODUCTS[0], "docroot": docroot}]) == []


def test_a_domain_of_two_products_is_named_once_per_repeat() -> None:
    products = [*PRODUCTS, {"name": "shop2", "domains": ["WWW.Shop.test", "x.test"]}]
    assert check(apache_products=products) == [
        "product 'shop2': field 'domains' repeats 'WWW.Shop.test' of product 'shop'"]
    # A product may name its own domain twice; what the product filter refuses is its own.
    assert check(apache_products=[{"name": "a", "domains": ["a.test", "a.test"]},
                                  {"name": 5}, "x", {"domains": ["a.test"]}]) == []


def test_sandbox_settings_have_no_problem() -> None:
    """roles/apache/defaults/main.yml under the sandbox group_vars. apache_products is
    rendered by hostkit_select_products; every product of the catalog stands in for it."""
    merged: dict[str, Any] = yaml.safe_load((ROOT / "roles/apache/defaults/main.yml").read_text())
    for path in sorted((ROOT / "inventory/sandbox/group_vars").glob("**/*.yml")):
        merged.update(yaml.safe_load(path.read_text()) or {})
    merged["apache_products"] = merged["platform_products"]
    settings = {name: merged[name] for name in GOOD}
    assert not any("{{" in str(value) for value in settings.values())
    assert hostkit_settings_problems(settings, "apache") == []
