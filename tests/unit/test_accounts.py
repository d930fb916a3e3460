"""plugin_utils/accounts.py: which groups and users differ from what getent returns, and the
products' accounts as hostkit_accounts takes them."""

from __future__ import annotations

import re

import pytest

from plugin_utils.accounts import (
    SEPARATOR,
    AccountsError,
    product_accounts,
    read_tables,
    to_change,
)

PASSWD = {
    "root": ["x", "0", "0", "root", "/root", "/bin/bash"],
    "hello": ["x", "998", "998", "hostkit product hello", "/srv/hello", "/usr/sbin/nologin"],
    "alice": ["x", "1000", "1000", "hostkit product hello", "/home/alice", "/bin/bash"],
}
GROUP = {
    "root": ["x", "0", ""],
    "hello": ["x", "998", ""],
    "alice": ["x", "1000", ""],
    "deploy": ["x", "2001", "alice"],
    "adm": ["x", "4", "alice,bob"],
}
HELLO = {"name": "hello", "group": "hello", "system": True, "home": "/srv/hello",
         "create_home": False, "shell": "/usr/sbin/nologin", "comment": "hostkit product hello"}


def names(pairs: list) -> list[str]:
    return [entry["name"] for entry, _ in pairs]


def test_nothing_to_do_when_the_host_has_every_account_as_wanted() -> None:
    groups, users = to_change(
        [{"name": "hello", "system": True}, {"name": "deploy", "gid": 2001}],
        [HELLO, {"name": "alice", "groups": ["deploy", "adm"], "append": True,
                 "shell": "/bin/bash", "create_home": True}],
        PASSWD, GROUP)
    assert groups == [] and users == []


def test_missing_accounts_and_each_differing_field_are_named() -> None:
    groups, users = to_change(
        [{"name": "notes"}, {"name": "deploy", "gid": 2002}],
        [{"name": "notes"}, {**HELLO, "shell": "/bin/sh"}, {**HELLO, "home": "/srv/x"},
         {**HELLO, "comment": "other"}, {**HELLO, "group": "adm"},
         {**HELLO, "group": "nosuchgroup"}],
        PASSWD, GROUP)
    assert groups == [({"name": "notes"}, "missing"),
                      ({"name": "deploy", "gid": 2002}, "gid 2001, wanted 2002")]
    assert [why for _, why in users] == [
        "missing", "shell '/usr/sbin/nologin', wanted '/bin/sh'",
        "home '/srv/hello', wanted '/srv/x'",
        "comment 'hostkit product hello', wanted 'other'",
        "primary group is not adm", "primary group is not nosuchgroup"]


def test_supplementary_groups_append_or_exact() -> None:
    _, users = to_change([], [{"name": "alice", "groups": ["deploy", "www"], "append": True},
                              {"name": "alice", "groups": ["deploy"], "append": False},
                              {"name": "alice", "groups": ["deploy", "adm"]},
                              {"name": "alice", "groups": ["alice"], "append": True}],
                         PASSWD, GROUP)
    # the primary group counts as membership; exact lists leave it aside
    assert [why for _, why in users] == ["not in www", "groups ['adm', 'deploy'], wanted "
                                         "['deploy']"]


def test_only_the_fields_an_entry_sets_are_compared_and_none_is_unset() -> None:
    _, users = to_change([], [{"name": "hello", "shell": None, "system": False,
                               "create_home": True}], PASSWD, GROUP)
    assert users == []


@pytest.mark.parametrize(("groups", "users", "message"), [
    ("hello", [], "groups must be a list, not str"),
    ([{"gid": 1}], [], "groups[0] must be a mapping with a name"),
    ([], [{"name": "x", "uid": 5}], "users[0] (x): unknown field(s) uid"),
])
def test_bad_entries_are_named(groups: object, users: object, message: str) -> None:
    with pytest.raises(AccountsError, match=re.escape(message)):
        to_change(groups, users, PASSWD, GROUP)


def test_product_accounts_in_the_order_the_modules_need() -> None:
    accounts = product_accounts(
        [{"name": "hello"},
         {"name": "notes", "user": "notesapp", "group": "notesgrp",
          "groups": [{"name": "deploy", "gid": 2001}, {"name": "ops"}],
          "users": [{"name": "bob", "groups": ["deploy"]},
                    {"name": "carol", "shell": "/bin/zsh"}]}],
        "/srv", "/usr/sbin/nologin", "/bin/bash")
    assert accounts["groups"] == [{"name": "hello", "system": True},
                                  {"name": "notesgrp", "system": True},
                                  {"name": "deploy", "gid": 2001}, {"name": "ops"}]
    assert accounts["users"][0] == HELLO
    assert accounts["users"][1]["name"] == "notesapp"
    assert accounts["users"][1]["group"] == "notesgrp"
    assert accounts["users"][1]["home"] == "/srv/notes"
    assert accounts["users"][2:] == [
        {"name": "bob", "groups": ["deploy"], "append": True, "shell": "/bin/bash",
         "create_home": True, "comment": "hostkit product notes"},
        {"name": "carol", "groups": [], "append": True, "shell": "/bin/zsh",
         "create_home": True, "comment": "hostkit product notes"}]


def test_read_tables_parses_getent_output_and_keeps_the_first_row_of_a_name() -> None:
    output = "\n".join([
        "root:x:0:0:root:/root:/bin/bash",
        "hello:x:998:998:hostkit product hello:/srv/hello:/usr/sbin/nologin",
        "hello:x:5000:5000:from ldap:/home/hello:/bin/sh",
        "broken line",
        SEPARATOR,
        "root:x:0:",
        "deploy:x:2001:alice,bob",
    ]) + "\n"
    passwd, group = read_tables(output)
    assert passwd == {"root": ["x", "0", "0", "root", "/root", "/bin/bash"],
                      "hello": ["x", "998", "998", "hostkit product hello", "/srv/hello",
                                "/usr/sbin/nologin"]}
    assert group == {"root": ["x", "0", ""], "deploy": ["x", "2001", "alice,bob"]}
    with pytest.raises(AccountsError, match="lack the group database"):
        read_tables("root:x:0:0:root:/root:/bin/bash\n")
