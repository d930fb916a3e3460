"""host_programs/failover/steps.py: journals carried out against a simulated MariaDB cluster."""

from __future__ import annotations

from typing import Any

import pytest

from host_programs.failover import decide as fo
from host_programs.failover import steps as fr
from module_utils.mysql_flavor import MARIADB, Flavor
from tests.unit.fake_cluster import FakeCluster, FakeOperationalError, document, standard_cluster

MDB = Flavor(MARIADB, (10, 11, 6))


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class FakeFencer:
    isolates = True

    def __init__(self, cluster: FakeCluster, fail: bool = False) -> None:
        self.cluster = cluster
        self.fail = fail
        self.calls: list[tuple[str, str]] = []

    def isolate(self, server: str) -> str:
        self.calls.append(("isolate", server))
        if self.fail:
            raise RuntimeError("provider API unreachable")
        self.cluster.dbs[server].down = True
        return f"{server} isolated"

    def power_off(self, server: str) -> str:
        self.calls.append(("power_off", server))
        return f"{server} off"


class Harness:
    def __init__(self, cluster: FakeCluster, fencer: Any = None,
                 crash_after_saves: int | None = None) -> None:
        self.cluster = cluster
        self.fencer = fencer or FakeFencer(cluster)
        self.clock = Clock()
        self.published: list[dict[str, Any]] = []
        self.saved: list[dict[str, Any]] = []
        self.crash_after_saves = crash_after_saves
        self.events: list[tuple[str, str, dict[str, Any]]] = []
        self.publish_failures = 0

    def publish(self, journal: fo.Journal) -> str:
        if self.publish_failures:
            self.publish_failures -= 1
            raise RuntimeError("S3 unavailable")
        self.published.append(dict(journal.new))
        return f"epoch {len(self.published) + 3}"

    def save(self, journal: fo.Journal) -> None:
        self.saved.append(journal.to_dict())
        if self.crash_after_saves is not None and len(self.saved) >= self.crash_after_saves:
            raise SystemExit("watcher killed")

    def log(self, level: str, event: str, **fields: Any) -> None:
        self.events.append((level, event, fields))

    def runner(self) -> fr.Runner:
        return fr.Runner(self.cluster.connect, self.fencer, self.publish,
                         fr.RunSettings("repl", "secret", apply_timeout=5, catch_up_timeout=5,
                                        semi_sync_timeout=1),
                         self.save, self.log, self.clock, self.clock.sleep,
                         stamp=lambda: f"t{self.clock.now:.2f}")


def observations(cluster: FakeCluster) -> dict[str, fo.Observation]:
    out = {}
    for name in ("db-2", "db-3", "db-4"):
        try:
            out[name] = fr.observe(cluster.connect(name), name, 0.0)
        except FakeOperationalError as exc:
            out[name] = fr.failed_observation(name, 0.0, exc)
    return out


def plan(cluster: FakeCluster, master_state: str | None = "0-1-10") -> fo.Journal:
    c = fo.Cluster.from_document(document(), "hello")
    choice = fo.choose(c, observations(cluster), MDB, "1", master_state)
    return fo.failover_plan(c, choice, "2026-11-28T09:00:00Z", ["test"])


def assert_healthy_after_failover(cluster: FakeCluster, new: str = "db-2") -> None:
    dbs = cluster.dbs
    assert not dbs[new].read_only and dbs[new].source is None and dbs[new].semi_master
    writable = [d.name for d in dbs.values() if not d.read_only]
    assert writable == ["db-1", new] or writable == [new]   # db-1 is cut off (down)
    cluster.write(new, 3)
    for name, db in dbs.items():
        if name in ("db-1", new):
            continue
        assert set(cluster.acked) <= set(db.applied), f"{name} misses acknowledged writes"
    assert set(cluster.acked) <= set(dbs[new].applied)


def test_observe_reads_everything_a_round_needs() -> None:
    cluster = standard_cluster()
    obs = fr.observe(cluster.connect("db-2"), "db-2", 7.0)
    assert obs.ok and obs.at == 7.0 and obs.flavor == MDB
    assert obs.read_only is True and obs.origin == "2" and obs.uptime == 1000
    assert obs.replica["source_host"] == "10.0.0.1" and obs.io_running()
    assert obs.heartbeats and obs.heartbeats > 0 and obs.heartbeat_period == 0.5
    assert obs.executed() == "0-1-10" and obs.binlog_state() == "0-1-10"
    failed = fr.failed_observation("db-9", 1.0, FakeOperationalError("(2003,\n refused)"))
    assert not failed.ok and failed.error == "FakeOperationalError: (2003, refused)"


