"""host_programs/failover/ (watcher.py and the modules of its commands): the watcher's
rounds, its failovers, restarts, the anti-flap window, returning old masters and the
planned switchover, against a simulated cluster and the global config in moto's S3."""

from __future__ import annotations

import json
import os
from typing import Any

import boto3
import pytest
import yaml
from jinja2 import StrictUndefined
from jinja2.nativetypes import NativeEnvironment
from moto import mock_aws

from host_programs.failover import decide as fo
from host_programs.failover import watcher as fw
from host_programs.failover.check import check
from host_programs.failover.config import (
    _NUMBERS,
    WatcherConfig,
    WatcherError,
    parse_config,
    read_config,
)
from host_programs.failover.logs import stamp_epoch
from host_programs.failover.loop import Watcher
from host_programs.failover.state import StateDir
from host_programs.failover.steps import utc_stamp
from host_programs.failover.switchover import abandon, switchover
from module_utils.global_config import GlobalConfig
from tests.unit.fake_cluster import FakeCluster, FakeOperationalError, document, standard_cluster
from tests.unit.role_settings import ROOT, sandbox_settings

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
    for part in ("(top level): Additional properties are not allowed ('colour' was unexpected)",
                 "(top level): 'key' is a required property",
                 "rounds: must be a number from 1 to 1000, got 0",
                 "interval: must be a number from 0.05 to 3600, got 'fast'",
                 "clusters: must be a list of cluster names, got 'hello'",
                 "fence.method: must be one of none, docker or ec2, got 'magic'",
                 "aws_environment: Additional properties are not allowed ('HOME' was "
                 "unexpected)"):
        assert part in message
    assert message.startswith("cfg.json: ")
    assert config(tmp_path).health() == fo.HealthSettings(3, 1.5)


@pytest.mark.parametrize(("changes", "expected"), [
    ({"key": ""}, "key: must be an S3 object key, got ''"),
    ({"mysql_user": 3}, "mysql_user: must be a MariaDB user name, got 3"),
    ({"mysql_port": 0}, "mysql_port: must be a number from 1 to 65535, got 0"),
    ({"silence": True}, "silence: must be a number from 0.1 to 3600, got True"),
    ({"anti_flap_window": 10 ** 7 + 1},
     "anti_flap_window: must be a number from 0 to 10000000, got 10000001"),
    ({"clusters": ["hello", 3]}, "clusters[1]: must be a cluster name, got 3"),
    ({"clusters": None}, "clusters: must be a list of cluster names, got None"),
    ({"fence": None}, "fence: must be an object whose method is none, docker or ec2, got None"),
    ({"fence": {"method": None}}, "fence.method: must be one of none, docker or ec2, got None"),
    ({"fence": {"method": "ec2", "isolation_grup": "sg-1"}},
     "fence: Additional properties are not allowed ('isolation_grup' was unexpected)"),
    ({"aws_environment": []}, "aws_environment: must be a mapping of AWS_ACCESS_KEY_ID, "
                              "AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_DEFAULT_REGION "
                              "to strings, got []"),
    ({"region": 5}, "region: 5 is not of type 'string', 'null'"),
    ([], "(top level): [] is not of type 'object'"),
])
def test_each_bad_field_is_named_with_its_value(tmp_path: Any, changes: Any,
                                                expected: str) -> None:
    data = changes if isinstance(changes, list) else {
        "bucket": BUCKET, "key": KEY, "mysql_user": "u", "mysql_password": "p",
        "replication_user": "r", "replication_password": "q",
        "state_dir": str(tmp_path), **changes}
    with pytest.raises(WatcherError) as err:
        parse_config(data, "cfg.json")
    assert str(err.value) == f"cfg.json: {expected}"  # that one problem only


def test_config_errors_never_show_a_secret(tmp_path: Any) -> None:
    with pytest.raises(WatcherError) as err:
        config(tmp_path, mysql_password=123456789,
               aws_environment={"AWS_SECRET_ACCESS_KEY": 987654321})
    message = str(err.value)
    assert "mysql_password: must be a password, got a number (not shown)" in message
    assert "aws_environment.AWS_SECRET_ACCESS_KEY: must be a string, got a number" in message
    assert "123456789" not in message and "987654321" not in message


