"""plugin_utils/role_checks/memcached.py through the filter hostkit_settings_problems."""

from __future__ import annotations

from typing import Any

import pytest
from ansible.errors import AnsibleFilterError

from filter_plugins.role_checks import hostkit_settings_problems

GOOD = {"memcached_listen_address": "10.0.3.7", "memcached_memory_mb": "64",
        "memcached_max_connections": 1024, "memcached_port": 11211,
        "memcached_allowed_sources": ["10.0.1.0/24", "fd00::5"],
        "memcached_extra_options": ["-o modern", "-t 4"]}
HOST = ["10.0.3.7", "fe80::1"]


def check(**changes: Any) -> list[str]:
    return hostkit_settings_problems({**GOOD, **changes}, "memcached", host_addresses=HOST)


def test_good_settings_have_no_problem() -> None:
    assert check() == []
    assert check(memcached_listen_address="127.0.0.1") == []


@pytest.mark.parametrize(("changes", "message"), [
    ({"memcached_listen_address": ""}, "memcached_listen_address is empty"),
    ({"memcached_listen_address": "0.0.0.0"}, "listens on every interface"),
    ({"memcached_listen_address": "10.9.9.9"},
     "memcached_listen_address 10.9.9.9 is not an address of this host (10.0.3.7, fe80::1"),
    ({"memcached_memory_mb": 0}, "memcached_memory_mb must be a whole number of megabytes >= 1"),
    ({"memcached_memory_mb": "64M"}, "got '64M'"),
    ({"memcached_max_connections": True}, "memcached_max_connections must be a whole number"),
    ({"memcached_port": 70000}, "memcached_port must be a whole number from 1 to 65535"),
    ({"memcached_allowed_sources": "10.0.0.0/8"}, "must be a list of addresses or CIDRs"),
    ({"memcached_allowed_sources": ["10.0.0.0/8", "web-1"]}, "'web-1' is not an IPv4/IPv6"),
    ({"memcached_extra_options": ["-m 2048"]}, "-m 2048 sets what a memcached_ variable owns"),
    ({"memcached_extra_options": ["--port=1"]}, "--port=1 sets what"),
    ({"memcached_extra_options": "-t 4"}, "memcached_extra_options must be a list"),
])
def test_each_problem_is_named(changes: dict[str, Any], message: str) -> None:
    found = check(**changes)
    assert len(found) == 1 and message in found[0], found


def test_every_problem_is_reported_at_once() -> None:
    assert len(check(memcached_port=0, memcached_memory_mb=-1, memcached_listen_address="::")) == 3


def test_an_unknown_role_and_bad_settings_are_named() -> None:
    with pytest.raises(AnsibleFilterError, match="no settings checks for role 'nginx'"):
        hostkit_settings_problems({}, "nginx")
    with pytest.raises(AnsibleFilterError, match="no settings checks for role '../x'"):
        hostkit_settings_problems({}, "../x")
    with pytest.raises(AnsibleFilterError, match="must be a mapping"):
        hostkit_settings_problems(["memcached_port"], "memcached")
