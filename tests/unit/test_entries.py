"""plugin_utils/entries.py: the entries of hostkit_files' and hostkit_services' lists as the
action plugins read them (nested lists, `when`, `tags` under --tags/--skip-tags)."""

from __future__ import annotations

from typing import Any

import pytest

from plugin_utils.entries import EntryError, select_entries, selected

FILES: list[Any] = [
    {"path": "/etc/chrony/chrony.conf", "tags": ["common_time"]},
    [{"path": "/etc/sudoers.d/hostkit-demo", "tags": ["common_users", "common_sudo"]}],
    {"path": "/etc/ssh/sshd_config.d/00-hostkit.conf", "tags": ["common_ssh"]},
    {"path": "/etc/nftables.conf", "when": False, "tags": ["common_firewall"]},
    {"path": "/var/log/hostkit"},
]


def paths(entries: list[dict[str, Any]]) -> list[str]:
    return [e["path"] for e in entries]


def test_a_plain_run_keeps_every_entry_whose_when_holds() -> None:
    out = select_entries(FILES, ["all"], [], "files")
    assert paths(out) == ["/etc/chrony/chrony.conf", "/etc/sudoers.d/hostkit-demo",
                          "/etc/ssh/sshd_config.d/00-hostkit.conf", "/var/log/hostkit"]
    assert all("tags" not in e and "when" not in e for e in out)
    assert select_entries(FILES, None, None, "files") == out  # no tags given means all


def test_run_tags_select_and_skip_tags_drop() -> None:
    assert paths(select_entries(FILES, ["common_ssh"], [], "files")) == [
        "/etc/ssh/sshd_config.d/00-hostkit.conf", "/var/log/hostkit"]
    assert paths(select_entries(FILES, ["common_sudo"], [], "files")) == [
        "/etc/sudoers.d/hostkit-demo", "/var/log/hostkit"]
    assert paths(select_entries(FILES, ["all"], ["common_users"], "files")) == [
        "/etc/chrony/chrony.conf", "/etc/ssh/sshd_config.d/00-hostkit.conf", "/var/log/hostkit"]
    assert paths(select_entries(FILES, ["common_firewall"], [], "files")) == ["/var/log/hostkit"]


def test_an_empty_list_from_a_filter_adds_nothing() -> None:
    assert paths(select_entries([[], {"path": "/a"}, []], [], [], "files")) == ["/a"]


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


@pytest.mark.parametrize("entries, message", [
    ("not a list", "files must be a list of mappings, got str"),
    ([{"path": "/a"}, "x"], r"files\[1\]: an entry must be a mapping"),
    ([[{"path": "/a"}, 3]], r"files\[0\]: an entry must be a mapping .* got int"),
    ([{"path": "/a", "when": "yes"}], r"files\[0\] \(/a\): when must be true or false, got 'yes'"),
    ([{"name": "cron", "tags": "common"}], r"files\[0\] \(cron\): tags must be a list"),
])
def test_bad_entries_are_named(entries: Any, message: str) -> None:
    with pytest.raises(EntryError, match=message):
        select_entries(entries, [], [], "files")


def test_file_per_item_puts_the_items_fields_in_the_path() -> None:
    from plugin_utils.entries import file_per_item
    products = [{"name": "shop"}, {"name": "blog"}]
    out = file_per_item(products, "/etc/apache2/sites-enabled/hostkit-{name}.conf",
                        "vhost.conf.j2", mode="0644")
    assert out == [
        {"path": "/etc/apache2/sites-enabled/hostkit-shop.conf", "template": "vhost.conf.j2",
         "vars": {"item": products[0]}, "mode": "0644"},
        {"path": "/etc/apache2/sites-enabled/hostkit-blog.conf", "template": "vhost.conf.j2",
         "vars": {"item": products[1]}, "mode": "0644"}]
    assert file_per_item([], "/x/{name}", "t.j2") == []
    with pytest.raises(EntryError, match=r"item 1: path '/x/\{name\}' names a field it lacks"):
        file_per_item([{"name": "a"}, {"nom": "b"}], "/x/{name}", "t.j2")


def test_file_per_item_without_template_and_with_the_items_owner() -> None:
    from plugin_utils.entries import file_per_item
    out = file_per_item([{"name": "shop", "user": "shop", "group": "www"}], "/s/{name}",
                        state="directory", owner="{user}", group="{group}", mode="0700",
                        validate="check {name}")
    assert out == [{"path": "/s/shop", "state": "directory", "owner": "shop", "group": "www",
                    "mode": "0700", "validate": "check {name}"}]