def test_config_numbers_may_be_null_and_take_the_default(tmp_path: Any) -> None:
    # As before, a null number passes the check; it now means the default (it used to
    # reach the watcher as None).
    loaded = config(tmp_path, rounds=None, interval=None, mysql_port=None)
    assert (loaded.rounds, loaded.interval, loaded.mysql_port) == (3, 0.5, 3306)
    assert config(tmp_path, rounds=2.0, clusters=["hello"]).rounds == 2
    assert config(tmp_path, clusters=["hello"]).clusters == ("hello",)


def test_the_numbers_the_role_checks_are_the_limits_the_schema_enforces(tmp_path: Any) -> None:
    # plugin_utils/role_checks/failover_watcher.py imports _NUMBERS: {field: (low, high)}
    # for every number of the file.
    assert set(_NUMBERS) == {name for name, f in WatcherConfig.__dataclass_fields__.items()
                             if f.type in ("int", "float")}
    assert _NUMBERS["rounds"] == (1, 1000) and _NUMBERS["connect_timeout"] == (0.05, 60)
    for name, (low, high) in _NUMBERS.items():
        assert config(tmp_path, **{name: low}) and config(tmp_path, **{name: high})
        for wrong in (low - 0.01, high + 1):
            with pytest.raises(WatcherError, match=f"{name}: must be a number from {low} to "
                                                   f"{high}, got {wrong}"):
                config(tmp_path, **{name: wrong})


def test_read_config_names_the_file(tmp_path: Any) -> None:
    path = tmp_path / "c.json"
    path.write_text("{not json")
    with pytest.raises(WatcherError, match=f"{path}: not JSON"):
        read_config(str(path))
    missing = tmp_path / "missing.json"
    with pytest.raises(WatcherError, match=f"{missing}: no such file"):
        read_config(str(missing))
    path.write_text(json.dumps({"bucket": "b"}))
    with pytest.raises(WatcherError, match=f"^{path}: .*'key' is a required property"):
        read_config(str(path))


def _render(value: Any, context: dict[str, Any]) -> Any:
    """A role variable's value as Ansible (native types, 2.19) renders it: every string
    leaf a template over `context`."""
    if isinstance(value, dict):
        return {k: _render(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [_render(v, context) for v in value]
    if not isinstance(value, str):
        return value
    return NativeEnvironment(undefined=StrictUndefined).from_string(value).render(context)


def test_the_file_the_role_writes_for_the_sandbox_passes(tmp_path: Any) -> None:
    """roles/failover_watcher/vars/main.yml's __failover_watcher_settings (what tasks/
    config.yml writes with to_nice_json, validated by check-config), rendered with the
    role's defaults and the sandbox inventory, as on the sandbox's monitor host."""
    context = sandbox_settings("failover_watcher", {
        # (role_path ~ '/../..') | realpath: role_path is Ansible's.
        "failover_watcher_credentials_dir": str(ROOT / "credentials" / "sandbox"),
    })
    role_vars = yaml.safe_load((ROOT / "roles/failover_watcher/vars/main.yml").read_text())
    context.update({
        "inventory_hostname": "hostkit-monitor",
        # ansible.builtin.password lookups: 32 letters and digits each.
        "__failover_watcher_mysql_password": "a" * 32,
        "__failover_watcher_replication_password": "b" * 32,
    })
    context["__failover_watcher_fence"] = _render(role_vars["__failover_watcher_fence"], context)
    rendered = _render(role_vars["__failover_watcher_settings"], context)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(rendered, indent=2) + "\n")  # to_nice_json
    loaded = read_config(str(path))
    assert loaded.fence == {"method": "docker", "socket": "/var/run/docker.sock"}
    assert loaded.endpoint_url == "http://aws:5000" and loaded.mysql_port == 3306
    assert loaded.aws_environment == {"AWS_ACCESS_KEY_ID": "sandbox",
                                      "AWS_SECRET_ACCESS_KEY": "sandbox",
                                      "AWS_DEFAULT_REGION": "us-east-1"}
    assert loaded.updated_by == "hostkit-failover@hostkit-monitor"
    assert fw.main(["--config", str(path), "check-config"]) == 0
    # Production's shape: no endpoint (null), ec2 fencing, no static credentials.
    context.update(failover_watcher_endpoint_url="", failover_watcher_aws_environment={},
                   failover_watcher_fence_method="ec2",
                   failover_watcher_ec2_isolation_group="sg-0123")
    context["__failover_watcher_fence"] = _render(role_vars["__failover_watcher_fence"], context)
    production = parse_config(_render(role_vars["__failover_watcher_settings"], context))
    assert production.endpoint_url is None and production.fence["method"] == "ec2"


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