def test_killed_master_failover_to_the_candidate() -> None:
    cluster = standard_cluster()
    cluster.dbs["db-1"].down = True
    h = Harness(cluster)
    journal = h.runner().run(plan(cluster))
    assert journal.status == fo.DONE
    assert h.fencer.calls == [("isolate", "db-1"), ("power_off", "db-1")]
    assert h.published == [{"master": "db-2", "candidate": "db-3", "slave_candidate": None,
                            "backup": "db-4"}]
    dbs = cluster.dbs
    assert dbs["db-3"].source == "10.0.0.2" and dbs["db-3"].semi_slave
    assert dbs["db-4"].source == "10.0.0.2" and not dbs["db-4"].semi_slave
    assert_healthy_after_failover(cluster)
    assert "semi-sync active" in next(s.detail for s in journal.steps
                                      if s.name == "wait_semi_sync")


def test_lagging_candidate_applies_its_relay_log_before_promotion() -> None:
    cluster = standard_cluster()
    cluster.hold_sql.add("db-2")           # SQL thread lags: events wait in the relay log
    cluster.write("db-1", 5)
    assert cluster.dbs["db-2"].relay and cluster.dbs["db-4"].applied[-1][2] == 15
    cluster.dbs["db-1"].down = True
    journal = plan(cluster)
    assert journal.steps[1].name == "apply_relay_log"
    h = Harness(cluster)

    def release(seconds: float) -> None:   # the SQL thread catches up while we wait
        cluster.hold_sql.discard("db-2")
        h.clock.now += seconds

    h.clock.sleep = release  # type: ignore[method-assign]
    h.runner().run(journal)
    assert_healthy_after_failover(cluster)


def test_stopped_sql_thread_is_started_before_the_io_thread_stops() -> None:
    # an operator stopped the candidate's SQL thread; the IO thread kept receiving (and
    # acknowledging): the relay log holds acknowledged writes that only it and the backup have
    cluster = standard_cluster()
    cluster.dbs["db-2"].sql = "No"
    cluster.write("db-1", 6)
    assert len(cluster.dbs["db-2"].relay) == 6
    cluster.dbs["db-1"].down = True
    journal = plan(cluster)
    assert "catch_up" not in [s.name for s in journal.steps]     # its relay log has it all
    Harness(cluster).runner().run(journal)
    assert_healthy_after_failover(cluster)


def test_relay_log_of_a_fully_stopped_replica_counts_for_nothing() -> None:
    cluster = standard_cluster()
    cluster.dbs["db-2"].sql = "No"
    cluster.write("db-1", 6)
    cluster.dbs["db-2"].io = "No"         # both threads stopped: the relay log is lost
    cluster.dbs["db-1"].down = True
    journal = plan(cluster)
    catch_up = next(s for s in journal.steps if s.name == "catch_up")
    assert catch_up.args["target"] == "0-1-16"        # from the backup, which has it all
    Harness(cluster).runner().run(journal)
    assert_healthy_after_failover(cluster)


def test_candidate_behind_the_backup_copies_from_it_first() -> None:
    cluster = standard_cluster()
    cluster.dbs["db-2"].hold_io = True     # the candidate stops receiving; the backup does not
    cluster.write("db-1", 4)
    cluster.dbs["db-1"].down = True
    cluster.dbs["db-2"].hold_io = False
    journal = plan(cluster)
    catch_up = next(s for s in journal.steps if s.name == "catch_up")
    assert catch_up.args == {"source": "db-4", "target": "0-1-14"}
    Harness(cluster).runner().run(journal)
    assert cluster.dbs["db-2"].applied[-1] == (0, 1, 14)
    assert_healthy_after_failover(cluster)


# a failover to db-2 without catch-up: 9 steps, saved before and after each, then at the end
SAVES_OF_A_FAILOVER = 19


def test_every_step_is_saved_before_and_after() -> None:
    cluster = standard_cluster()
    cluster.dbs["db-1"].down = True
    h = Harness(cluster)
    h.runner().run(plan(cluster))
    assert len(h.saved) == SAVES_OF_A_FAILOVER
    assert [s["status"] for s in h.saved[0]["steps"]][:2] == [fo.RUNNING, fo.PENDING]


