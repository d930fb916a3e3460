"""image_builders/catalog.py: loading, per-family lists, and errors that say where."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from image_builders.catalog import CATALOG_PATH, FAMILIES, Catalog, CatalogError, load_catalog

SAMPLE = """\
---
components:
  base:
    packages:
      Debian: [cron, curl, sudo]
      RedHat: [cronie, curl, sudo]
    services:
      Debian: [cron]
      RedHat: [crond]
  web:
    packages:
      Debian: [apache2, curl]
      RedHat: [httpd, curl]
    services:
      Debian: [apache2]
      RedHat: [httpd]
  tools:
    description: no services at all
    packages:
      Debian: [sudo, less]
"""


def write(tmp_path: Path, text: str, name: str = "catalog.yml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def sample(tmp_path: Path) -> Catalog:
    return load_catalog(write(tmp_path, SAMPLE))


def test_repository_catalog_loads() -> None:
    catalog = load_catalog()
    assert catalog.path == CATALOG_PATH
    assert {"base", "apache", "php", "mysql", "memcached"} <= set(catalog.components)


def test_repository_catalog_names_packages_for_every_family() -> None:
    catalog = load_catalog()
    for name in catalog.components:
        for family in FAMILIES:
            assert catalog.packages(name, family=family), f"{name} has no {family} packages"


def test_load_accepts_a_string_path(tmp_path: Path) -> None:
    path = write(tmp_path, SAMPLE)
    assert load_catalog(str(path)).path == path


def test_packages_per_family(sample: Catalog) -> None:
    assert sample.packages("base", family="Debian") == ["cron", "curl", "sudo"]
    assert sample.packages("base", family="RedHat") == ["cronie", "curl", "sudo"]


def test_services_per_family(sample: Catalog) -> None:
    assert sample.services("base", "web", family="Debian") == ["cron", "apache2"]
    assert sample.services("base", "web", family="RedHat") == ["crond", "httpd"]


def test_missing_kind_or_family_gives_an_empty_list(sample: Catalog) -> None:
    assert sample.services("tools", family="Debian") == []
    assert sample.packages("tools", family="RedHat") == []


def test_packages_keep_first_seen_order_without_repeats(sample: Catalog) -> None:
    assert sample.packages("base", "web", "tools", family="Debian") == [
        "cron", "curl", "sudo", "apache2", "less",
    ]
    assert sample.packages("tools", "base", family="Debian") == ["sudo", "less", "cron", "curl"]


def test_a_component_named_twice_counts_once(sample: Catalog) -> None:
    assert sample.packages("web", "web", family="RedHat") == ["httpd", "curl"]


def test_unknown_component_is_named(sample: Catalog) -> None:
    with pytest.raises(CatalogError, match=r"unknown component 'nginx'.*known: base, tools, web"):
        sample.packages("base", "nginx", family="Debian")
    with pytest.raises(CatalogError, match="'nginx'"):
        sample.services("nginx", family="Debian")
    with pytest.raises(CatalogError, match="'nginx'"):
        sample.digest("nginx")


def test_unsupported_family_is_named(sample: Catalog) -> None:
    with pytest.raises(CatalogError, match=r"unsupported OS family 'Suse'.*Debian, RedHat"):
        sample.packages("base", family="Suse")
    with pytest.raises(CatalogError, match="'debian'"):
        sample.services("base", family="debian")


def test_digest_depends_on_the_named_components_only(tmp_path: Path, sample: Catalog) -> None:
    assert sample.digest("base", "web") == sample.digest("web", "base")
    changed = load_catalog(write(tmp_path, SAMPLE.replace("less", "more"), "changed.yml"))
    assert changed.digest("base", "web") == sample.digest("base", "web")
    assert changed.digest("tools") != sample.digest("tools")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("- just\n- a list\n", r"expected a mapping with a 'components' mapping",
                     id="not-a-mapping"),
        pytest.param("", r"expected a mapping", id="empty-file"),
        pytest.param("components: [base, web]\n", r"'components' mapping",
                     id="components-not-a-mapping"),
        pytest.param("components:\n  base: [cron]\n", r"component 'base' is not a mapping",
                     id="component-not-a-mapping"),
        pytest.param("components:\n  base:\n    packages: [cron]\n",
                     r"component 'base': 'packages' is not a mapping",
                     id="packages-not-a-mapping"),
        pytest.param("components:\n  base:\n    packages:\n      Debian: cron curl\n",
                     r"component 'base': packages\.Debian must be a list of names",
                     id="family-list-not-a-list"),
        pytest.param("components:\n  base:\n    services:\n      RedHat: [crond, 3]\n",
                     r"component 'base': services\.RedHat must be a list of names",
                     id="name-not-a-string"),
        pytest.param("components:\n  base:\n    packages:\n      Suse: [cron]\n",
                     r"component 'base': unknown family 'Suse'",
                     id="unknown-family"),
        pytest.param("components:\n  base: {packages: [\n", r"not valid YAML",
                     id="invalid-yaml"),
    ],
)
def test_malformed_catalog_names_the_file(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text, "broken-catalog.yml")
    with pytest.raises(CatalogError, match=expected) as info:
        load_catalog(path)
    assert str(info.value).startswith(f"{path}:")


def test_unreadable_catalog_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "missing.yml"
    with pytest.raises(CatalogError, match=r"cannot read catalog .*missing\.yml"):
        load_catalog(path)
