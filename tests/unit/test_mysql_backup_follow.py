"""The binary log stream follows the master of its database cluster in the global config
document (clusters.<cluster>.db.master; host_programs/backup/follow.py: document_master,
SourceFollower, follower_for; stream.py: run_stream), against moto in-process: a changed
master rewrites the binlog source file atomically and restarts the stream; an unchanged
document (304) does nothing; an invalid document, a lower epoch, a document without the cluster,
without a master or for another cluster, and S3 down keep the source; several products on
one cluster have one master; at start the file is put right before any connection. Also:
where a new series starts on the new master, and SHOW BINLOG EVENTS' GTID list."""

from __future__ import annotations

import json
import os
import re
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError

from host_programs.backup import core as mb
from host_programs.backup.config import Config, read_source
from host_programs.backup.follow import (
    SourceFollower,
    document_master,
    follower_for,
    source_state_path,
)
from host_programs.backup.s3 import S3Store
from host_programs.backup.stream import (
    current_series_path,
    gtid_list_from_events,
    prepare_stream,
    run_stream,
    shipped_binlogs,
)
from host_programs.common.atomic_files import write_json_atomic
from module_utils import global_config as gc
from tests.unit.gc_helpers import BUCKET, KEY, Recorder, moto_s3, sample, store

# The sample document: cluster hello (of product hello): master hostkit-db-1 (172.18.0.11),
# candidate hostkit-db-2 (172.18.0.12), slave candidate hostkit-db-3, backup hostkit-db-4
# (this server).
OLD = {"host": "172.18.0.11", "port": 3306, "name": "hostkit-db-1"}
NEW = {"host": "172.18.0.12", "port": 3306, "name": "hostkit-db-2"}

# mariadb-binlog stand-in for the stream: records its arguments, then runs until stopped.
FAKE_STREAM = """
import os, sys, time
with open(os.environ["FAKE_LOG"], "a") as f:
    f.write("BINLOG " + " ".join(sys.argv[1:]) + "\\n")
time.sleep(60)
"""


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """moto with the config bucket holding the sample document (epoch 12)."""
    with moto_s3(monkeypatch) as client:
        store(client).create("test", sample())
        yield client


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stream = bin_dir / "mariadb-binlog"
    stream.write_text(f"#!{sys.executable}\n" + textwrap.dedent(FAKE_STREAM))
    stream.chmod(0o755)
    monkeypatch.setenv("FAKE_LOG", str(tmp_path / "calls.log"))
    cfg = Config(cluster="hello", bucket="hostkit-test-backups", server="hostkit-db-4",
                 region="us-east-1", binlog_options_file="",
                 source_file=str(tmp_path / "etc" / "mysql-binlog-source.json"),
                 state_dir=str(tmp_path / "state"), binlog_dir=str(tmp_path / "binlogs"),
                 work_dir=str(tmp_path / "work"), env_file="",
                 commands={"mariadb_binlog": str(stream)},
                 global_config_bucket=BUCKET, global_config_key=KEY,
                 global_config_interval=0.2)
    write_json_atomic(cfg.source_file, OLD)
    return cfg


def source(cfg: Config) -> dict[str, Any]:
    return json.loads(Path(cfg.source_file).read_text())


def publish_master(client: Any, master: str, candidate: str | None,
                   cluster: str = "hello") -> int:
    """What the failover watcher publishes: the cluster's new master, epoch + 1."""
    result = store(client).update(
        lambda d: gc.set_cluster(d, cluster, db={"master": master, "candidate": candidate,
                                                 "slave_candidate": None}), "failover@test")
    return result.epoch


def put_raw(client: Any, doc: Any) -> None:
    """A document written without the library's checks (an old copy, a broken writer)."""
    body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    client.put_object(Bucket=BUCKET, Key=KEY, Body=body)


def moved(doc: dict[str, Any]) -> dict[str, Any]:
    """`doc` with cluster hello's master moved to hostkit-db-2 (the old one its candidate)."""
    doc, _ = gc.set_cluster(doc, "hello", db={"master": "hostkit-db-2",
                                              "candidate": "hostkit-db-1"})
    return doc


