"""host_programs/failover/decide.py: every decision of the failover, from made-up observations."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from host_programs.failover import decide as fo
from module_utils.mysql_flavor import MARIADB, MYSQL, Flavor
from tests.unit.fake_cluster import document

MDB = Flavor(MARIADB, (10, 11, 6))
MY = Flavor(MYSQL, (8, 0, 36))
U1 = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
U2 = "4e11fa47-71ca-11e1-9e33-c80aa9429562"


def cluster() -> fo.Cluster:
    return fo.Cluster.from_document(document(), "hello")


def replica(server: str, at: float = 0.0, *, source: str = "10.0.0.1", io: str = "Yes",
            heartbeats: int | None = 0, period: float = 0.5, current: str = "0-1-10",
            io_pos: str | None = None, state: str | None = None, ok: bool = True,
            sql_errno: int = 0) -> fo.Observation:
    if not ok:
        return fo.Observation(server, at, False, error="(2003, refused)")
    return fo.Observation(
        server, at, True, flavor=MDB, read_only=True, uptime=100, origin=server[-1],
        gtid={"current": current, "slave": current, "binlog": current,
              "binlog_state": state if state is not None else current},
        replica={"configured": True, "source_host": source, "io_running": io == "Yes",
                 "io_thread": io, "sql_running": True, "gtid_io_pos": io_pos or current,
                 "last_io_error": "" if io == "Yes" else "error reconnecting",
                 "last_sql_errno": sql_errno, "last_sql_error": "dup" if sql_errno else ""},
        heartbeats=heartbeats, heartbeat_period=period)


def master(at: float, ok: bool = False, uptime: float = 5000.0,
           read_only: bool = False) -> fo.Observation:
    if not ok:
        return fo.Observation("db-1", at, False, error="(2003, Connection refused)")
    return fo.Observation("db-1", at, True, flavor=MDB, read_only=read_only, uptime=uptime,
                          origin="1", gtid={"current": "0-1-10", "binlog_state": "0-1-10"})


# --------------------------------------------------------------------------- positions


@pytest.mark.parametrize(("have", "want", "flavor", "expected"), [
    ("0-1-10", "0-1-9", MDB, True),
    ("0-2-11", "0-1-10", MDB, True),          # a later master continues the domain
    ("0-1-10", "0-1-11", MDB, False),
    ("0-1-10", "0-1-10,1-5-3", MDB, False),   # a domain it has never seen
    ("", "", MDB, True),
    (f"{U1}:1-10", f"{U1}:1-9", MY, True),
    (f"{U1}:1-10", f"{U1}:1-9,{U2}:1", MY, False),
])
def test_covers(have: str, want: str, flavor: Flavor, expected: bool) -> None:
    assert fo.covers(have, want, flavor) is expected


def test_join_positions_keeps_the_highest_of_each_domain() -> None:
    assert fo.join_positions(["0-1-10,1-3-4", "0-2-12", None, ""], MDB) == "0-2-12,1-3-4"
    assert fo.join_positions([f"{U1}:1-5", f"{U1}:6-9,{U2}:3"], MY) == f"{U1}:1-9,{U2}:3"


@pytest.mark.parametrize(("part", "whole", "flavor", "missing"), [
    ("0-1-10,0-2-11", "0-1-10", MDB, "0-2-11"),         # written on a replica, ahead
    ("0-1-10", "0-2-35", MDB, ""),                      # whole seeded from a copy at 35
    ("0-1-10,0-3-4", "0-1-12,0-3-4", MDB, ""),
    ("0-1-10,1-5-2", "0-1-10", MDB, "1-5-2"),           # a domain whole never saw
    (f"{U1}:1-5,{U2}:1", f"{U1}:1-9", MY, f"{U2}:1"),
])
def test_missing_from(part: str, whole: str, flavor: Flavor, missing: str) -> None:
    assert fo.missing_from(part, whole, flavor) == missing


def test_without_origin_drops_one_writer() -> None:
    assert fo.without_origin("0-1-10,0-2-5,1-1-3", "1", MDB) == "0-2-5"
    assert fo.without_origin(f"{U1}:1-5,{U2}:1-2", U1.upper(), MY) == f"{U2}:1-2"
    assert fo.without_origin("0-1-10", None, MDB) == "0-1-10"


# --------------------------------------------------------------------------- the cluster


def test_cluster_from_the_global_config() -> None:
    c = cluster()
    assert c.master == "db-1"
    assert c.replicas() == ["db-2", "db-3", "db-4"]
    assert c.names("db-2") == {"db-2", "10.0.0.2"}
    assert c.downstream("db-1") == ["db-2", "db-4", "db-3"]
    assert c.downstream("db-2") == ["db-3"]


def test_cluster_names_a_server_without_address() -> None:
    doc = document()
    del doc["servers"]["db-3"]["address"]
    with pytest.raises(fo.FailoverError, match="slave_candidate 'db-3' has no address"):
        fo.Cluster.from_document(doc, "hello")
    with pytest.raises(fo.FailoverError, match="cluster 'nope'"):
        fo.Cluster.from_document(doc, "nope")


# --------------------------------------------------------------------------- master health


def rounds(health: fo.MasterHealth, count: int, start: float = 0.0, step: float = 0.5,
           **kw: Any) -> list[fo.Verdict]:
    """`count` rounds with a failed direct check and replicas built by replica(**kw)."""
    out = []
    for i in range(count):
        at = start + i * step
        views = [replica(s, at, **{k: (v(i) if callable(v) else v) for k, v in kw.items()})
                 for s in ("db-2", "db-4")]
        out.append(health.observe(master(at), views, 1000.0 + at))
    return out


def test_alive_master_resets_the_count() -> None:
    health = fo.MasterHealth(cluster(), fo.HealthSettings(rounds=3))
    rounds(health, 2, io="Connecting")
    verdict = health.observe(master(2.0, ok=True), [replica("db-2", 2.0)], 1002.0)
    assert verdict.state == fo.ALIVE and health.failures == 0


def test_killed_master_is_dead_after_the_configured_rounds() -> None:
    health = fo.MasterHealth(cluster(), fo.HealthSettings(rounds=3))
    verdicts = rounds(health, 3, io="Connecting")
    assert [v.state for v in verdicts] == [fo.SUSPECT, fo.SUSPECT, fo.DEAD]
    assert verdicts[-1].first_failure_at == 0.0 and verdicts[-1].failed_rounds == 3
    assert "db-2 (IO thread Connecting" in verdicts[-1].reasons[-1]


def test_replica_that_still_hears_the_master_prevents_a_failover() -> None:
    health = fo.MasterHealth(cluster(), fo.HealthSettings(rounds=2, silence=1.0))
    # the watcher's path to the master is cut; db-2 and db-4 still get heartbeats
    verdicts = rounds(health, 20, heartbeats=lambda i: i)
    assert {v.state for v in verdicts} == {fo.SUSPECT}
    assert "replicas still hear the master: db-2, db-4" in verdicts[-1].reasons


def test_one_replica_hearing_is_enough() -> None:
    health = fo.MasterHealth(cluster(), fo.HealthSettings(rounds=1, silence=1.0))
    for i in range(10):
        verdict = health.observe(master(i), [replica("db-2", i, io="Connecting"),
                                             replica("db-4", i, heartbeats=i)], 1000.0 + i)
        assert verdict.state == fo.SUSPECT


def test_frozen_master_is_dead_once_heartbeats_stop_for_the_silence() -> None:
    health = fo.MasterHealth(cluster(), fo.HealthSettings(rounds=2, silence=1.5))
    # IO threads still say Yes (the TCP connection is open), but nothing arrives
    verdicts = rounds(health, 6, heartbeats=7)
    assert [v.state for v in verdicts] == [fo.SUSPECT] * 4 + [fo.DEAD] * 2
    assert "nothing received for 2.0 s" in verdicts[4].reasons[-1]


def test_events_count_as_signs_of_life() -> None:
    health = fo.MasterHealth(cluster(), fo.HealthSettings(rounds=1, silence=1.0))
    verdicts = rounds(health, 10, heartbeats=3, io_pos=lambda i: f"0-1-{10 + i}")
    assert {v.state for v in verdicts} == {fo.SUSPECT}


def test_long_heartbeat_period_stretches_the_silence() -> None:
    health = fo.MasterHealth(cluster(), fo.HealthSettings(rounds=1, silence=1.0))
    verdicts = rounds(health, 10, heartbeats=3, period=30.0)
    assert {v.state for v in verdicts} == {fo.SUSPECT}


def test_replica_without_heartbeats_only_testifies_by_its_io_thread() -> None:
    health = fo.MasterHealth(cluster(), fo.HealthSettings(rounds=1, silence=1.0))
    verdicts = rounds(health, 10, heartbeats=3, period=0.0)
    assert {v.state for v in verdicts} == {fo.SUSPECT}
    assert "no heartbeats are configured" in verdicts[-1].witnesses["db-2"]


def test_no_replica_to_ask_is_unknown_not_dead() -> None:
    health = fo.MasterHealth(cluster(), fo.HealthSettings(rounds=1))
    verdicts = rounds(health, 3, ok=False)
    assert {v.state for v in verdicts} == {fo.UNKNOWN}
    assert "watcher may be the one cut off" in verdicts[-1].reasons[-1]


def test_chained_replica_is_no_witness() -> None:
    health = fo.MasterHealth(cluster(), fo.HealthSettings(rounds=1))
    verdict = health.observe(master(0), [replica("db-3", 0, source="10.0.0.2",
                                                 io="Connecting")], 1000.0)
    assert verdict.state == fo.UNKNOWN
    assert "does not replicate from the master" in verdict.witnesses["db-3"]


def test_restarted_master_is_dead_even_if_replicas_hear_it() -> None:
    health = fo.MasterHealth(cluster(), fo.HealthSettings(rounds=3))
    assert health.observe(master(0, True, uptime=5000), [replica("db-2", 0)],
                          10_000.0).state == fo.ALIVE
    assert health.observe(master(1, True, uptime=5001.4), [replica("db-2", 1, heartbeats=1)],
                          10_001.0).state == fo.ALIVE
    # db-2 kept running through it (up long before the master's new start)
    verdict = health.observe(master(2, True, uptime=1),
                             [up_since(replica("db-2", 2, heartbeats=2), 3_000)], 10_002.0)
    assert verdict.state == fo.DEAD and verdict.restarted
    assert "restarted" in verdict.reasons[0]


def test_restart_while_the_watcher_was_away_is_seen_from_the_saved_start() -> None:
    health = fo.MasterHealth(cluster(), started_at=5_000.0)
    verdict = health.observe(master(0, True, uptime=3), [], 10_000.0)
    assert verdict.state == fo.DEAD and verdict.restarted
    health = fo.MasterHealth(cluster(), started_at=5_000.0)
    assert health.observe(master(0, True, uptime=5_000.6), [], 10_000.0).state == fo.ALIVE


def up_since(obs: fo.Observation, uptime: float) -> fo.Observation:
    return dataclasses.replace(obs, uptime=uptime)


def test_whole_cluster_restart_keeps_the_master() -> None:
    """A power cut of the whole site: every replica that answers started at most two minutes
    before the restarted master (or after it). No replica ran through the master's absence:
    nothing better to fail over to."""
    health = fo.MasterHealth(cluster(), started_at=5_000.0)
    verdict = health.observe(master(0, True, uptime=95),
                             [up_since(replica("db-2"), 200), up_since(replica("db-3"), 80),
                              replica("db-4", ok=False)], 10_000.0)
    assert verdict.state == fo.ALIVE and verdict.cluster_restarted and not verdict.restarted
    assert "whole cluster restarted" in verdict.reasons[0]
    # the new start is remembered: the next round is an ordinary one
    again = health.observe(master(1, True, uptime=96), [up_since(replica("db-2"), 201)], 10_001.0)
    assert again.state == fo.ALIVE and not again.cluster_restarted


def test_master_restarted_alone_is_dead_even_when_another_replica_restarted() -> None:
    health = fo.MasterHealth(cluster(), started_at=5_000.0)
    verdict = health.observe(master(0, True, uptime=95),
                             [up_since(replica("db-2"), 90), up_since(replica("db-3"), 300)],
                             10_000.0)
    assert verdict.state == fo.DEAD and verdict.restarted and not verdict.cluster_restarted


def test_read_only_master_is_alive_but_said() -> None:
    verdict = fo.MasterHealth(cluster()).observe(master(0, True, read_only=True), [], 1.0)
    assert verdict.state == fo.ALIVE and "read-only" in verdict.reasons[-1]


@pytest.mark.parametrize("settings", [{"rounds": 0}, {"silence": 0}])
def test_health_settings_are_checked(settings: dict[str, Any]) -> None:
    with pytest.raises(fo.FailoverError, match=next(iter(settings))):
        fo.HealthSettings(**settings)


# --------------------------------------------------------------------------- the choice


def views(**kw: dict[str, Any]) -> dict[str, fo.Observation]:
    base = {"db-2": {}, "db-3": {"source": "10.0.0.2"}, "db-4": {}}
    return {s: replica(s, **{**base[s], **kw.get(s.replace("-", ""), {})}) for s in base}


def test_candidate_is_preferred_when_equal() -> None:
    choice = fo.choose(cluster(), views(), MDB, "1", "0-1-10")
    assert choice.new_master == "db-2" and choice.catch_up_from is None
    assert choice.positions == {"master": "db-2", "candidate": "db-3",
                                "slave_candidate": None, "backup": "db-4"}
    assert choice.acker == "db-3"
    assert choice.refused == {"db-4": "the backup replica is never promoted"}


def test_more_advanced_slave_candidate_wins() -> None:
    choice = fo.choose(cluster(), views(db2={"current": "0-1-8", "io_pos": "0-1-8"},
                                        db3={"current": "0-1-10"}), MDB, "1", "0-1-10")
    assert choice.new_master == "db-3"
    assert choice.positions["candidate"] == "db-2"


def test_relay_log_counts_as_received() -> None:
    # the candidate's SQL thread lags but its relay log has everything
    choice = fo.choose(cluster(), views(db2={"current": "0-1-6", "io_pos": "0-1-12"},
                                        db3={"current": "0-1-6"},
                                        db4={"current": "0-1-12"}), MDB, "1", "0-1-10")
    assert choice.new_master == "db-2" and choice.catch_up_from is None
    assert choice.target == "0-1-12"


def test_backup_never_promoted_but_its_transactions_are_copied() -> None:
    choice = fo.choose(cluster(), views(db2={"current": "0-1-10"}, db3={"current": "0-1-9"},
                                        db4={"current": "0-1-14"}), MDB, "1", "0-1-10")
    assert choice.new_master == "db-2"
    assert choice.catch_up_from == "db-4" and choice.target == "0-1-14"
    assert "copies the difference" in choice.reasons[-1]


def test_errant_candidate_is_refused() -> None:
    choice = fo.choose(cluster(), views(db2={"current": "0-2-11", "state": "0-1-10,0-2-11"}),
                       MDB, "1", "0-1-10")
    assert choice.new_master == "db-3"
    assert "errant transactions 0-2-11" in choice.refused["db-2"]


def test_errant_check_without_the_masters_state_ignores_the_chained_copy() -> None:
    # db-3 copied db-2's errant transaction; db-4 (not fed by db-2) did not
    errant = {"current": "0-2-11", "state": "0-1-10,0-2-11"}
    choice = fo.choose(cluster(), views(db2=errant, db3={**errant, "source": "10.0.0.2"}),
                       MDB, "1", None)
    assert "db-2" in choice.refused and "errant" in choice.refused["db-2"]


def test_transactions_from_the_master_itself_are_not_errant() -> None:
    # db-2 received 0-1-12 after the watcher last saw the master at 0-1-10
    choice = fo.choose(cluster(), views(db2={"current": "0-1-12"}), MDB, "1", "0-1-10")
    assert choice.new_master == "db-2"


def test_gtid_state_joins_the_binlog_with_the_replication_position() -> None:
    reseeded = {"binlog_state": "0-1-40", "current": "0-1-40", "slave": "0-2-35",
                "binlog": "0-1-40"}
    assert fo.gtid_state(reseeded, MDB) == "0-1-40,0-2-35"
    assert fo.gtid_state({"executed": f"{U1}:1-5"}, MY) == f"{U1}:1-5"
    # a master re-seeded from a copy: its own binary log starts after the copy, the copy's
    # history (from server 2) is in gtid_slave_pos; replicas that have it are not errant
    choice = fo.choose(cluster(), views(db2={"current": "0-1-40", "state": "0-2-35,0-1-40"}),
                       MDB, "1", fo.gtid_state(reseeded, MDB))
    assert choice.new_master == "db-2" and "db-2" not in choice.refused


def test_no_eligible_replica_means_no_choice() -> None:
    errant = {"current": "0-3-11", "state": "0-1-10,0-3-11"}
    choice = fo.choose(cluster(), views(db2={"ok": False}, db3=errant), MDB, "1", "0-1-10")
    assert choice.new_master is None and choice.positions == {}
    assert "unreachable" in choice.refused["db-2"]
    assert "errant" in choice.refused["db-3"]
    assert "never promoted" in choice.refused["db-4"]
    assert "no replica can be promoted" in choice.reasons[0]


def test_broken_sql_thread_is_refused() -> None:
    choice = fo.choose(cluster(), views(db2={"sql_errno": 1062}), MDB, "1", "0-1-10")
    assert choice.new_master == "db-3"
    assert "error 1062" in choice.refused["db-2"]


def test_dead_candidate_leaves_the_backup_to_acknowledge() -> None:
    choice = fo.choose(cluster(), views(db2={"ok": False}), MDB, "1", "0-1-10")
    assert choice.new_master == "db-3"
    assert choice.positions == {"master": "db-3", "candidate": None,
                                "slave_candidate": None, "backup": "db-4"}
    assert choice.acker == "db-4"


def test_fenced_servers_are_excluded() -> None:
    choice = fo.choose(cluster(), views(), MDB, "1", "0-1-10", excluded=["db-2"])
    assert choice.new_master == "db-3" and choice.refused["db-2"] == "fenced"


def test_switchover_positions() -> None:
    assert fo.switchover_positions(cluster(), "db-2") == {
        "master": "db-2", "candidate": "db-1", "slave_candidate": "db-3", "backup": "db-4"}
    assert fo.switchover_positions(cluster(), "db-3") == {
        "master": "db-3", "candidate": "db-1", "slave_candidate": "db-2", "backup": "db-4"}
    with pytest.raises(fo.FailoverError, match="'db-4' is backup"):
        fo.switchover_positions(cluster(), "db-4")
    with pytest.raises(fo.FailoverError, match="not in the cluster"):
        fo.switchover_positions(cluster(), "db-9")


# --------------------------------------------------------------------------- plans


def test_failover_plan_order() -> None:
    choice = fo.choose(cluster(), views(db4={"current": "0-1-12"}), MDB, "1", "0-1-10")
    journal = fo.failover_plan(cluster(), choice, "2026-11-28T09:00:00.000Z", ["dead"])
    assert [(s.name, s.server) for s in journal.steps] == [
        ("fence", "db-1"), ("apply_relay_log", "db-2"), ("catch_up", "db-2"),
        ("promote", "db-2"), ("publish", None), ("detach", "db-2"), ("repoint", "db-3"),
        ("wait_semi_sync", "db-2"), ("repoint", "db-4"), ("power_off", "db-1")]
    repoints = {s.server: s.args for s in journal.steps if s.name == "repoint"}
    assert repoints == {"db-3": {"source": "db-2", "semi_sync": True},
                        "db-4": {"source": "db-2", "semi_sync": False}}
    switch = fo.switchover_plan(cluster(), "db-2", "now")
    assert {s.server: s.args["semi_sync"] for s in switch.steps if s.name == "repoint"} == {
        "db-1": True, "db-4": False, "db-3": True}
    assert journal.steps[2].args == {"source": "db-4", "target": "0-1-12"}
    assert journal.id == "hello-failover-20261128T090000000Z"
    assert journal.fenced == ["db-1"] and journal.reasons[0] == "dead"


def test_failover_plan_needs_a_choice() -> None:
    with pytest.raises(fo.FailoverError, match="no failover"):
        fo.failover_plan(cluster(), fo.Choice(None), "now")


def test_switchover_plan_order() -> None:
    journal = fo.switchover_plan(cluster(), "db-2", "2026-11-28T09:00:00Z")
    assert [(s.name, s.server) for s in journal.steps] == [
        ("freeze", "db-1"), ("wait_caught_up", "db-2"), ("detach", "db-2"), ("promote", "db-2"),
        ("publish", None), ("repoint", "db-1"), ("wait_semi_sync", "db-2"),
        ("repoint", "db-4"), ("repoint", "db-3")]
    repoints = {s.server: s.args["source"] for s in journal.steps if s.name == "repoint"}
    assert repoints == {"db-1": "db-2", "db-4": "db-2", "db-3": "db-1"}


def test_journal_round_trip_and_checks() -> None:
    journal = fo.switchover_plan(cluster(), "db-2", "2026-11-28T09:00:00Z")
    journal.steps[0].status = fo.DONE
    again = fo.Journal.from_dict(journal.to_dict())
    assert again.to_dict() == journal.to_dict()
    assert again.next_step() is again.steps[1]
    data = journal.to_dict()
    del data["steps"]
    with pytest.raises(fo.FailoverError, match="field 'steps' is missing"):
        fo.Journal.from_dict(data)
    with pytest.raises(fo.FailoverError, match="unknown kind"):
        fo.Journal.from_dict({**journal.to_dict(), "kind": "magic"})


# --------------------------------------------------------------------------- anti-flap


def test_anti_flap_window_and_acknowledgement() -> None:
    flap = fo.AntiFlap(window=600)
    assert flap.allowed(0) and flap.blocked_until() is None
    flap.record("j1", 1000.0)
    assert not flap.allowed(1500.0) and flap.blocked_until() == 1600.0
    assert flap.allowed(1600.0)
    assert not flap.acknowledge("other")
    assert flap.acknowledge("j1") and flap.allowed(1001.0)
    flap.record("j2", 2000.0)
    assert not flap.allowed(2001.0)
    again = fo.AntiFlap.from_dict(flap.to_dict(), 600)
    assert again == flap
    assert not fo.AntiFlap(60).acknowledge()


def test_returning_old_master_is_made_read_only() -> None:
    assert fo.fenced_server_action(master(0, True, read_only=False)) == "make_read_only"
    assert fo.fenced_server_action(master(0, True, read_only=True)) is None
    assert fo.fenced_server_action(master(0, False)) is None
