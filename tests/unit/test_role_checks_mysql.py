"""plugin_utils/role_checks/mysql.py through the filter hostkit_settings_problems."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from filter_plugins.role_checks import hostkit_settings_problems

ROOT = Path(__file__).resolve().parents[2]
GOOD = {"mysql_bind_address": "172.30.20.5", "mysql_port": 3306, "mysql_server_id": "2887652357",
        "mysql_password_source": "local", "mysql_app_hosts": {"shop": ["172.30.16.0/24"]},
        "mysql_products": [{"name": "shop"}, {"name": "blog"}]}
HOST = {"host_addresses": ["172.30.20.5", "10.0.0.9"], "host": "db2",
        "plan": {"position": "candidate", "source": "db1"}, "source": "172.30.20.4"}


def check(context: dict[str, Any] | None = None, **changes: Any) -> list[str]:
    return hostkit_settings_problems({**GOOD, **changes}, "mysql", **{**HOST, **(context or {})})


def test_good_settings_have_no_problem() -> None:
    assert check() == []
    assert check(mysql_bind_address="127.0.0.1", mysql_password_source="ssm",
                 mysql_app_hosts={}) == []
    assert check({"plan": {"position": "master", "source": None}, "source": ""}) == []


@pytest.mark.parametrize(("changes", "message"), [
    ({"mysql_bind_address": ""},
     "mysql_bind_address '' is not an IPv4 address of this host (172.30.20.5, 10.0.0.9, "
     "127.0.0.1)"),
    ({"mysql_bind_address": "0.0.0.0"}, "mysql_bind_address 0.0.0.0 is not an IPv4 address"),
    ({"mysql_bind_address": " 172.30.20.5"}, "mysql_bind_address  172.30.20.5 is not"),
    ({"mysql_port": 0}, "mysql_port must be a whole number from 1 to 65535, got 0"),
    ({"mysql_port": "3306 "}, "mysql_port must be a whole number from 1 to 65535, got '3306 '"),
    ({"mysql_server_id": 4294967296},
     "mysql_server_id must be a whole number from 1 to 4294967295, got 4294967296"),
    ({"mysql_server_id": ""}, "mysql_server_id must be a whole number"),
    ({"mysql_password_source": "vault"},
     "mysql_password_source must be one of local, ssm, got 'vault'"),
    ({"mysql_app_hosts": ["172.30.16.0/24"]},
     "mysql_app_hosts must map product names to lists of host patterns"),
    ({"mysql_app_hosts": {"shop": [], "wiki": []}},
     "mysql_app_hosts names product wiki, which platform_products does not describe"),
])
def test_each_problem_is_named(changes: dict[str, Any], message: str) -> None:
    found = check(**changes)
    assert len(found) == 1 and message in found[0], found


def test_a_replica_needs_the_address_of_its_source() -> None:
    assert check({"source": "db1"}) == [
        "host db2 (candidate) replicates from db1, which has no IPv4 address in this run "
        "(gather its facts: run the play on role_db)"]


def test_sandbox_settings_have_no_problem() -> None:
    """roles/mysql/defaults/main.yml under the sandbox group_vars. Templated values, as they
    render on a sandbox database server: mysql_products is platform_products, the bind
    address and server id (db_server_id) come from the host's default IPv4 address, and the
    sandbox's mysql_app_hosts gives every product the web subnets."""
    merged: dict[str, Any] = yaml.safe_load((ROOT / "roles/mysql/defaults/main.yml").read_text())
    for path in sorted((ROOT / "inventory/sandbox/group_vars").glob("**/*.yml")):
        merged.update(yaml.safe_load(path.read_text()) or {})
    merged["mysql_products"] = merged["platform_products"]
    merged["mysql_bind_address"] = "172.30.20.5"
    merged["mysql_server_id"] = 2887652357
    subnets = list(merged["hostkit_web_subnets"].values())
    merged["mysql_app_hosts"] = {p["name"]: subnets for p in merged["platform_products"]}
    settings = {name: merged[name] for name in GOOD}
    assert not any("{{" in str(value) for value in settings.values())
    assert hostkit_settings_problems(settings, "mysql", **HOST) == []


# The probe of issue 15: a database name that closes the GRANT's quoting.
INJECTION = "x`.* TO 'e'@'%' IDENTIFIED BY 'p' WITH GRANT OPTION -- "


@pytest.mark.parametrize(("database", "message"), [
    ({"name": INJECTION}, "product 'shop': field 'database.name' must be a MySQL database name"),
    ({"name": "mysql"}, "product 'shop': field 'database.name' names a system or platform schema"),
    ({"name": "shop", "user": "root"},
     "product 'shop': field 'database.user' names a system or platform account: 'root'"),
    ({"name": "shop", "user": "repl_x"},
     "product 'shop': field 'database.user' names a system or platform account: 'repl_x'"),
    ({"name": "shop", "user": "shop'@'%"},
     "product 'shop': field 'database.user' must be a MySQL account name"),
])
def test_product_databases_are_plain_identifiers(database: dict[str, str], message: str) -> None:
    products = [{"name": "shop", "database": database}, {"name": "blog"}]
    problems = check(mysql_products=products, mysql_replication_user="repl_x")
    assert len(problems) == 1 and problems[0].startswith(message), problems


def test_a_good_product_database_passes() -> None:
    products = [{"name": "shop", "database": {"name": "shop", "user": "shop_app"}}]
    assert check(mysql_products=products, mysql_app_hosts={},
                 mysql_replication_user="hostkit_repl") == []


def test_the_grant_target_is_built_from_a_valid_name_only() -> None:
    from ansible.errors import AnsibleFilterError

    from filter_plugins.products import hostkit_database_grant

    assert hostkit_database_grant("shop") == "`shop`.*"
    for bad in (INJECTION, "mysql", "Shop", "", None, "a" * 65):
        with pytest.raises(AnsibleFilterError, match="database name"):
            hostkit_database_grant(bad)
