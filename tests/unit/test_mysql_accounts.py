"""module_utils/mysql_accounts.py: one account name from a list of hosts."""

from __future__ import annotations

import pytest

from module_utils.mysql_accounts import AccountError, AccountPlan, plan_account, priv_string


def test_present_keeps_the_listed_hosts_and_drops_the_others() -> None:
    plan = plan_account("repl", ["10.0.0.2", "10.0.0.3", "10.0.0.2"], ["10.0.0.3", "10.0.0.9"])
    assert plan == AccountPlan("repl", ("10.0.0.2", "10.0.0.3"), ("10.0.0.9",))


def test_allowed_from_no_host_drops_every_host_part() -> None:
    assert plan_account("failover", [], ["10.0.0.7", "10.0.0.8"]) == \
        AccountPlan("failover", (), ("10.0.0.7", "10.0.0.8"))
    assert plan_account("failover", [], []) == AccountPlan("failover", (), ())
    assert plan_account("failover", [], ["10.0.0.7"], exclusive=False).remove == ()


def test_not_exclusive_drops_nothing() -> None:
    plan = plan_account("root", ["localhost"], ["localhost", "%"], exclusive=False)
    assert plan.keep == ("localhost",) and plan.remove == ()


def test_absent_drops_only_the_listed_hosts_the_server_has() -> None:
    plan = plan_account("", ["localhost", "db-1"], ["localhost"], state="absent")
    assert plan == AccountPlan("", (), ("localhost",))
    assert plan_account("root", ["%"], ["localhost"], state="absent").remove == ()


@pytest.mark.parametrize(("name", "hosts", "state", "message"), [
    ("repl", [""], "present", "non-empty string"),
    ("repl", [None], "present", "non-empty string"),
    ("repl", ["x" * 256], "present", "longer than 255"),
    ("", ["localhost"], "present", "anonymous account"),
    ("r" * 81, ["localhost"], "present", "at most 80"),
    ("repl", ["localhost"], "gone", "state must be present or absent"),
])
def test_bad_input_is_named(name: str, hosts: list, state: str, message: str) -> None:
    with pytest.raises(AccountError, match=message):
        plan_account(name, hosts, [], state=state)


def test_priv_string_from_a_mapping_or_a_string() -> None:
    assert priv_string({"*.*": "REPLICATION SLAVE,BINLOG MONITOR"}) == \
        "*.*:REPLICATION SLAVE,BINLOG MONITOR"
    assert priv_string({"`hello`.*": ["SELECT", "INSERT"], "*.*": "USAGE"}) == \
        "`hello`.*:SELECT,INSERT/*.*:USAGE"
    assert priv_string("*.*:ALL,GRANT") == "*.*:ALL,GRANT"
    assert priv_string(None) is None and priv_string({}) is None


@pytest.mark.parametrize("priv", [["*.*:ALL"], {"*.*": ""}, {"": "ALL"}])
def test_bad_priv_is_named(priv: object) -> None:
    with pytest.raises(AccountError, match="priv"):
        priv_string(priv)  # type: ignore[arg-type]