def shared(doc: dict[str, Any]) -> dict[str, Any]:
    """`doc` with products hello and notes on one cluster, main (the sample's servers)."""
    doc, _ = gc.rename_cluster(doc, "hello", "main")
    doc, _ = gc.set_product(doc, "notes", cluster="main")
    for server in ("hostkit-db-1", "hostkit-db-2", "hostkit-db-3", "hostkit-db-4"):
        doc, _ = gc.set_server(doc, server, products=["hello", "notes"])
    return gc.validate(doc)


def follower(cfg: Config, client: Any) -> SourceFollower:
    made = follower_for(cfg, client)
    assert made is not None
    return made


def lines(text: str, needle: str) -> list[str]:
    return [line for line in text.splitlines() if needle in line]


# ----------------------------------------------------------------------------- following

def test_a_new_master_in_the_document_rewrites_the_source(
        s3: Any, config: Config, capsys: pytest.CaptureFixture[str]) -> None:
    f = follower(config, s3)
    assert f.check() is False  # the document names the master the file names
    assert source(config) == OLD
    epoch = publish_master(s3, "hostkit-db-2", "hostkit-db-3")
    assert f.check() is True
    assert read_source(config.source_file) == ("172.18.0.12", 3306, "hostkit-db-2")
    assert source(config)["epoch"] == epoch == 13
    err = capsys.readouterr().err
    assert lines(err, "global config epoch 13 names master hostkit-db-2 (172.18.0.12:3306)"
                      ", the source file named hostkit-db-1 (172.18.0.11:3306)")
    state = json.loads(source_state_path(config).read_text())
    assert state["epoch"] == 13 and state["master"] == "hostkit-db-2"
    assert state["last_error"] is None
    assert f.check() is False  # settled: nothing more to do


def test_the_port_comes_from_the_configuration(s3: Any, config: Config) -> None:
    config.master_port = 3307
    assert follower(config, s3).check() is True
    assert read_source(config.source_file) == ("172.18.0.11", 3307, "hostkit-db-1")


def test_an_unchanged_document_is_a_304_and_changes_nothing(
        s3: Any, config: Config, capsys: pytest.CaptureFixture[str]) -> None:
    recorder = Recorder(s3)
    requests: list[dict[str, Any]] = []
    recorder.fail["get_object"] = lambda kwargs, _n: requests.append(kwargs)
    f = follower(config, recorder)
    assert f.check() is False
    before = os.stat(config.source_file)
    state_before = source_state_path(config).read_text()
    capsys.readouterr()
    for _ in range(3):
        assert f.check() is False
    assert [r.get("IfNoneMatch") for r in requests] == [None] + [f.reader.etag] * 3
    after = os.stat(config.source_file)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert source_state_path(config).read_text() == state_before
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(("bad", "message"), [
    (b"{not json", "is invalid: not JSON"),
    (sample(epoch=13, servers={}), "unknown server 'hostkit-db-1'"),
    (sample(epoch="13"), "epoch: '13' is not of type 'integer'"),
])
def test_an_invalid_document_keeps_the_source(
        s3: Any, config: Config, capsys: pytest.CaptureFixture[str], bad: Any,
        message: str) -> None:
    f = follower(config, s3)
    f.check()
    put_raw(s3, bad)
    for _ in range(3):
        assert f.check() is False
    assert source(config) == OLD
    err = capsys.readouterr().err
    problem = lines(err, "binlog source not checked against the global config")
    assert len(problem) == 1, err  # one line, not one per retry
    assert message in problem[0] and "keeping" in problem[0]
    state = json.loads(source_state_path(config).read_text())
    assert message in state["last_error"]["message"]
    # A good document afterwards is followed, and the recovery is said once.
    put_raw(s3, moved(sample(epoch=14)))
    assert f.check() is True and source(config)["name"] == "hostkit-db-2"
    assert len(lines(capsys.readouterr().err, "readable again")) == 1


