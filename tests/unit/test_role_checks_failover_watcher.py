"""plugin_utils/role_checks/failover_watcher.py through the filter hostkit_settings_problems."""

from __future__ import annotations

from typing import Any

import pytest

from filter_plugins.role_checks import hostkit_settings_problems
from host_programs.failover.config import WatcherConfig
from plugin_utils.role_checks.failover_watcher import NUMBERS, PREFIX
from tests.unit.role_settings import ROOT, sandbox_settings, sandbox_variables

GOOD: dict[str, Any] = {
    "failover_watcher_bucket": "hostkit-config", "failover_watcher_key": "global-config.json",
    "failover_watcher_mysql_user": "hostkit_failover",
    "failover_watcher_replication_user": "hostkit_repl", "failover_watcher_user": "watcher",
    "failover_watcher_mysql_port": 3306, "failover_watcher_connect_timeout": "0.5",
    "failover_watcher_read_timeout": 0.5, "failover_watcher_interval": 0.05,
    "failover_watcher_rounds": 3, "failover_watcher_silence": 1.5,
    "failover_watcher_anti_flap_window": 0, "failover_watcher_config_poll_interval": 2,
    "failover_watcher_heartbeat_period": 0.5, "failover_watcher_apply_timeout": 60,
    "failover_watcher_catch_up_timeout": 30, "failover_watcher_semi_sync_timeout": 5,
    "failover_watcher_retry_interval": 5, "failover_watcher_switchover_max_lag": 5,
    "failover_watcher_fence_method": "docker", "failover_watcher_ec2_isolation_group": "",
    "failover_watcher_password_source": "local", "failover_watcher_endpoint_url": "",
    "failover_watcher_clusters": [], "failover_watcher_aws_environment": {},
    "failover_watcher_install_dir": "/opt/hostkit/failover",
    "failover_watcher_config_dir": "/etc/hostkit-failover",
    "failover_watcher_state_dir": "/var/lib/hostkit-failover",
    "failover_watcher_docker_socket": "/var/run/docker.sock"}


def check(**changes: Any) -> list[str]:
    return hostkit_settings_problems({**GOOD, **changes}, "failover_watcher")


def test_good_settings_have_no_problem() -> None:
    assert check() == []
    assert check(failover_watcher_fence_method="ec2", failover_watcher_ec2_isolation_group="sg-1",
                 failover_watcher_password_source="ssm", failover_watcher_clusters=["hello"],
                 failover_watcher_endpoint_url="https://s3.example",
                 failover_watcher_mysql_port="3306.0", failover_watcher_rounds="1000",
                 failover_watcher_aws_environment={"AWS_DEFAULT_REGION": "us-east-1"}) == []


@pytest.mark.parametrize(("changes", "message"), [
    ({"failover_watcher_bucket": ""}, "failover_watcher_bucket is empty"),
    ({"failover_watcher_replication_user": None}, "failover_watcher_replication_user is empty"),
    ({"failover_watcher_interval": 0.04},
     "failover_watcher_interval must be a number from 0.05 to 3600, got 0.04"),
    ({"failover_watcher_rounds": 1001}, "failover_watcher_rounds must be a number from 1 to 1000"),
    ({"failover_watcher_anti_flap_window": "-1"},
     "failover_watcher_anti_flap_window must be a number from 0 to 10000000, got '-1'"),
    ({"failover_watcher_mysql_port": "mysql"}, "failover_watcher_mysql_port must be a number"),
    ({"failover_watcher_silence": True}, "failover_watcher_silence must be a number"),
    ({"failover_watcher_fence_method": "aws"},
     "failover_watcher_fence_method must be one of docker, ec2, none, got 'aws'"),
    ({"failover_watcher_fence_method": "ec2"},
     "failover_watcher_ec2_isolation_group is empty: ec2 fencing swaps"),
    ({"failover_watcher_password_source": "vault"},
     "failover_watcher_password_source must be one of local, ssm, got 'vault'"),
    ({"failover_watcher_endpoint_url": "s3.local"},
     "failover_watcher_endpoint_url must be an http(s) URL or empty, got 's3.local'"),
    ({"failover_watcher_clusters": "hello"},
     "failover_watcher_clusters must be a list of cluster names, got 'hello'"),
    ({"failover_watcher_clusters": 3}, "failover_watcher_clusters must be a list"),
    ({"failover_watcher_aws_environment": ["AWS_ACCESS_KEY_ID"]},
     "failover_watcher_aws_environment must be a mapping of environment variables, got a list"),
    ({"failover_watcher_aws_environment": {"AWS_PROFILE": "x"}},
     "failover_watcher_aws_environment: 'AWS_PROFILE' is not one of AWS_ACCESS_KEY_ID"),
    ({"failover_watcher_aws_environment": {"AWS_ACCESS_KEY_ID": "a b"}},
     "the value of AWS_ACCESS_KEY_ID has spaces, quotes or backslashes"),
    ({"failover_watcher_docker_socket": "docker.sock"},
     "failover_watcher_docker_socket must be an absolute path, got 'docker.sock'"),
])
def test_each_problem_is_named(changes: dict[str, Any], message: str) -> None:
    found = check(**changes)
    assert len(found) == 1 and message in found[0], found


def test_every_problem_is_reported_at_once() -> None:
    assert len(check(failover_watcher_key="", failover_watcher_rounds=0,
                     failover_watcher_fence_method="x", failover_watcher_state_dir="var")) == 4


def test_the_ranges_are_the_programs_and_each_has_a_role_variable() -> None:
    # The watcher refuses a number outside its range (host_programs/failover/config.py);
    # the role checks the same ranges: every number of the configuration file, each a
    # variable of the role that the task passes.
    fields = WatcherConfig.__dataclass_fields__
    numbers = {PREFIX + name for name, f in fields.items() if f.type in ("int", "float")}
    assert set(NUMBERS) == numbers
    assert numbers <= set(sandbox_variables("failover_watcher"))
    template = (ROOT / "roles/failover_watcher/tasks/validate.yml").read_text()
    assert [name for name in numbers if f"'{name}': {name}," not in template] == []


def test_the_sandbox_configuration_has_no_problem() -> None:
    settings = sandbox_settings("failover_watcher", {
        # (role_path ~ '/../..') | realpath: role_path is Ansible's.
        "failover_watcher_credentials_dir": str(ROOT / "credentials" / "sandbox"),
    })
    assert settings["failover_watcher_fence_method"] == "docker"
    assert settings["failover_watcher_aws_environment"]["AWS_DEFAULT_REGION"] == "us-east-1"
    assert hostkit_settings_problems(settings, "failover_watcher") == []
