"""lookup_plugins/platform_packages.py, called the way Ansible calls it (run(terms, ...))."""

from __future__ import annotations

from pathlib import Path

import pytest
from ansible.errors import AnsibleError, AnsibleLookupError
from ansible.plugins.loader import lookup_loader

from image_builders.catalog import load_catalog

REPO_ROOT = Path(__file__).resolve().parents[2]

CATALOG = """\
components:
  base:
    packages:
      Debian: [cron, curl, sudo]
      RedHat: [cronie, curl, sudo]
    services:
      Debian: [cron]
      RedHat: [crond]
  apache:
    packages:
      Debian: [apache2, curl]
      RedHat: [httpd, mod_ssl]
    services:
      Debian: [apache2]
      RedHat: [httpd]
  php:
    packages:
      Debian: [php-fpm, php-cli, curl]
      RedHat: [php-fpm, php-cli]
    services:
      Debian: [php8.2-fpm]
      RedHat: [php-fpm]
"""


@pytest.fixture(scope="module")
def lookup():
    """The plugin as Ansible loads it (so that its documented options are known)."""
    lookup_loader.add_directory(str(REPO_ROOT / "lookup_plugins"))
    plugin = lookup_loader.get("platform_packages")
    assert plugin is not None, "lookup_plugins/platform_packages.py was not found"
    return plugin


@pytest.fixture
def catalog(tmp_path: Path) -> str:
    path = tmp_path / "catalog.yml"
    path.write_text(CATALOG)
    return str(path)


def test_packages_of_one_component(lookup, catalog: str) -> None:
    assert lookup.run(["apache"], {}, family="Debian", catalog=catalog) == ["apache2", "curl"]
    assert lookup.run(["apache"], {}, family="RedHat", catalog=catalog) == ["httpd", "mod_ssl"]


def test_packages_of_several_components_are_flat_and_deduplicated(lookup, catalog: str) -> None:
    result = lookup.run(["base", "apache", "php"], {}, family="Debian", catalog=catalog)
    assert result == ["cron", "curl", "sudo", "apache2", "php-fpm", "php-cli"]


def test_a_list_term_counts_as_its_names(lookup, catalog: str) -> None:
    result = lookup.run([["apache", "php"], "apache"], {}, family="RedHat", catalog=catalog)
    assert result == ["httpd", "mod_ssl", "php-fpm", "php-cli"]


def test_services_kind(lookup, catalog: str) -> None:
    result = lookup.run(["base", "apache", "php"], {}, family="Debian", kind="services",
                        catalog=catalog)
    assert result == ["cron", "apache2", "php8.2-fpm"]
    assert lookup.run(["apache"], {}, family="RedHat", kind="services", catalog=catalog) == [
        "httpd",
    ]


def test_family_defaults_to_the_host_fact(lookup, catalog: str) -> None:
    variables = {"ansible_facts": {"os_family": "RedHat"}}
    assert lookup.run(["base"], variables, catalog=catalog) == ["cronie", "curl", "sudo"]
    assert lookup.run(["base"], {"ansible_os_family": "Debian"}, catalog=catalog) == [
        "cron", "curl", "sudo",
    ]


def test_explicit_family_wins_over_the_fact(lookup, catalog: str) -> None:
    variables = {"ansible_facts": {"os_family": "RedHat"}}
    assert lookup.run(["php"], variables, family="Debian", catalog=catalog) == [
        "php-fpm", "php-cli", "curl",
    ]


def test_repository_catalog_is_the_default(lookup) -> None:
    expected = load_catalog().packages("apache", "php", family="Debian")
    assert lookup.run(["apache", "php"], {}, family="Debian") == expected
    assert lookup.run(["apache"], {}, family="Debian", kind="services") == load_catalog().services(
        "apache", family="Debian"
    )


def test_unknown_component_is_an_error_naming_it(lookup, catalog: str) -> None:
    with pytest.raises(AnsibleLookupError, match=r"unknown component 'nginx'"):
        lookup.run(["apache", "nginx"], {}, family="Debian", catalog=catalog)


def test_unsupported_family_is_an_error_naming_it(lookup, catalog: str) -> None:
    with pytest.raises(AnsibleLookupError, match=r"unsupported OS family 'Suse'") as info:
        lookup.run(["apache"], {}, family="Suse", catalog=catalog)
    assert "apache" in str(info.value)


def test_missing_family_is_an_error(lookup, catalog: str) -> None:
    with pytest.raises(AnsibleLookupError, match=r"no OS family given"):
        lookup.run(["apache"], {}, catalog=catalog)


def test_unreadable_catalog_is_an_error_naming_the_file(lookup, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.yml"
    with pytest.raises(AnsibleLookupError, match=r"cannot read catalog .*nowhere\.yml"):
        lookup.run(["apache"], {}, family="Debian", catalog=str(missing))


def test_malformed_catalog_is_an_error_naming_file_and_component(lookup, tmp_path: Path) -> None:
    path = tmp_path / "bad.yml"
    path.write_text("components:\n  apache:\n    packages:\n      Debian: apache2\n")
    with pytest.raises(AnsibleLookupError, match=r"bad\.yml: component 'apache'"):
        lookup.run(["apache"], {}, family="Debian", catalog=str(path))


@pytest.mark.parametrize("terms", [[], [""], [None], [["apache", 3]]])
def test_bad_terms_are_errors(lookup, catalog: str, terms: list) -> None:
    with pytest.raises(AnsibleLookupError):
        lookup.run(terms, {}, family="Debian", catalog=catalog)


def test_unknown_kind_is_rejected(lookup, catalog: str) -> None:
    with pytest.raises(AnsibleError, match="kind"):
        lookup.run(["apache"], {}, family="Debian", kind="users", catalog=catalog)