def test_a_lower_epoch_keeps_the_source_also_after_a_restart(
        s3: Any, config: Config, capsys: pytest.CaptureFixture[str]) -> None:
    assert follower(config, s3).check() is False  # epoch 12 accepted and remembered
    put_raw(s3, moved(sample(epoch=11)))
    f = follower(config, s3)  # a restarted stream: the floor comes from the state file
    assert f.reader.guard.epoch == 12
    assert f.check() is False
    assert source(config) == OLD
    assert lines(capsys.readouterr().err, "has epoch 11, lower than epoch 12")


@pytest.mark.parametrize(("change", "message"), [
    ({"master": None}, "names no master for clusters.hello.db.master"),
    ({"backup": None}, "does not list this server 'hostkit-db-4'"),
])
def test_a_document_without_our_master_keeps_the_source(
        s3: Any, config: Config, capsys: pytest.CaptureFixture[str], change: dict,
        message: str) -> None:
    store(s3).update(lambda d: gc.set_cluster(d, "hello", db=change), "test")
    f = follower(config, s3)
    assert f.check() is False and f.check() is False
    assert source(config) == OLD
    assert len(lines(capsys.readouterr().err, message)) == 1


def test_document_master_is_the_clusters_master() -> None:
    doc = gc.validate(sample())
    assert document_master(doc, "hello", "hostkit-db-4") == ("hostkit-db-1", "172.18.0.11")
    # The cluster's positions count, whatever a product repeats of them.
    doc["products"]["hello"]["db"] = dict(doc["products"]["hello"]["db"], master="hostkit-db-3")
    assert document_master(doc, "hello", "hostkit-db-4")[0] == "hostkit-db-1"


def test_document_master_of_two_products_on_one_cluster() -> None:
    doc = shared(sample())
    assert gc.cluster_products(doc) == {"main": ["hello", "notes"]}
    assert document_master(doc, "main", "hostkit-db-4") == ("hostkit-db-1", "172.18.0.11")
    # One failover moves both products: still one master for the stream to follow.
    doc, _ = gc.set_cluster(doc, "main", db={"master": "hostkit-db-2",
                                             "candidate": "hostkit-db-1"})
    assert doc["products"]["notes"]["db"]["master"] == "hostkit-db-2"
    assert document_master(doc, "main", "hostkit-db-4") == ("hostkit-db-2", "172.18.0.12")


@pytest.mark.parametrize(("cluster", "server", "message"), [
    ("hello", "hostkit-db-4", "epoch 12 has no cluster 'hello' (no clusters.hello.db)"),
    ("other", "hostkit-db-4", "epoch 12 has no cluster 'other' (no clusters.other.db)"),
    ("main", "hostkit-db-9", "epoch 12: clusters.main.db does not list this server "
                             "'hostkit-db-9'"),
])
def test_document_master_names_what_is_missing(cluster: str, server: str, message: str) -> None:
    with pytest.raises(mb.BackupError, match=re.escape(message)):
        document_master(shared(sample()), cluster, server)


def test_a_cluster_of_several_products_is_followed(
        s3: Any, config: Config, capsys: pytest.CaptureFixture[str]) -> None:
    put_raw(s3, shared(sample(epoch=13)))
    config.cluster = "main"
    f = follower(config, s3)
    assert f.check() is False and source(config) == OLD
    epoch = publish_master(s3, "hostkit-db-2", "hostkit-db-3", cluster="main")
    assert f.check() is True and source(config) == {**NEW, "epoch": epoch,
                                                    "from": f"s3://{BUCKET}/{KEY}"}
    assert capsys.readouterr().err.count("rewrote") == 1