def test_catch_up_from_a_backup_whose_binlog_was_purged_gives_up_loudly() -> None:
    cluster = standard_cluster()
    cluster.dbs["db-2"].hold_io = True
    cluster.dbs["db-3"].hold_io = True
    cluster.write("db-1", 4)
    cluster.dbs["db-4"].binlog_from = len(cluster.dbs["db-4"].applied)   # purged
    cluster.dbs["db-1"].down = True
    cluster.dbs["db-2"].hold_io = cluster.dbs["db-3"].hold_io = False
    journal = plan(cluster)
    h = Harness(cluster)
    with pytest.raises(fr.StepFailed, match="IO error 1236"):
        h.runner().run(journal)                  # first attempt: fails fast, retried later
    h.runner().run(journal)
    catch_up = next(s for s in journal.steps if s.name == "catch_up")
    assert journal.status == fo.DONE and catch_up.detail.startswith("GAVE UP after 2")
    assert any(e[1] == "catch_up_abandoned" and e[0] == "critical" for e in h.events)
    assert not cluster.dbs["db-2"].read_only and cluster.dbs["db-2"].applied[-1] == (0, 1, 10)


@pytest.mark.parametrize("crash_at", range(1, SAVES_OF_A_FAILOVER + 1))
def test_watcher_killed_at_any_point_resumes_to_the_same_end(crash_at: int) -> None:
    cluster = standard_cluster()
    cluster.dbs["db-1"].down = True
    journal = plan(cluster)
    first = Harness(cluster, crash_after_saves=crash_at)
    with pytest.raises(SystemExit):
        first.runner().run(journal)
    saved = fo.Journal.from_dict(first.saved[-1])     # what the disk holds
    second = Harness(cluster)
    second.fencer = first.fencer
    done = second.runner().run(saved)
    assert done.status == fo.DONE
    assert_healthy_after_failover(cluster)
    assert (first.published + second.published)[-1]["master"] == "db-2"


def test_failed_publish_is_retried_not_abandoned() -> None:
    cluster = standard_cluster()
    cluster.dbs["db-1"].down = True
    h = Harness(cluster)
    h.publish_failures = 2
    journal = plan(cluster)
    for _ in range(2):
        with pytest.raises(fr.StepFailed, match="S3 unavailable"):
            h.runner().run(journal)
        assert journal.status == fo.RUNNING
    h.runner().run(journal)
    assert journal.status == fo.DONE and h.published[-1]["master"] == "db-2"
    assert next(s for s in journal.steps if s.name == "publish").attempts == 3
    assert [e for e in h.events if e[1] == "step_failed"]


def test_fence_failure_aborts_before_anything_changes() -> None:
    cluster = standard_cluster()
    cluster.dbs["db-1"].down = True
    h = Harness(cluster, FakeFencer(cluster, fail=True))
    h.fencer = FakeFencer(cluster, fail=True)
    journal = plan(cluster)
    with pytest.raises(fr.Aborted, match="provider API unreachable"):
        h.runner().run(journal)
    assert journal.status == fo.ABORTED and h.published == []
    assert cluster.dbs["db-2"].read_only and cluster.dbs["db-2"].source == "10.0.0.1"
    assert {s.status for s in journal.steps[1:]} == {fo.ABORTED}
    assert h.events[-1][0] == "critical"


def test_no_provider_fence_needs_the_old_master_to_answer() -> None:
    class NoFence:
        isolates = False

        def isolate(self, server: str) -> str:
            raise AssertionError("not called")

        def power_off(self, server: str) -> str:
            return "not powered off"

    cluster = standard_cluster()
    cluster.dbs["db-1"].down = True
    with pytest.raises(fr.Aborted, match="Can't connect"):
        Harness(cluster, NoFence()).runner().run(plan(cluster))
    # a master that answers (e.g. restarted by itself) is made read-only and replaced
    cluster = standard_cluster()
    journal = plan(cluster)
    Harness(cluster, NoFence()).runner().run(journal)
    assert cluster.dbs["db-1"].read_only
    assert "made read-only over SQL" in journal.steps[0].detail


def test_promotion_refuses_a_server_short_of_the_target() -> None:
    cluster = standard_cluster()
    cluster.dbs["db-1"].down = True
    journal = plan(cluster)
    promote = next(s for s in journal.steps if s.name == "promote")
    promote.args["target"] = "0-1-99"
    with pytest.raises(fr.StepFailed, match="short of 0-1-99"):
        Harness(cluster).runner().run(journal)
    assert cluster.dbs["db-2"].read_only


