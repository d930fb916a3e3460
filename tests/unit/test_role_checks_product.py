"""plugin_utils/role_checks/product.py through the filter hostkit_settings_problems."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from filter_plugins.role_checks import hostkit_settings_problems

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def good(tmp_path: Path) -> dict[str, Any]:
    """Settings whose local source (code/shop under product_source_root) exists."""
    (tmp_path / "code" / "shop").mkdir(parents=True)
    return {"product_products": [{"name": "shop", "source": {"type": "local", "path": "code/shop"}},
                                 {"name": "blog", "source": {"type": "git", "repo": "x"}}],
            "product_source_root": str(tmp_path), "product_releases_keep": 5,
            "product_healthcheck_retries": "3", "product_healthcheck_timeout": 5,
            "product_healthcheck_delay": 0, "product_base_dir": "/srv/www",
            "product_shared_dirs": ["uploads", "logs", "cache.d"]}


def test_good_settings_have_no_problem(good: dict[str, Any]) -> None:
    assert hostkit_settings_problems(good, "product") == []
    absolute = [{"name": "shop", "source": {"type": "local", "path": good["product_source_root"]}}]
    assert hostkit_settings_problems({**good, "product_products": absolute,
                                      "product_shared_dirs": []}, "product") == []


@pytest.mark.parametrize(("changes", "message"), [
    ({"product_releases_keep": 1}, "product_releases_keep must be a whole number >= 2, got 1"),
    ({"product_releases_keep": "many"}, "product_releases_keep must be a whole number >= 2"),
    ({"product_healthcheck_retries": 0}, "product_healthcheck_retries must be a whole number >= 1"),
    ({"product_healthcheck_timeout": "0"}, "product_healthcheck_timeout must be a whole number"),
    ({"product_healthcheck_delay": -1}, "product_healthcheck_delay must be a whole number >= 0"),
    ({"product_base_dir": "srv/www"}, "product_base_dir must be an absolute path, got 'srv/www'"),
    ({"product_shared_dirs": ["uploads", "../etc"]},
     "product_shared_dirs: '../etc' is not a plain directory name"),
    ({"product_shared_dirs": ["logs", "config"]},
     "product_shared_dirs must not hold 'config' (shared/config is the role's)"),
    ({"product_shared_dirs": None}, "product_shared_dirs must be a list of directory names"),
])
def test_each_setting_problem_is_named(good: dict[str, Any], changes: dict[str, Any],
                                       message: str) -> None:
    found = hostkit_settings_problems({**good, **changes}, "product")
    assert len(found) == 1 and message in found[0], found


@pytest.mark.parametrize("path", ["code/gone", "/nonexistent/shop"])
def test_a_local_source_must_be_a_directory_on_the_controller(good: dict[str, Any],
                                                              path: str) -> None:
    products = [{"name": "shop", "source": {"type": "local", "path": path}}]
    found = hostkit_settings_problems({**good, "product_products": products}, "product")
    where = path if path.startswith("/") else f"{good['product_source_root']}/{path}"
    assert found == [f"product 'shop': field 'source.path' names no directory on the "
                     f"controller ({where})"]


def test_sandbox_settings_have_no_problem() -> None:
    """roles/product/defaults/main.yml under the sandbox group_vars. Templated defaults:
    product_products (hostkit_select_products) is every product of the catalog, and
    product_source_root ((role_path ~ '/../..') | realpath) the repository, where the
    sandbox products' local sources are."""
    merged: dict[str, Any] = yaml.safe_load((ROOT / "roles/product/defaults/main.yml").read_text())
    for path in sorted((ROOT / "inventory/sandbox/group_vars").glob("**/*.yml")):
        merged.update(yaml.safe_load(path.read_text()) or {})
    merged["product_products"] = merged["platform_products"]
    merged["product_source_root"] = str(ROOT)
    names = ["product_products", "product_source_root", "product_releases_keep",
             "product_healthcheck_retries", "product_healthcheck_timeout",
             "product_healthcheck_delay", "product_base_dir", "product_shared_dirs"]
    settings = {name: merged[name] for name in names}
    assert not any("{{" in str(value) for value in settings.values())
    assert hostkit_settings_problems(settings, "product") == []