def test_a_document_without_our_cluster_keeps_the_source(
        s3: Any, config: Config, capsys: pytest.CaptureFixture[str]) -> None:
    """The cluster was renamed (or this server is configured for a cluster the document
    does not know): nothing is followed, one line names clusters.<cluster>.db."""
    put_raw(s3, shared(sample(epoch=13)))
    f = follower(config, s3)  # configured for cluster hello
    assert f.check() is False and f.check() is False
    assert source(config) == OLD
    assert len(lines(capsys.readouterr().err,
                     "epoch 13 has no cluster 'hello' (no clusters.hello.db)")) == 1
    state = json.loads(source_state_path(config).read_text())
    assert "has no cluster 'hello'" in state["last_error"]["message"]


def test_s3_down_keeps_the_source_and_retries(
        s3: Any, config: Config, capsys: pytest.CaptureFixture[str]) -> None:
    recorder = Recorder(s3)
    f = follower(config, recorder)
    assert f.check() is False
    publish_master(s3, "hostkit-db-2", "hostkit-db-3")

    def down(_kwargs: dict, _n: int) -> None:
        raise EndpointConnectionError(endpoint_url="http://aws:5000/hostkit-test-config")

    recorder.fail["get_object"] = down
    for _ in range(3):
        assert f.check() is False
    assert source(config) == OLD
    err = capsys.readouterr().err
    assert len(lines(err, "Could not connect to the endpoint URL")) == 1, err
    del recorder.fail["get_object"]  # S3 is back: the change is followed
    assert f.check() is True and source(config) == {**NEW, "epoch": 13,
                                                     "from": f"s3://{BUCKET}/{KEY}"}