def test_unreachable_replica_is_skipped_and_errant_one_refused() -> None:
    cluster = standard_cluster()
    cluster.dbs["db-1"].down = True
    journal = plan(cluster)
    cluster.dbs["db-4"].down = True
    h = Harness(cluster)
    h.runner().run(journal)
    assert "skipped: unreachable" in next(s.detail for s in journal.steps
                                          if s.server == "db-4" and s.name == "repoint")
    # a replica with a transaction of its own is never pointed at the new master
    cluster = standard_cluster()
    cluster.dbs["db-1"].down = True
    journal = plan(cluster)
    cluster.write("db-4", 1, local=True)
    h = Harness(cluster)
    h.runner().run(journal)
    detail = next(s.detail for s in journal.steps if s.server == "db-4" and s.name == "repoint")
    assert detail.startswith("refused:") and "0-4-11" in detail
    assert cluster.dbs["db-4"].source == "10.0.0.1"
    assert any(e[1] == "repoint_refused" and e[0] == "critical" for e in h.events)


def test_switchover_loses_nothing_and_swaps_master_and_candidate() -> None:
    cluster = standard_cluster()
    c = fo.Cluster.from_document(document(), "hello")
    journal = fo.switchover_plan(c, "db-2", "2026-11-28T09:00:00Z")
    h = Harness(cluster)
    h.runner().run(journal)
    dbs = cluster.dbs
    assert journal.status == fo.DONE
    assert dbs["db-1"].read_only and dbs["db-1"].source == "10.0.0.2" and dbs["db-1"].semi_slave
    assert not dbs["db-1"].semi_master   # a replica never keeps the master side on
    assert dbs["db-3"].source == "10.0.0.1" and dbs["db-4"].source == "10.0.0.2"
    assert h.fencer.calls == []
    assert journal.steps[0].args["target"] == "0-1-10"
    cluster.write("db-2", 2)
    cluster.replicate()
    for db in dbs.values():
        assert set(cluster.acked) <= set(db.applied), db.name
    # the old master took the former master's own writes as its replication position
    assert "SET GLOBAL gtid_slave_pos = %s" in dbs["db-1"].statements


def test_a_reseeded_server_is_no_source_of_errant_alarms() -> None:
    # db-1 was re-seeded from a copy (RESET MASTER: its binary log is empty, the copy's
    # history is in gtid_slave_pos only); it becomes master again and the others follow it
    cluster = standard_cluster()
    c = fo.Cluster.from_document(document(), "hello")
    Harness(cluster).runner().run(fo.switchover_plan(c, "db-2", "t1"))
    cluster.write("db-2", 3)
    db1 = cluster.dbs["db-1"]
    db1.binlog_from = len(db1.applied)
    doc = document()
    doc["clusters"]["hello"]["db"] = {"master": "db-2", "candidate": "db-1",
                                      "slave_candidate": "db-3", "backup": "db-4"}
    back = fo.switchover_plan(fo.Cluster.from_document(doc, "hello"), "db-1", "t2")
    Harness(cluster).runner().run(back)
    details = {s.server: s.detail for s in back.steps if s.name == "repoint"}
    assert not any(d.startswith("refused") for d in details.values()), details
    assert cluster.dbs["db-2"].source == "10.0.0.1" and cluster.dbs["db-4"].source == "10.0.0.1"
    cluster.write("db-1", 2)
    for db in cluster.dbs.values():
        assert set(cluster.acked) <= set(db.applied), db.name


def test_switchover_that_cannot_catch_up_gives_the_master_back() -> None:
    cluster = standard_cluster()
    cluster.dbs["db-2"].hold_io = True
    cluster.write("db-1", 2)
    c = fo.Cluster.from_document(document(), "hello")
    journal = fo.switchover_plan(c, "db-2", "2026-11-28T09:00:00Z")
    h = Harness(cluster)
    with pytest.raises(fr.Aborted, match="not done within 5 s"):
        h.runner().run(journal)
    assert journal.status == fo.ABORTED and "writable again" in journal.steps[1].detail
    assert not cluster.dbs["db-1"].read_only and cluster.dbs["db-2"].read_only
    assert h.published == []


def test_finished_journal_is_left_alone() -> None:
    cluster = standard_cluster()
    journal = plan(cluster)
    journal.status = fo.DONE
    h = Harness(cluster)
    assert h.runner().run(journal) is journal and h.saved == []


def test_fence_read_only() -> None:
    cluster = standard_cluster()
    assert fr.fence_read_only(cluster.connect("db-1")) == "made read-only"
    assert cluster.dbs["db-1"].read_only


def test_utc_stamp_has_milliseconds() -> None:
    assert fr.utc_stamp(0.25) == "1970-01-01T00:00:00.250Z"
