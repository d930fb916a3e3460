"""action_plugins/hostkit_packages.py: which modules run, with which arguments.

The host side is the builtin modules' (package_facts, find, apt, dnf); these tests drive the
plugin with recorded module results. tests/platform/test_packages_fresh_image.py runs it on a
freshly baked image whose package lists were removed.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from ansible.errors import AnsibleActionFail

from action_plugins.hostkit_packages import (
    ActionModule,
    install_args,
    manager_of,
    missing_packages,
)

FACTS_WITH_CURL = {"curl": [{"name": "curl", "version": "7.88"}]}


class Host:
    """Module results by module name; every call recorded."""

    def __init__(self, **answers: Any) -> None:
        self.answers = answers
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, name: str, module_args: dict[str, Any],
                 task_vars: dict[str, Any]) -> dict[str, Any]:
        self.calls.append((name, module_args))
        answer = self.answers[name.rsplit(".", 1)[-1]]
        if isinstance(answer, list):
            return answer.pop(0)
        return dict(answer)

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


def plugin(host: Host, check_mode: bool = False, **args: Any) -> ActionModule:
    task = SimpleNamespace(args=args, check_mode=check_mode, async_val=0, action="hostkit_packages",
                           diff=False)
    connection = SimpleNamespace(_shell=SimpleNamespace(tmpdir="/tmp/x"))
    action = ActionModule(task, connection, None, None, None)  # type: ignore[arg-type]
    action._module = host  # type: ignore[method-assign]
    return action


def facts(pkg_mgr: str, packages: dict[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {"pkg_mgr": pkg_mgr, "os_family": "Debian"}
    if packages is not None:
        out["packages"] = packages
    return {"ansible_facts": out}


def test_missing_packages_keeps_order_and_drops_repeats() -> None:
    assert missing_packages(["a", "b", "a", "c"], {"b": []}) == ["a", "c"]
    assert missing_packages(["a", "a"], None) == ["a"]


def test_manager_of_names_an_unsupported_manager() -> None:
    assert manager_of("apt") == "apt"
    assert manager_of("dnf5") == "dnf"
    with pytest.raises(AnsibleActionFail, match="'zypper'"):
        manager_of("zypper")
    with pytest.raises(AnsibleActionFail, match="gather facts"):
        manager_of(None)


def test_apt_without_lists_always_updates_whatever_the_cache_age() -> None:
    args = install_args("apt", ["jq"], lists_found=0, lists_valid_time=3600)
    assert args == {"name": ["jq"], "state": "present", "update_cache": True,
                    "cache_valid_time": 0}


def test_apt_with_lists_updates_only_when_they_are_old() -> None:
    args = install_args("apt", ["jq"], lists_found=4, lists_valid_time=600)
    assert args["update_cache"] is True and args["cache_valid_time"] == 600


def test_dnf_makes_its_cache_only_when_there_is_none() -> None:
    assert install_args("dnf", ["jq"], 0, 3600) == {"name": ["jq"], "state": "present",
                                                   "update_cache": True}
    assert install_args("dnf", ["jq"], 3, 3600)["update_cache"] is False


def test_nothing_runs_on_the_host_when_the_facts_list_every_package() -> None:
    host = Host()
    result = plugin(host, name=["curl"]).run(task_vars=facts("apt", FACTS_WITH_CURL))
    assert host.calls == []
    assert result["changed"] is False and result["missing"] == []
    assert "ansible_facts" not in result


def test_a_baked_image_gets_its_lists_then_the_package_then_new_facts() -> None:
    after = {**FACTS_WITH_CURL, "python3-boto3": [{"version": "1.26"}]}
    host = Host(package_facts=[{"ansible_facts": {"packages": FACTS_WITH_CURL}},
                               {"ansible_facts": {"packages": after}}],
                find={"matched": 0, "files": []},
                apt={"changed": True, "cache_updated": True, "cache_update_time": 1})
    result = plugin(host, name=["curl", "python3-boto3"]).run(task_vars=facts("apt", None))
    assert host.names() == ["ansible.builtin.package_facts", "ansible.builtin.find",
                            "ansible.builtin.apt", "ansible.builtin.package_facts"]
    find_args = host.calls[1][1]
    assert find_args["paths"] == ["/var/lib/apt/lists"]
    assert host.calls[2][1] == {"name": ["python3-boto3"], "state": "present",
                                "update_cache": True, "cache_valid_time": 0}
    assert result["changed"] is True and result["lists_refreshed"] is True
    assert result["missing"] == ["python3-boto3"]
    assert result["ansible_facts"]["packages"] == after


def test_without_python_apt_every_package_counts_as_missing() -> None:
    host = Host(package_facts=[{"failed": True, "msg": "python3-apt missing"},
                               {"ansible_facts": {"packages": FACTS_WITH_CURL}}],
                find={"matched": 3}, apt={"changed": True, "cache_updated": False})
    result = plugin(host, name=["curl"]).run(task_vars=facts("apt", None))
    assert host.calls[2][1]["name"] == ["curl"]
    assert host.calls[2][1]["cache_valid_time"] == 3600
    assert result["lists_refreshed"] is False
    assert result["ansible_facts"]["packages"] == FACTS_WITH_CURL


def test_check_mode_without_lists_says_what_a_real_run_would_do() -> None:
    host = Host(find={"matched": 0})
    result = plugin(host, check_mode=True, name=["jq"]).run(
        task_vars=facts("apt", FACTS_WITH_CURL))
    assert host.names() == ["ansible.builtin.find"]
    assert result["changed"] is True and result["lists_refreshed"] is True
    assert "would fetch the package lists and install jq" in result["msg"]


def test_check_mode_does_not_read_the_facts_again() -> None:
    host = Host(find={"matched": 2}, apt={"changed": True})
    result = plugin(host, check_mode=True, name=["jq"]).run(
        task_vars=facts("apt", FACTS_WITH_CURL))
    assert host.names() == ["ansible.builtin.find", "ansible.builtin.apt"]
    assert result["changed"] is True and "ansible_facts" not in result


def test_a_failed_install_names_the_packages() -> None:
    host = Host(find={"matched": 0},
                apt={"failed": True, "msg": "No package matching 'nope' is available"})
    result = plugin(host, name=["nope"]).run(task_vars=facts("apt", FACTS_WITH_CURL))
    assert result["failed"] is True
    assert result["msg"].startswith("installing nope with apt failed: No package matching")
    assert host.names() == ["ansible.builtin.find", "ansible.builtin.apt"]


def test_el_makes_the_dnf_cache_when_it_has_none() -> None:
    host = Host(find={"matched": 0}, dnf={"changed": True},
                package_facts={"ansible_facts": {"packages": {}}})
    result = plugin(host, name=["python3-boto3"]).run(task_vars=facts("dnf", {}))
    assert host.calls[0][1]["paths"] == ["/var/cache/dnf"]
    assert host.calls[0][1]["patterns"] == ["repomd.xml"]
    assert host.calls[1] == ("ansible.builtin.dnf", {"name": ["python3-boto3"],
                                                     "state": "present", "update_cache": True})
    assert result["lists_refreshed"] is True


def test_a_find_that_fails_stops_with_its_reason() -> None:
    host = Host(find={"failed": True, "msg": "permission denied"})
    with pytest.raises(AnsibleActionFail, match="package lists.*permission denied"):
        plugin(host, name=["jq"]).run(task_vars=facts("apt", {}))
