"""host_programs/failover/ (watcher.py and the modules of its commands): the watcher's
rounds, its failovers, restarts, the anti-flap window, returning old masters and the
planned switchover, against a simulated cluster and the global config in moto's S3."""

from __future__ import annotations

import json
import os
from typing import Any

import boto3
import pytest
from moto import mock_aws

from host_programs.failover import decide as fo
from host_programs.failover import watcher as fw
from host_programs.failover.check import check
from host_programs.failover.config import WatcherConfig, WatcherError, parse_config, read_config
from host_programs.failover.logs import stamp_epoch
from host_programs.failover.loop import Watcher
from host_programs.failover.state import StateDir
from host_programs.failover.steps import utc_stamp
from host_programs.failover.switchover import abandon, switchover
from module_utils.global_config import GlobalConfig
from tests.unit.fake_cluster import FakeCluster, FakeOperationalError, document, standard_cluster

BUCKET, KEY = "hostkit-test-config", "global-config.json"


class Driver:
    """pymysql's connect(), answered by the simulated cluster."""

    def __init__(self, cluster: FakeCluster) -> None:
        self.cluster = cluster

    def connect(self, host: str, **_: Any) -> Any:
        return self.cluster.connect(host)


class Fencer:
    isolates = True
    name = "fake"

    def __init__(self, cluster: FakeCluster) -> None:
        self.cluster = cluster
        self.calls: list[tuple[str, str]] = []

    def isolate(self, server: str) -> str:
        self.calls.append(("isolate", server))
        self.cluster.dbs[server].down = True
        return "isolated"

    def power_off(self, server: str) -> str:
        self.calls.append(("power_off", server))
        return "off"


class Clock:
    def __init__(self) -> None:
        self.mono = 100.0
        self.wall_time = 1_800_000_000.0

    def clock(self) -> float:
        return self.mono

    def wall(self) -> float:
        return self.wall_time

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall_time += seconds


def config(tmp_path: Any, **kw: Any) -> WatcherConfig:
    data = {"bucket": BUCKET, "key": KEY, "mysql_user": "hostkit_failover",
            "mysql_password": "pw", "replication_user": "hostkit_repl",
            "replication_password": "rpw", "state_dir": str(tmp_path / "state"),
            "rounds": 3, "silence": 1.5, "interval": 0.5, "anti_flap_window": 600,
            "config_poll_interval": 0.1, "retry_interval": 1, **kw}
    return parse_config(data)


@pytest.fixture
def world(tmp_path: Any) -> Any:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        store = GlobalConfig(client, BUCKET, KEY, sleep=lambda _: None)
        store.create("test", document())
        cluster = standard_cluster()
        yield World(tmp_path, store, cluster)


class World:
    def __init__(self, tmp_path: Any, store: GlobalConfig, cluster: FakeCluster) -> None:
        self.tmp_path = tmp_path
        self.store = store
        self.cluster = cluster
        self.clock = Clock()
        self.fencer = Fencer(cluster)

    def watcher(self, **kw: Any) -> Watcher:
        return Watcher(config(self.tmp_path, **kw), self.store, self.fencer,
                       Driver(self.cluster), self.clock.clock, self.clock.wall,
                       self.clock.sleep)

    def rounds(self, watcher: Watcher, count: int) -> None:
        for _ in range(count):
            watcher.tick()
            self.clock.advance(0.5)

    def doc(self) -> dict[str, Any]:
        return self.store.read()[0]

    def state(self) -> dict[str, Any]:
        with open(self.tmp_path / "state" / "state.json") as handle:
            return json.load(handle)


# --------------------------------------------------------------------------- configuration


def test_config_errors_name_every_field(tmp_path: Any) -> None:
    with pytest.raises(WatcherError) as err:
        parse_config({"bucket": "b", "rounds": 0, "interval": "fast", "colour": "red",
                      "fence": {"method": "magic"}, "clusters": "hello",
                      "aws_environment": {"HOME": "/root"}}, "cfg.json")
    message = str(err.value)
    for part in ("unknown field 'colour'", "field 'key' is required",
                 "field 'rounds' must be a number from 1", "field 'interval' must be a number",
                 "field 'clusters' must be a list", "method is none, docker or ec2",
                 "field 'aws_environment' must map AWS_ACCESS_KEY_ID"):
        assert part in message
    assert message.startswith("cfg.json: ")
    assert config(tmp_path).health() == fo.HealthSettings(3, 1.5)