def test_the_rewrite_is_atomic(s3: Any, config: Config,
                               monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    f = follower(config, s3)
    f.check()
    publish_master(s3, "hostkit-db-2", "hostkit-db-3")
    directory = Path(config.source_file).parent
    original = os.replace

    # The rename fails: the old file is whole, no temporary file is left, the stream goes on.
    def broken(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken)
    assert f.check() is False
    assert source(config) == OLD
    assert sorted(p.name for p in directory.iterdir()) == ["mysql-binlog-source.json"]
    assert lines(capsys.readouterr().err, "No space left on device")
    # The real rename: a new inode in one step; a reader never sees a part of the file.
    monkeypatch.setattr(os, "replace", original)
    inode = os.stat(config.source_file).st_ino
    assert f.check() is True  # the file named hostkit-db-1, the document hostkit-db-2
    assert os.stat(config.source_file).st_ino != inode  # (both exist until the rename)
    seen: list[str] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            seen.append(Path(config.source_file).read_text())

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for master, candidate in [("hostkit-db-3", "hostkit-db-2"),
                                  ("hostkit-db-2", "hostkit-db-3")] * 5:
            publish_master(s3, master, candidate)
            assert f.check() is True
    finally:
        stop.set()
        reader.join()
    assert seen and all(json.loads(text)["port"] == 3306 for text in seen)
    assert sorted(p.name for p in directory.iterdir()) == ["mysql-binlog-source.json"]


def test_no_bucket_no_follower(config: Config) -> None:
    config.global_config_bucket = ""
    assert follower_for(config) is None


# ----------------------------------------------------------------------------- run_stream

def test_the_source_is_put_right_before_connecting(s3: Any, config: Config) -> None:
    """At start the document already names the new master (the failover happened while the
    stream was down): the first connection goes to the new master, never to the old one."""
    publish_master(s3, "hostkit-db-2", "hostkit-db-3")
    asked: list[str] = []

    def facts(_cfg: Config, host: str, port: int) -> tuple[int, list[str]]:
        asked.append(host)
        raise mb.BackupError(f"cannot connect to master {host}:{port}")

    with pytest.raises(mb.BackupError, match="172.18.0.12:3306"):
        run_stream(config, None, poll=0.05, facts=facts, follower=follower(config, s3))
    assert asked == ["172.18.0.12"]
    assert source(config)["name"] == "hostkit-db-2"


def test_the_stream_follows_a_failover_while_streaming(
        s3: Any, config: Config, capsys: pytest.CaptureFixture[str]) -> None:
    def facts(_cfg: Config, host: str, _port: int) -> tuple[int, list[str]]:
        return {"172.18.0.11": 11, "172.18.0.12": 12}[host], ["b.000001"]

    def failover() -> None:
        time.sleep(0.6)
        publish_master(s3, "hostkit-db-2", "hostkit-db-3")

    thread = threading.Thread(target=failover)
    thread.start()
    began = time.monotonic()
    status = run_stream(config, None, poll=0.05, facts=facts,
                        follower=follower(config, s3), starts=lambda *_: None)
    thread.join()
    assert status == 0 and time.monotonic() - began < 20  # the fake stream runs 60 s
    assert source(config)["name"] == "hostkit-db-2"
    err = capsys.readouterr().err
    assert lines(err, "binlog source changed (was 172.18.0.11:3306): restarting the stream")
    calls = Path(os.environ["FAKE_LOG"]).read_text()
    assert "--host=172.18.0.11" in calls and "--host=172.18.0.12" not in calls
    # systemd starts the program again: towards the new master, a new series; the next
    # failover (to hostkit-db-3) ends that run too.
    def next_failover() -> None:
        deadline = time.monotonic() + 10
        while "--host=172.18.0.12" not in Path(os.environ["FAKE_LOG"]).read_text():
            if time.monotonic() > deadline:
                return
            time.sleep(0.05)
        publish_master(s3, "hostkit-db-3", "hostkit-db-2")

    thread = threading.Thread(target=next_failover)
    thread.start()
    status = run_stream(config, None, poll=0.05, facts=lambda *_: (12, ["b.000001"]),
                        follower=follower(config, s3), starts=lambda *_: None)
    thread.join()
    assert status == 0
    assert "--host=172.18.0.12" in Path(os.environ["FAKE_LOG"]).read_text()
    current = json.loads(current_series_path(config).read_text())
    assert current["series"] == "hostkit-db-2-sid12" and current["host"] == "172.18.0.12"
    assert source(config)["name"] == "hostkit-db-3"


# ----------------------------------------------------------------------------- new series

def test_a_new_series_starts_where_the_shipped_binlogs_end(
        s3: Any, config: Config) -> None:
    """After a failover the new master's series starts at its newest binary log that
    begins at or before what the old master's series reached, found from S3's metadata and
    this host's shipping state."""
    s3.create_bucket(Bucket=config.bucket)
    backups = S3Store(config.bucket, client=s3)
    key = mb.binlog_key("hello", "hostkit-db-1-sid11", "b.000009")
    s3.put_object(Bucket=config.bucket, Key=key, Body=b"x" * 10, Metadata={
        "gtid-start": "0-11-60", "gtid-end": "0-11-78", "first-ts": "1", "last-ts": "2",
        "series": "hostkit-db-1-sid11"})
    starts = {"c.000001": {}, "c.000002": {0: (11, 40)}, "c.000003": {0: (11, 75)},
              "c.000004": {0: (12, 95)}}
    asked: list[str] = []

    def start_of(_cfg: Config, host: str, _port: int, name: str) -> Any:
        assert host == "172.18.0.12"
        asked.append(name)
        return starts[name]

    def facts(_cfg: Config, _host: str, _port: int) -> tuple[int, list[str]]:
        return 12, sorted(starts)

    series, _directory, start, command = prepare_stream(
        config, backups, "172.18.0.12", 3306, facts, "hostkit-db-2", start_of)
    assert (series, start, command[-1]) == ("hostkit-db-2-sid12", "c.000003", "c.000003")
    assert asked == ["c.000004", "c.000003"]
    # This host shipped more than S3 shows yet (its state file): a later file qualifies.
    write_json_atomic(Path(config.state_dir, "binlog-state.json"), {"shipped": {
        "hostkit-db-1-sid11": {"b.000010": {"final": True, "offset": 9, "scan": {
            "gtid_end": "0-11-96"}}}}})
    shipped = shipped_binlogs(config, backups)
    assert shipped.position == {0: (11, 96)}
    assert shipped.series == {"hostkit-db-1-sid11"}
    Path(config.binlog_dir, "hostkit-db-2-sid12").rmdir()  # (nothing streamed into it)
    series, _, start, _ = prepare_stream(config, backups, "172.18.0.12", 3306, facts,
                                         "hostkit-db-2", start_of)
    assert (series, start) == ("hostkit-db-2-sid12", "c.000004")


def test_a_master_followed_again_gets_a_new_series(
        s3: Any, config: Config, capsys: pytest.CaptureFixture[str]) -> None:
    """db-1 -> db-2 -> db-1 again (a switchover back, or db-1 re-seeded with the same
    server_id and its binary logs numbered from 1 again): the stream never writes into the
    names db-1's first series shipped; a restart of the stream stays in its stint."""
    s3.create_bucket(Bucket=config.bucket)
    backups = S3Store(config.bucket, client=s3)
    s3.put_object(Bucket=config.bucket, Key=mb.binlog_key("hello", "hostkit-db-1-sid11",
                                                          "b.000001"), Body=b"x", Metadata={
        "gtid-start": "", "gtid-end": "0-11-78", "first-ts": "1", "last-ts": "2"})
    write_json_atomic(current_series_path(config), {"series": "hostkit-db-2-sid12"})

    def facts(_cfg: Config, _host: str, _port: int) -> tuple[int, list[str]]:
        return 11, ["b.000001", "b.000002"]

    starts = {"b.000001": {}, "b.000002": {0: (12, 120)}}
    series, directory, start, _ = prepare_stream(
        config, backups, "172.18.0.11", 3306, facts, "hostkit-db-1",
        lambda _c, _h, _p, name: starts[name])
    assert mb.is_series_of(series, "hostkit-db-1-sid11") and series != "hostkit-db-1-sid11"
    assert series.startswith("hostkit-db-1-sid11-20") and series.endswith("Z")
    assert start == "b.000001"  # 0-12-120 is beyond what was shipped (0-11-78)
    assert "the master is followed again" in capsys.readouterr().err
    # The stream restarts (same master): the same stint, from its newest local file.
    (directory / "b.000001").write_bytes(b"")
    (directory / "b.000002").write_bytes(b"")
    again, _, start, _ = prepare_stream(config, backups, "172.18.0.11", 3306, facts,
                                        "hostkit-db-1", lambda *_: None)
    assert (again, start) == (series, "b.000002")


def test_gtid_list_from_show_binlog_events() -> None:
    rows = [("b.000003", 4, "Format_desc", 11, 256, "Server ver: 10.11.6-MariaDB-log"),
            ("b.000003", 256, "Gtid_list", 11, 299, "[0-11-75,1-12-7]"),
            ("b.000003", 299, "Binlog_checkpoint", 11, 339, "b.000003")]
    assert gtid_list_from_events(rows) == {0: (11, 75), 1: (12, 7)}
    assert gtid_list_from_events([("b.000001", 256, "Gtid_list", 11, 285, "[]")]) == {}
    assert gtid_list_from_events(rows[:1]) is None
    assert gtid_list_from_events([("b", 256, "Gtid_list", 11, 285, "[junk]")]) is None
    # A re-seeded server's first file: an empty list, then GTIDs that began long before.
    reseeded = [("b.000001", 256, "Gtid_list", 12, 285, "[]"),
                ("b.000001", 285, "Binlog_checkpoint", 12, 325, "b.000001"),
                ("b.000001", 325, "Gtid", 12, 367, "BEGIN GTID 0-12-151"),
                ("b.000001", 367, "Query", 12, 450, "insert ...")]
    assert gtid_list_from_events(reseeded) == {0: (12, 150)}
    fresh = [("b.000001", 256, "Gtid_list", 1, 285, "[]"),
             ("b.000001", 325, "Gtid", 1, 367, "GTID 0-1-1")]
    assert gtid_list_from_events(fresh) == {}
