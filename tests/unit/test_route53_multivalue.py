"""Planning the multivalue A records of a name."""

from __future__ import annotations

import pytest

from module_utils.route53_multivalue import (
    Record,
    existing_records,
    plan_changes,
    wanted_records,
)


def test_no_change_when_records_agree() -> None:
    have = [Record("a.test.", "w1", "10.0.0.1", 30)]
    assert plan_changes(have, wanted_records("A.test", [{"name": "w1", "address": "10.0.0.1"}],
                                             30)) == []


def test_new_changed_and_gone_servers() -> None:
    have = [Record("a.test.", "w1", "10.0.0.1", 30), Record("a.test.", "w2", "10.0.0.2", 30)]
    want = wanted_records("a.test", [{"name": "w1", "address": "10.0.0.9"},
                                     {"name": "w3", "address": "10.0.0.3"}], 30)
    changes = plan_changes(have, want)
    assert [(c["Action"], c["ResourceRecordSet"]["SetIdentifier"]) for c in changes] == [
        ("DELETE", "w2"), ("UPSERT", "w1"), ("UPSERT", "w3")]
    assert changes[0]["ResourceRecordSet"]["ResourceRecords"] == [{"Value": "10.0.0.2"}]
    assert changes[1]["ResourceRecordSet"]["MultiValueAnswer"] is True


def test_only_multivalue_a_records_of_the_name_are_seen() -> None:
    sets = [
        {"Name": "a.test.", "Type": "A", "SetIdentifier": "w1", "MultiValueAnswer": True,
         "TTL": 30, "ResourceRecords": [{"Value": "10.0.0.1"}]},
        {"Name": "a.test.", "Type": "A", "SetIdentifier": "x", "Weight": 1, "TTL": 30,
         "ResourceRecords": [{"Value": "10.0.0.7"}]},
        {"Name": "b.test.", "Type": "A", "SetIdentifier": "w1", "MultiValueAnswer": True,
         "TTL": 30, "ResourceRecords": [{"Value": "10.0.0.1"}]},
        {"Name": "a.test.", "Type": "NS", "TTL": 30, "ResourceRecords": []},
    ]
    assert existing_records(sets, "a.test") == [Record("a.test.", "w1", "10.0.0.1", 30)]


def test_a_server_without_address_is_named() -> None:
    with pytest.raises(ValueError, match=r"record a\.test\.: every server needs"):
        wanted_records("a.test", [{"name": "w1"}], 30)