def test_read_config_names_the_file(tmp_path: Any) -> None:
    path = tmp_path / "c.json"
    path.write_text("{not json")
    with pytest.raises(WatcherError, match=f"{path}: not JSON"):
        read_config(str(path))
    with pytest.raises(WatcherError, match="cannot read the configuration"):
        read_config(str(tmp_path / "missing.json"))


# --------------------------------------------------------------------------- rounds


def test_healthy_rounds_write_the_state_and_remember_the_master(world: World) -> None:
    watcher = world.watcher()
    world.rounds(watcher, 3)
    state = world.state()["clusters"]["hello"]
    assert state["verdict"] == fo.ALIVE and state["master"] == "db-1"
    assert state["master_state"] == {"db-1": "0-1-10"} and state["master_origin"] == {"db-1": "1"}
    assert "db-1" in state["master_started_at"] and state["failover_allowed"]
    assert world.fencer.calls == []


def shared(world: World) -> None:
    """Products hello and shop on the one cluster 'main' (the day-two shape)."""
    from module_utils import global_config as gc

    def change(doc: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        doc, _ = gc.rename_cluster(doc, "hello", "main")
        doc, _ = gc.set_product(doc, "shop", cluster="main")
        for i in range(1, 5):
            doc, _ = gc.set_server(doc, f"db-{i}", products=["hello", "shop"])
        return doc, True
    world.store.update(change, "test")


def test_two_products_on_one_cluster_fail_over_in_one_journal_and_one_write(
        world: World) -> None:
    shared(world)
    watcher = world.watcher()
    world.rounds(watcher, 2)
    epoch = world.doc()["epoch"]
    world.cluster.dbs["db-1"].down = True          # kill -9
    world.rounds(watcher, 3)
    doc = world.doc()
    moved = {"master": "db-2", "candidate": "db-3", "slave_candidate": None, "backup": "db-4"}
    assert doc["clusters"]["main"]["db"] == moved
    assert doc["products"]["hello"]["db"] == doc["products"]["shop"]["db"] == moved
    assert doc["epoch"] == epoch + 1 and doc["servers"]["db-1"]["state"] == "fenced"
    journals = StateDir(str(world.tmp_path / "state")).journals()
    assert [(j.cluster, j.products, j.status) for j in journals] == [
        ("main", ["hello", "shop"], fo.DONE)]
    assert list(world.state()["clusters"]) == ["main"]
    assert world.fencer.calls == [("isolate", "db-1"), ("power_off", "db-1")]


def second_cluster(world: World) -> None:
    """Product solo on a cluster of its own: db-5 (master) and db-6 (candidate)."""
    from module_utils import global_config as gc

    world.cluster.add("db-5", 5, "10.0.0.5")
    world.cluster.add("db-6", 6, "10.0.0.6")
    world.cluster.dbs["db-5"].read_only = False
    world.cluster.dbs["db-5"].semi_master = True
    world.cluster.link("db-6", "db-5", semi=True)
    world.cluster.write("db-5", 5)
    world.cluster.replicate()

    def change(doc: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        doc, _ = gc.set_product(doc, "solo")
        for i in (5, 6):
            doc, _ = gc.set_server(doc, f"db-{i}", role="db", products=["solo"],
                                   az="us-east-1b", address=f"10.0.0.{i}", state="in_service")
        doc, _ = gc.set_product(doc, "solo", cluster="solo",
                                db={"master": "db-5", "candidate": "db-6"})
        return doc, True
    world.store.update(change, "test")


def test_a_cluster_of_its_own_fails_over_independently(world: World) -> None:
    second_cluster(world)
    watcher = world.watcher()
    world.rounds(watcher, 2)
    assert sorted(world.state()["clusters"]) == ["hello", "solo"]
    world.cluster.dbs["db-5"].down = True          # solo's master dies
    world.rounds(watcher, 3)
    doc = world.doc()
    assert doc["clusters"]["solo"]["db"]["master"] == "db-6"
    assert doc["products"]["solo"]["db"]["master"] == "db-6"
    assert doc["clusters"]["hello"]["db"]["master"] == "db-1"   # untouched
    assert world.fencer.calls == [("isolate", "db-5"), ("power_off", "db-5")]
    # hello's master dies right after: its own anti-flap record, so it fails over too
    world.cluster.dbs["db-1"].down = True
    world.rounds(watcher, 3)
    doc = world.doc()
    assert doc["clusters"]["hello"]["db"]["master"] == "db-2"
    assert doc["clusters"]["solo"]["db"]["master"] == "db-6"
    journals = StateDir(str(world.tmp_path / "state")).journals()
    assert sorted((j.cluster, j.products) for j in journals) == [
        ("hello", ["hello"]), ("solo", ["solo"])]


def test_dead_master_failover_publishes_and_blocks_a_second_one(world: World) -> None:
    watcher = world.watcher()
    world.rounds(watcher, 2)
    world.cluster.dbs["db-1"].down = True          # kill -9
    world.rounds(watcher, 3)
    doc = world.doc()
    assert doc["products"]["hello"]["db"] == {"master": "db-2", "candidate": "db-3",
                                              "slave_candidate": None, "backup": "db-4"}
    assert doc["servers"]["db-1"]["state"] == "fenced" and doc["epoch"] == 4
    assert world.fencer.calls == [("isolate", "db-1"), ("power_off", "db-1")]
    [journal] = StateDir(str(world.tmp_path / "state")).journals("hello")
    assert journal.status == fo.DONE and journal.detected_at
    assert any("first failed check at" in r for r in journal.reasons)
    world.cluster.write("db-2", 2)
    # the new master dies too, within the anti-flap window: alert, nothing changes
    world.rounds(watcher, 2)
    world.cluster.dbs["db-2"].down = True
    world.rounds(watcher, 6)
    assert world.doc()["epoch"] == 4
    state = world.state()["clusters"]["hello"]
    assert state["verdict"] == fo.DEAD and not state["failover_allowed"]
    assert state["alerts"][-1]["event"] == "failover_refused_anti_flap"
    # an operator acknowledges: the next round fails over to the slave candidate's successor
    StateDir(str(world.tmp_path / "state")).ack("hello", None)
    world.rounds(watcher, 2)
    assert world.doc()["products"]["hello"]["db"]["master"] == "db-3"
    assert set(world.cluster.acked) <= set(world.cluster.dbs["db-3"].applied)


def test_partitioned_watcher_does_not_fail_over(world: World) -> None:
    watcher = world.watcher()
    world.rounds(watcher, 2)
    real = Driver.connect

    def blocked(self: Driver, host: str, **kw: Any) -> Any:
        if host == "10.0.0.1":
            raise FakeOperationalError("(2003, timed out)")
        return real(self, host, **kw)

    Driver.connect = blocked  # type: ignore[method-assign]
    try:
        watcher.servers.forget("db-1")
        for _ in range(10):
            world.cluster.write("db-1", 1)     # replicas keep receiving events
            world.rounds(watcher, 1)
    finally:
        Driver.connect = real  # type: ignore[method-assign]
    state = world.state()["clusters"]["hello"]
    assert state["verdict"] == fo.SUSPECT and "still hear the master" in state["reasons"][-1]
    assert world.doc()["epoch"] == 3 and world.fencer.calls == []


def test_no_eligible_replica_changes_nothing(world: World) -> None:
    watcher = world.watcher()
    world.rounds(watcher, 2)
    world.cluster.dbs["db-1"].down = True
    world.cluster.dbs["db-2"].down = True
    world.cluster.dbs["db-3"].sql_error = (1062, "Duplicate entry")
    world.rounds(watcher, 5)
    assert world.doc()["epoch"] == 3 and world.fencer.calls == []
    alert = world.state()["clusters"]["hello"]["alerts"][-1]
    assert alert["event"] == "failover_impossible" and '"changed": "nothing"' in alert["detail"]


def test_restarted_watcher_finishes_the_failover(world: World) -> None:
    watcher = world.watcher()
    world.rounds(watcher, 2)
    world.cluster.dbs["db-1"].down = True
    # the watcher decided, saved its journal, fenced, then was killed
    cluster = fo.Cluster.from_document(world.doc(), "hello")
    seen = watcher.servers.probe_all(["db-2", "db-3", "db-4"])
    choice = fo.choose(cluster, seen, seen["db-2"].flavor, "1", "0-1-10")
    journal = fo.failover_plan(cluster, choice, utc_stamp(), ["test"])
    journal.steps[0].status = fo.DONE
    journal.steps[1].status = fo.RUNNING
    watcher.state.save_journal(journal)
    restarted = world.watcher()
    assert restarted.watch("hello").flap.last_failover_id is None
    world.rounds(restarted, 1)
    [done] = restarted.state.journals("hello")
    assert done.status == fo.DONE and done.steps[1].attempts == 1
    assert world.doc()["products"]["hello"]["db"]["master"] == "db-2"
    assert ("isolate", "db-1") not in world.fencer.calls     # that step was done before
    assert not world.cluster.dbs["db-2"].read_only


def test_restart_of_the_master_while_the_watcher_was_down_is_a_failure(world: World) -> None:
    world.rounds(world.watcher(), 2)                   # remembers db-1's start time
    world.cluster.dbs["db-1"].uptime = 2               # it crashed and came back read-only
    world.cluster.dbs["db-1"].read_only = True
    world.clock.advance(60)
    world.rounds(world.watcher(), 1)
    assert world.doc()["products"]["hello"]["db"]["master"] == "db-2"
    assert world.fencer.calls[0] == ("isolate", "db-1")


def test_a_former_master_restarted_as_replica_is_no_restart_when_master_again(
        world: World) -> None:
    watcher = world.watcher()
    world.rounds(watcher, 2)                            # db-1's start time is remembered
    switchover(watcher, "hello", "db-2")
    world.clock.advance(3)
    world.rounds(watcher, 2)                            # db-2 is watched now
    world.cluster.dbs["db-1"].uptime = 5                # db-1 restarted while a replica
    switchover(watcher, "hello", "db-1")
    world.clock.advance(3)
    world.rounds(watcher, 4)
    assert world.doc()["products"]["hello"]["db"]["master"] == "db-1"
    assert world.fencer.calls == []
    assert world.state()["clusters"]["hello"]["verdict"] == fo.ALIVE


def test_an_operator_abandons_a_stuck_failover(world: World) -> None:
    watcher = world.watcher()
    world.rounds(watcher, 2)
    world.cluster.dbs["db-1"].down = True
    world.cluster.dbs["db-2"].sql_error = (0, "")
    cluster = fo.Cluster.from_document(world.doc(), "hello")
    seen = watcher.servers.probe_all(["db-2", "db-3", "db-4"])
    journal = fo.failover_plan(cluster, fo.choose(cluster, seen, seen["db-2"].flavor, "1",
                                                  "0-1-10"), utc_stamp(), ["test"])
    watcher.state.save_journal(journal)
    with pytest.raises(WatcherError, match="no unfinished"):
        abandon(watcher.state, "other", "typo")
    assert abandon(watcher.state, "hello", "db-2 is gone for good") == journal.id
    [abandoned] = watcher.state.journals("hello")
    assert abandoned.status == fo.ABORTED and "db-2 is gone for good" in abandoned.error
    assert watcher.state.unfinished("hello") is None


def test_returning_old_master_is_kept_read_only_and_isolated(world: World) -> None:
    watcher = world.watcher()
    world.rounds(watcher, 2)
    world.cluster.dbs["db-1"].down = True
    world.rounds(watcher, 3)
    assert world.doc()["servers"]["db-1"]["state"] == "fenced"
    old = world.cluster.dbs["db-1"]
    old.down, old.read_only = False, False             # thawed, still writable in memory
    world.rounds(watcher, 1)
    assert old.read_only and old.down                  # read-only, and cut off again
    assert world.fencer.calls[-1] == ("isolate", "db-1")
    alert = world.state()["clusters"]["hello"]["alerts"][-1]
    assert alert["event"] == "fenced_server_returned" and "made read-only" in alert["detail"]
    assert world.doc()["products"]["hello"]["db"]["master"] == "db-2"


def test_locked_product_is_left_alone(world: World) -> None:
    watcher = world.watcher()
    world.cluster.dbs["db-1"].down = True
    with watcher.state.lock("hello") as mine:
        assert mine
        other = StateDir(str(world.tmp_path / "state"))
        with other.lock("hello", wait=0.1) as theirs:
            assert not theirs
        world.rounds(watcher, 5)         # a switchover holds the lock: hands off
    assert world.doc()["epoch"] == 3 and world.fencer.calls == []
    world.rounds(watcher, 3)
    assert world.doc()["products"]["hello"]["db"]["master"] == "db-2"


# --------------------------------------------------------------------------- switchover


def test_switchover_to_the_candidate(world: World) -> None:
    watcher = world.watcher()
    report = switchover(watcher, "hello", None)
    assert report["status"] == fo.DONE and report["new_master"] == "db-2"
    assert report["positions"] == {"master": "db-2", "candidate": "db-1",
                                   "slave_candidate": "db-3", "backup": "db-4"}
    assert isinstance(report["read_only_to_published_seconds"], float)
    assert [s["name"] for s in report["steps"]][:5] == ["freeze", "wait_caught_up", "detach",
                                                        "promote", "publish"]
    doc = world.doc()
    assert doc["products"]["hello"]["db"]["master"] == "db-2"
    assert doc["servers"]["db-1"]["state"] == "in_service"
    assert world.fencer.calls == []
    # and back, to the old master (now the candidate)
    assert switchover(watcher, "hello", "db-1")["new_master"] == "db-1"
    world.cluster.write("db-1", 1)
    for db in world.cluster.dbs.values():
        assert set(world.cluster.acked) <= set(db.applied)


@pytest.mark.parametrize(("setup", "message"), [
    (lambda c: setattr(c.dbs["db-1"], "down", True), "master 'db-1' does not answer"),
    (lambda c: setattr(c.dbs["db-2"], "io", "No"), "'db-2' does not replicate"),
    (lambda c: c.write("db-2", 1, local=True), "errant transactions 0-2-11"),
])
def test_switchover_checks_change_nothing(world: World, setup: Any, message: str) -> None:
    setup(world.cluster)
    with pytest.raises(WatcherError, match=message):
        switchover(world.watcher(), "hello", None)
    assert world.doc()["epoch"] == 3
    assert world.cluster.dbs["db-1"].down or not world.cluster.dbs["db-1"].read_only


def test_switchover_refuses_the_backup(world: World) -> None:
    with pytest.raises(WatcherError, match="'db-4' is backup"):
        switchover(world.watcher(), "hello", "db-4")


# --------------------------------------------------------------------------- monitoring


def test_nagios_check() -> None:
    now = stamp_epoch("2026-11-28T09:00:10.000Z")
    ok = {"updated_at": "2026-11-28T09:00:09.000Z", "clusters": {"hello": {
        "master": "db-1", "verdict": "alive", "failover_allowed": True}}}
    assert check(ok, 30, now) == (0, "OK: hello: master db-1 alive")
    assert check({**ok, "updated_at": "2026-11-28T08:00:00.000Z"}, 30, now)[0] == 2
    blocked = {**ok, "clusters": {"hello": {"master": "db-2", "verdict": "alive",
                                            "failover_allowed": False}}}
    assert check(blocked, 30, now)[0] == 1
    dead = {**ok, "clusters": {"hello": {"master": "db-2", "verdict": "dead"}}}
    assert check(dead, 30, now)[0] == 2
    assert check({}, 30, now)[0] == 3


def test_cli_ack_status_and_check(tmp_path: Any, capsys: Any) -> None:
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"bucket": BUCKET, "key": KEY, "mysql_user": "u",
                               "mysql_password": "p", "replication_user": "r",
                               "replication_password": "q",
                               "state_dir": str(tmp_path / "s")}))
    assert fw.main(["--config", str(cfg), "check-config"]) == 0
    assert fw.main(["--config", str(cfg), "ack", "--cluster", "hello"]) == 0
    assert os.path.exists(tmp_path / "s" / "acks" / "hello")
    # a product is looked up in the global config (unreadable here): a clear refusal
    assert fw.main(["--config", str(cfg), "ack", "--product", "hello"]) == 1
    assert fw.main(["--config", str(cfg), "status"]) == 0
    assert fw.main(["--config", str(cfg), "check"]) == 3
    assert "UNKNOWN" in capsys.readouterr().out
    cfg.write_text("{}")
    assert fw.main(["--config", str(cfg), "check-config"]) == 1
