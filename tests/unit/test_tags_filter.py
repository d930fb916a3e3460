"""filter_plugins/tags.py: the entries of a list whose tags run under --tags/--skip-tags."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from filter_plugins.tags import FilterModule, hostkit_tagged, selected

FILES = [
    {"path": "/etc/chrony/chrony.conf", "tags": ["common_time"]},
    {"path": "/etc/sudoers.d/hostkit-demo", "tags": ["common_users", "common_sudo"]},
    {"path": "/etc/ssh/sshd_config.d/00-hostkit.conf", "tags": ["common_ssh"]},
]


def paths(entries: list[dict]) -> list[str]:
    return [e["path"] for e in entries]


def test_a_plain_run_keeps_everything_without_tags() -> None:
    out = hostkit_tagged(FILES, ["all"], [])
    assert paths(out) == paths(FILES)
    assert all("tags" not in e for e in out)
    assert hostkit_tagged(FILES, None, None) == out  # no tags given means all


def test_run_tags_select_and_skip_tags_drop() -> None:
    assert paths(hostkit_tagged(FILES, ["common_ssh"], [])) == [
        "/etc/ssh/sshd_config.d/00-hostkit.conf"]
    assert paths(hostkit_tagged(FILES, ["common_sudo"], [])) == ["/etc/sudoers.d/hostkit-demo"]
    assert paths(hostkit_tagged(FILES, ["all"], ["common_users"])) == [
        "/etc/chrony/chrony.conf", "/etc/ssh/sshd_config.d/00-hostkit.conf"]
    assert hostkit_tagged(FILES, ["common_hostname"], []) == []


@pytest.mark.parametrize("tags, run, skip, expected", [
    (["always"], ["other"], [], True),
    (["always"], ["all"], ["always"], False),
    (["never"], ["all"], [], False),
    (["never", "x"], ["x"], [], True),
    (["x"], ["tagged"], [], True),
    ([], ["tagged"], [], False),
    (["x"], ["all"], ["tagged"], False),
    (["x"], ["all"], ["all"], False),
])
def test_special_tags(tags: list[str], run: list[str], skip: list[str], expected: bool) -> None:
    assert selected(tags, run, skip) is expected


def test_entries_need_a_tags_list() -> None:
    with pytest.raises(AnsibleFilterError, match="without a 'tags' list"):
        hostkit_tagged([{"path": "/x"}], ["all"], [])
    with pytest.raises(AnsibleFilterError, match="expects a list"):
        hostkit_tagged("not a list", ["all"], [])


def test_filter_is_registered() -> None:
    assert FilterModule().filters()["hostkit_tagged"] is hostkit_tagged
