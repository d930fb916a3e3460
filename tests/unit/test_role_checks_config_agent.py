"""plugin_utils/role_checks/config_agent.py through the filter hostkit_settings_problems."""

from __future__ import annotations

from typing import Any

import pytest

from filter_plugins.role_checks import hostkit_settings_problems
from tests.unit.role_settings import sandbox_settings

PRODUCT = {"name": "hello", "domains": ["hello.test"], "database": {"name": "hello",
                                                                    "user": "hello"}}
GOOD = {"config_agent_bucket": "hostkit-config", "config_agent_key": "global-config.json",
        "config_agent_endpoint_url": "", "config_agent_interval": 2,
        "config_agent_backoff_max": "30.5", "config_agent_file_mode": "0640",
        "config_agent_db_port": "3306", "config_agent_memcached_port": 11211,
        "config_agent_aws_environment": {}, "config_agent_www_root": "/srv/www",
        "config_agent_install_dir": "/opt/hostkit/agent",
        "config_agent_config_dir": "/etc/hostkit-config-agent",
        "config_agent_state_dir": "/var/lib/hostkit-config-agent",
        "config_agent_products": [PRODUCT]}


def check(**changes: Any) -> list[str]:
    return hostkit_settings_problems({**GOOD, **changes}, "config_agent")


def test_good_settings_have_no_problem() -> None:
    assert check() == []
    assert check(config_agent_endpoint_url="http://aws:5000", config_agent_interval=0.5,
                 config_agent_file_mode="640", config_agent_products=[],
                 config_agent_aws_environment={"AWS_ACCESS_KEY_ID": "AKIA",
                                               "AWS_SESSION_TOKEN": "a/b+c="}) == []


@pytest.mark.parametrize(("changes", "message"), [
    ({"config_agent_bucket": ""}, "config_agent_bucket is empty: the agent needs the global"),
    ({"config_agent_bucket": None}, "config_agent_bucket is empty"),
    ({"config_agent_key": "  "}, "config_agent_key is empty"),
    ({"config_agent_endpoint_url": "aws:5000"},
     "config_agent_endpoint_url must be an http(s) URL or empty, got 'aws:5000'"),
    ({"config_agent_endpoint_url": "https:///x"}, "got 'https:///x'"),
    ({"config_agent_interval": 0.4},
     "config_agent_interval must be a number of seconds >= 0.5, got 0.4"),
    ({"config_agent_interval": "1e3"}, "got '1e3'"),
    ({"config_agent_backoff_max": True}, "config_agent_backoff_max must be a number"),
    ({"config_agent_file_mode": "0800"},
     "config_agent_file_mode must be an octal mode in quotes such as '0640', got '0800'"),
    ({"config_agent_file_mode": "rw-r-----"}, "got 'rw-r-----'"),
    ({"config_agent_db_port": 0}, "config_agent_db_port must be a whole number from 1 to 65535"),
    ({"config_agent_memcached_port": "11211x"}, "config_agent_memcached_port must be"),
    ({"config_agent_aws_environment": "AWS_ACCESS_KEY_ID=x"},
     "config_agent_aws_environment must be a mapping of environment variables, got a str"),
    ({"config_agent_aws_environment": {"AWS_DEFAULT_REGION": "x"}},
     "config_agent_aws_environment: 'AWS_DEFAULT_REGION' is not one of AWS_ACCESS_KEY_ID"),
    ({"config_agent_aws_environment": {"AWS_SECRET_ACCESS_KEY": 'a"b'}},
     "config_agent_aws_environment: the value of AWS_SECRET_ACCESS_KEY has spaces, quotes"),
    ({"config_agent_www_root": "srv/www"},
     "config_agent_www_root must be an absolute path, got 'srv/www'"),
    ({"config_agent_state_dir": None}, "config_agent_state_dir must be an absolute path"),
    ({"config_agent_products": [{**PRODUCT, "database": "hello"}]}, "product 'hello'"),
    ({"config_agent_products": "hello"}, "products must be a list"),
])
def test_each_problem_is_named(changes: dict[str, Any], message: str) -> None:
    found = check(**changes)
    assert len(found) == 1 and message in found[0], found


def test_a_secret_never_appears_in_a_message() -> None:
    found = check(config_agent_aws_environment={"AWS_SECRET_ACCESS_KEY": "top secret"})
    assert found and all("top secret" not in problem for problem in found)


def test_every_problem_is_reported_at_once() -> None:
    assert len(check(config_agent_bucket="", config_agent_key="", config_agent_db_port=-1,
                     config_agent_install_dir="opt")) == 4


def test_the_sandbox_configuration_has_no_problem() -> None:
    settings = sandbox_settings("config_agent", {
        # platform_products | hostkit_select_products(hostkit_products): a web server of
        # the sandbox runs every product (inventory/sandbox/group_vars/all/fleet.yml).
        "config_agent_products": lambda variables: variables["platform_products"],
    })
    assert settings["config_agent_endpoint_url"] == "http://aws:5000"
    assert hostkit_settings_problems(settings, "config_agent") == []
