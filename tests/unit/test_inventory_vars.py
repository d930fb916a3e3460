"""The production inventory sets every shared variable the sandbox sets (nothing the roles
need is only in the sandbox), and its templated values render to what the roles expect."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from plugin_utils.products import product_problems

ROOT = Path(__file__).resolve().parents[2]
SANDBOX = ROOT / "inventory" / "sandbox" / "group_vars" / "all"
PRODUCTION = ROOT / "inventory" / "production" / "group_vars" / "all"

# Variables that only make sense in the sandbox: its fleet and site, the emulator's
# endpoint and static keys. Production leaves the roles' defaults for these.
SANDBOX_ONLY_PREFIXES = ("sandbox_", "hostkit_aws_endpoint_url", "mysql_backup_aws_",
                         "provider_docker_")
SANDBOX_ONLY = {"config_agent_endpoint_url", "config_agent_bucket", "config_agent_key"}


def variables(directory: Path) -> dict[str, object]:
    merged: dict[str, object] = {}
    for path in sorted(directory.glob("*.yml")):
        merged.update(yaml.safe_load(path.read_text()) or {})
    return merged


def test_production_sets_every_shared_variable_of_the_sandbox() -> None:
    sandbox, production = variables(SANDBOX), variables(PRODUCTION)
    shared = {name for name in sandbox
              if not name.startswith(SANDBOX_ONLY_PREFIXES) and name not in SANDBOX_ONLY}
    assert sorted(shared - set(production)) == []


def test_production_reads_passwords_from_ssm() -> None:
    production = variables(PRODUCTION)
    for name in ("mysql_password_source", "mysql_backup_password_source",
                 "failover_watcher_password_source"):
        assert production[name] == "ssm", name
    products = [p["name"] for p in production["platform_products"]]  # type: ignore[index]
    assert sorted(production["product_db_passwords"]) == sorted(products)  # type: ignore[arg-type]


def test_production_products_are_valid() -> None:
    assert product_problems(variables(PRODUCTION)["platform_products"]) == []


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The production group_vars as Ansible renders them for a db host (a static
    inventory beside a link to the real group_vars: no AWS call)."""
    work = tmp_path_factory.mktemp("production")
    (work / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": {
        "role_db": {"hosts": {"db1": {"ansible_connection": "local",
                                      "ansible_python_interpreter": sys.executable}}}}}}))
    (work / "group_vars").symlink_to(PRODUCTION.parent)
    names = ["mysql_app_hosts", "mysql_allowed_sources", "memcached_allowed_sources",
             "mysql_replication_hosts", "mysql_failover_hosts", "mysql_monitor_hosts",
             "mysql_seed_sources"]
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
           "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json", "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1"}
    every = "{{ {" + ", ".join(f"'{n}': {n}" for n in names) + "} }}"
    reply = subprocess.run(
        [str(Path(sys.executable).parent / "ansible"), "db1", "-i", str(work / "hosts.yml"),
         "-m", "ansible.builtin.debug", "-a", f"msg={every}"],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert reply.returncode == 0, reply.stdout[-3000:] + reply.stderr[-3000:]
    return json.loads(reply.stdout)["plays"][0]["tasks"][0]["hosts"]["db1"]["msg"]


def test_production_grants_and_firewalls_render_to_networks(rendered: dict[str, object]) -> None:
    web = ["10.20.16.0/24", "10.20.17.0/24", "10.20.18.0/24"]
    assert rendered["mysql_app_hosts"] == {"hello": web}
    assert rendered["mysql_allowed_sources"] == [*web, "10.20.32.0/22"]
    assert rendered["memcached_allowed_sources"] == web
    # a database server launched or rejoined later is admitted without touching the others
    assert rendered["mysql_replication_hosts"] == ["10.20.32.0/22"]
    assert rendered["mysql_failover_hosts"] == ["10.20.32.0/22"]
    assert rendered["mysql_monitor_hosts"] == ["localhost", "10.20.32.0/22"]
    assert rendered["mysql_seed_sources"] == ["10.20.32.0/22"]
