"""host_programs/config_agent/agent.py: the poll loop against moto in-process, with a fake reloader
and clock - changes, unchanged ETags, refused documents, S3 errors and backoff, atomic
writes, file ownership - and the agent's configuration file."""

from __future__ import annotations

import grp
import json
import logging
import os
import pwd
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError

from host_programs.config_agent import agent as ca
from host_programs.config_agent.runtime_settings import dumps, render
from module_utils import global_config as gc
from tests.unit.gc_helpers import BUCKET, KEY, Recorder, moto_s3, sample, sample_v1, store

HELLO = {"name": "hello", "database": {"name": "hello", "user": "hello"}, "memcached": True}
SHOP = {"name": "shop"}  # no database, no memcached


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with moto_s3(monkeypatch) as client:
        yield client


class Reloads(list):
    """The fake reloader: remembers each reason it was called with."""

    def __call__(self, reason: str) -> None:
        self.append(reason)


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        self.now += 1
        return self.now


def two_products(doc: dict[str, Any]) -> dict[str, Any]:
    """The sample document with a second product `shop` (no db master needed)."""
    doc["products"]["shop"] = gc.empty_product()
    return doc


def settings_dir(tmp_path: Path, name: str) -> Path:
    path = tmp_path / "srv" / name / "shared" / "config"
    path.mkdir(parents=True)
    return path


def make_agent(client: Any, tmp_path: Path, products: tuple[dict[str, Any], ...] = (HELLO,),
               **overrides: Any) -> tuple[ca.Agent, Reloads]:
    config = ca.parse_config({
        "bucket": BUCKET, "key": KEY, "interval": 2, "backoff_max": 30,
        "state_file": str(tmp_path / "state.json"),
        "products": [dict(p, path=str(settings_dir(tmp_path, p["name"]) / "runtime.json"))
                     for p in products],
        **overrides})
    reloads = Reloads()
    reader = gc.Reader(store(client), gc.EpochGuard(ca.previous_epoch(config.state_file)))
    agent = ca.Agent(config, reader, reloads, clock=Clock(), jitter=lambda low, high: high)
    return agent, reloads


def runtime(tmp_path: Path, name: str = "hello") -> Path:
    return tmp_path / "srv" / name / "shared" / "config" / "runtime.json"


def state(tmp_path: Path) -> dict[str, Any]:
    return json.loads((tmp_path / "state.json").read_text())


def swap_master(doc: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Failover: the candidate becomes the master and the old master the candidate."""
    db = doc["products"]["hello"]["db"]
    return gc.set_product(doc, "hello", db={"master": db["candidate"],
                                            "candidate": db["master"]})


def put_raw(client: Any, body: Any) -> None:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    client.put_object(Bucket=BUCKET, Key=KEY, Body=data)


# ------------------------------------------------------------------ changes


def test_first_poll_writes_the_settings_and_asks_for_one_reload(s3, tmp_path: Path) -> None:
    store(s3).create("test", sample())
    agent, reloads = make_agent(s3, tmp_path)
    assert agent.poll_once() == 2
    written = json.loads(runtime(tmp_path).read_text())
    assert written == {"db": {"host": "172.18.0.11", "port": 3306, "name": "hello",
                              "user": "hello"},
                       "memcached": ["172.18.0.21:11211"], "source": "global_config"}
    assert runtime(tmp_path).read_bytes() == dumps(render(sample(), HELLO))
    assert reloads == ["epoch 12: hello"]
    seen = state(tmp_path)
    assert seen["status"] == "ok" and seen["epoch"] == 12 and seen["last_error"] is None
    assert seen["products"]["hello"]["digest"].startswith("sha256:")
    assert seen["reload_requests"] == 1 and seen["last_success"] is not None


def test_a_new_master_rewrites_the_file_and_reloads_once(s3, tmp_path: Path) -> None:
    config = store(s3)
    config.create("test", sample())
    agent, reloads = make_agent(s3, tmp_path)
    agent.poll_once()
    before = state(tmp_path)["products"]["hello"]["digest"]
    config.update(swap_master, "failover")
    agent.poll_once()
    assert json.loads(runtime(tmp_path).read_text())["db"]["host"] == "172.18.0.12"
    assert reloads == ["epoch 12: hello", "epoch 13: hello"]
    after = state(tmp_path)
    assert after["epoch"] == 13 and after["products"]["hello"]["digest"] != before
    agent.poll_once()
    assert len(reloads) == 2


def test_the_same_etag_changes_nothing(s3, tmp_path: Path) -> None:
    store(s3).create("test", sample())
    recorder = Recorder(s3)
    agent, reloads = make_agent(recorder, tmp_path)
    agent.poll_once()
    inode = runtime(tmp_path).stat().st_ino
    seen = []
    recorder.fail["get_object"] = lambda kwargs, n: seen.append(kwargs.get("IfNoneMatch"))
    for _ in range(3):
        assert agent.poll_once() == 2
    assert seen == [agent.reader.etag] * 3  # conditional reads: nothing downloaded
    assert runtime(tmp_path).stat().st_ino == inode
    assert reloads == ["epoch 12: hello"]


def test_a_change_elsewhere_in_the_document_rewrites_nothing(s3, tmp_path: Path) -> None:
    config = store(s3)
    config.create("test", sample())
    agent, reloads = make_agent(s3, tmp_path)
    agent.poll_once()
    inode = runtime(tmp_path).stat().st_ino
    config.update(lambda d: gc.set_server(d, "hostkit-web-c3d4", role="web", products=["hello"],
                                          az="us-east-1b", address="172.18.0.8",
                                          state="in_service"), "launch_web")
    agent.poll_once()
    assert state(tmp_path)["epoch"] == 13
    assert runtime(tmp_path).stat().st_ino == inode and reloads == ["epoch 12: hello"]


def test_one_reload_for_several_products(s3, tmp_path: Path) -> None:
    store(s3).create("test", two_products(sample()))
    agent, reloads = make_agent(s3, tmp_path, (HELLO, SHOP))
    agent.poll_once()
    assert json.loads(runtime(tmp_path, "shop").read_text()) == {
        "db": None, "memcached": [], "source": "global_config"}
    assert reloads == ["epoch 12: hello, shop"]


def test_a_product_that_reads_its_settings_on_each_request_gets_no_reload(
        s3, tmp_path: Path) -> None:
    config = store(s3)
    config.create("test", two_products(sample()))
    agent, reloads = make_agent(s3, tmp_path, (dict(HELLO, reload=False), SHOP))
    agent.poll_once()
    assert reloads == ["epoch 12: shop"]  # first write of both: only shop asks for one
    config.update(swap_master, "failover")  # hello's settings change, shop's do not
    agent.poll_once()
    assert json.loads(runtime(tmp_path).read_text())["db"]["host"] == "172.18.0.12"
    assert reloads == ["epoch 12: shop"]
    assert state(tmp_path)["epoch"] == 13


def test_reload_must_be_a_boolean(tmp_path: Path) -> None:
    with pytest.raises(ca.AgentError, match="products\\[0\\].reload: must be true or false, "
                                             "got 'no'"):
        ca.parse_config({"bucket": BUCKET, "key": KEY, "products": [
            dict(HELLO, path=str(tmp_path / "runtime.json"), reload="no")]})


def test_a_file_changed_by_hand_is_put_back(s3, tmp_path: Path) -> None:
    store(s3).create("test", sample())
    agent, reloads = make_agent(s3, tmp_path)
    agent.poll_once()
    good = runtime(tmp_path).read_bytes()
    runtime(tmp_path).write_text('{"db": null}\n')
    agent.poll_once()
    assert runtime(tmp_path).read_bytes() == good and len(reloads) == 2


def test_the_same_content_with_a_wrong_mode_is_rewritten_without_a_reload(
        s3, tmp_path: Path) -> None:
    store(s3).create("test", sample())
    agent, reloads = make_agent(s3, tmp_path)
    agent.poll_once()
    runtime(tmp_path).chmod(0o666)
    agent.poll_once()
    assert stat.S_IMODE(runtime(tmp_path).stat().st_mode) == 0o640
    assert reloads == ["epoch 12: hello"]


# ------------------------------------------------------------------ refusals


@pytest.mark.parametrize(("body", "expected"), [
    (b'{"epoch": 13, "servers": ', "not JSON"),
    (sample(epoch="13"), "epoch: '13' is not of type 'integer'"),
    (sample_v1(epoch=13, products={"hello": {"db": {"master": "ghost", "candidate": None,
                                                 "slave_candidate": None, "backup": None},
                                          "memcached": [], "web": []}}),
     "products.hello.db.master: unknown server 'ghost'"),
])
def test_an_invalid_document_leaves_the_settings_and_shows_the_error(
        s3, tmp_path: Path, body: Any, expected: str) -> None:
    store(s3).create("test", sample())
    agent, reloads = make_agent(s3, tmp_path)
    agent.poll_once()
    good, inode = runtime(tmp_path).read_bytes(), runtime(tmp_path).stat().st_ino
    put_raw(s3, body)
    assert agent.poll_once() == 2  # the first failure waits one interval
    assert runtime(tmp_path).read_bytes() == good and runtime(tmp_path).stat().st_ino == inode
    seen = state(tmp_path)
    assert seen["status"] == "error" and seen["epoch"] == 12
    assert f"s3://{BUCKET}/{KEY} is invalid" in seen["last_error"]
    assert expected in seen["last_error"] and seen["consecutive_failures"] == 1
    assert reloads == ["epoch 12: hello"]
    put_raw(s3, sample(epoch=14))
    agent.poll_once()
    assert state(tmp_path)["status"] == "ok" and state(tmp_path)["epoch"] == 14
    assert state(tmp_path)["last_error"] is not None  # kept for the record


def test_a_lower_epoch_is_refused(s3, tmp_path: Path) -> None:
    store(s3).create("test", sample())
    agent, reloads = make_agent(s3, tmp_path)
    agent.poll_once()
    old, _ = swap_master(sample(epoch=11))
    put_raw(s3, old)
    agent.poll_once()
    assert json.loads(runtime(tmp_path).read_text())["db"]["host"] == "172.18.0.11"
    seen = state(tmp_path)
    assert seen["status"] == "error" and seen["epoch"] == 12
    assert "has epoch 11, lower than epoch 12 accepted before: refused" in seen["last_error"]
    assert len(reloads) == 1


def test_a_restarted_agent_remembers_the_epoch_it_accepted(s3, tmp_path: Path) -> None:
    store(s3).create("test", sample())
    (tmp_path / "state.json").write_text(json.dumps({"epoch": 20}))
    agent, reloads = make_agent(s3, tmp_path)
    agent.poll_once()
    assert not runtime(tmp_path).exists() and reloads == []
    assert "lower than epoch 20" in state(tmp_path)["last_error"]


def test_a_product_missing_from_the_document_is_an_error_the_others_still_follow(
        s3, tmp_path: Path) -> None:
    store(s3).create("test", sample())
    agent, reloads = make_agent(s3, tmp_path, (HELLO, SHOP))
    agent.poll_once()
    assert runtime(tmp_path).exists() and not runtime(tmp_path, "shop").exists()
    seen = state(tmp_path)
    assert seen["products"]["shop"]["error"].startswith(
        "product 'shop': product 'shop' is not in the global config")
    assert seen["products"]["hello"]["error"] is None and seen["status"] == "error"
    assert reloads == ["epoch 12: hello"]


def test_a_product_without_a_master_keeps_its_settings(s3, tmp_path: Path) -> None:
    config = store(s3)
    config.create("test", sample())
    agent, _ = make_agent(s3, tmp_path)
    agent.poll_once()
    good = runtime(tmp_path).read_bytes()
    config.update(lambda d: gc.set_product_db(d, "hello", master=None), "test")
    agent.poll_once()
    assert runtime(tmp_path).read_bytes() == good
    assert "product 'hello' has no db master in the global config (epoch 13)" in \
        state(tmp_path)["last_error"]


# ------------------------------------------------------------------ S3 errors and backoff


def test_s3_errors_back_off_exponentially_capped_and_reset(
        s3, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store(s3).create("test", sample())
    recorder = Recorder(s3)
    agent, reloads = make_agent(recorder, tmp_path)
    agent.poll_once()
    good = runtime(tmp_path).read_bytes()

    def unreachable(kwargs: dict[str, Any], n: int) -> None:
        raise EndpointConnectionError(endpoint_url="http://aws:5000/hostkit-test-config")

    recorder.fail["get_object"] = unreachable
    with caplog.at_level(logging.INFO, logger=ca.PROGRAM):
        delays = [agent.poll_once() for _ in range(7)]
        assert delays == [2, 4, 8, 16, 30, 30, 30]
        seen = state(tmp_path)
        assert seen["status"] == "error" and seen["consecutive_failures"] == 7
        assert "Could not connect to the endpoint URL" in seen["last_error"]
        assert seen["next_poll_in"] == 30
        assert runtime(tmp_path).read_bytes() == good
        del recorder.fail["get_object"]
        assert agent.poll_once() == 2
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # one line for the outage, not one per retry
    assert "keeping the last good settings (epoch 12)" in warnings[0].getMessage()
    assert any("recovered after 7 failed poll(s)" in r.getMessage() for r in caplog.records)
    assert state(tmp_path)["consecutive_failures"] == 0 and reloads == ["epoch 12: hello"]


def test_backoff_is_jittered_down_by_at_most_a_quarter(s3, tmp_path: Path) -> None:
    agent, _ = make_agent(s3, tmp_path)
    calls = []
    agent.jitter = lambda low, high: calls.append((low, high)) or low
    assert [agent.backoff(n) for n in (1, 3, 10, 100)] == [1.5, 6, 22.5, 22.5]
    assert calls[0] == (1.5, 2)


def test_starting_without_network_keeps_the_files_and_retries(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    config = ca.parse_config({
        "bucket": BUCKET, "key": KEY, "region": "us-east-1",
        # Port 9 on the loopback has no listener: connection refused at once.
        "endpoint_url": "http://127.0.0.1:9", "connect_timeout": 1,
        "state_file": str(tmp_path / "state.json"), "reload_request": None,
        "products": [dict(HELLO, path=str(settings_dir(tmp_path, "hello") / "runtime.json"))]})
    runtime(tmp_path).write_text("written by the product role\n")
    agent = ca.build(config)
    first, second = agent.poll_once(), agent.poll_once()
    assert 1.5 <= first <= 2 and 3 <= second <= 4  # backoff, jittered down by a quarter
    assert runtime(tmp_path).read_text() == "written by the product role\n"
    seen = state(tmp_path)
    assert seen["status"] == "error" and seen["epoch"] is None
    assert "Could not connect" in seen["last_error"]


def test_a_failed_reload_request_is_retried_at_the_next_poll(s3, tmp_path: Path) -> None:
    store(s3).create("test", sample())
    agent, _ = make_agent(s3, tmp_path)
    asked = []

    def broken(reason: str) -> None:
        asked.append(reason)
        if len(asked) == 1:
            raise PermissionError(13, "Permission denied")

    agent.reload = broken
    agent.poll_once()
    assert "cannot ask for the PHP-FPM reload (epoch 12: hello)" in state(tmp_path)["last_error"]
    agent.poll_once()
    assert asked == ["epoch 12: hello", "epoch 12: hello"]
    assert state(tmp_path)["status"] == "ok"


def test_the_request_file_reloader_rewrites_its_file(tmp_path: Path) -> None:
    request = tmp_path / "reload.request"
    ca.RequestFileReloader(str(request))("epoch 3: hello")
    first = request.read_text()
    assert first.endswith("Z epoch 3: hello\n")
    ca.RequestFileReloader(str(request))("epoch 4: hello")
    assert request.read_text().endswith("epoch 4: hello\n")


# ------------------------------------------------------------------ files


def test_atomic_writes_leave_no_temporary_files(s3, tmp_path: Path) -> None:
    config = store(s3)
    config.create("test", sample())
    agent, _ = make_agent(s3, tmp_path)
    for _ in range(4):
        agent.poll_once()
        config.update(swap_master, "failover")
    assert sorted(p.name for p in runtime(tmp_path).parent.iterdir()) == ["runtime.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["srv", "state.json"]


def test_a_failed_write_keeps_the_old_file_and_removes_the_temporary_one(
        s3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = store(s3)
    config.create("test", sample())
    agent, reloads = make_agent(s3, tmp_path)
    agent.poll_once()
    good = runtime(tmp_path).read_bytes()
    config.update(swap_master, "failover")

    def full_disk(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ca.os, "fsync", full_disk)
    agent.poll_once()
    monkeypatch.undo()
    assert runtime(tmp_path).read_bytes() == good
    assert [p.name for p in runtime(tmp_path).parent.iterdir()] == ["runtime.json"]
    assert "product 'hello': cannot write" in state(tmp_path)["last_error"]
    assert "No space left on device" in state(tmp_path)["last_error"]
    assert len(reloads) == 1


def test_write_atomic_sets_the_mode_before_the_file_appears(tmp_path: Path) -> None:
    target = tmp_path / "runtime.json"
    seen = []
    real_replace = os.replace

    def spy(src: str, dst: str) -> None:
        seen.append(stat.S_IMODE(os.stat(src).st_mode))
        real_replace(src, dst)

    original = ca.os.replace
    ca.os.replace = spy
    try:
        ca.write_atomic(str(target), b"{}\n", ca.FileMeta(0o640))
    finally:
        ca.os.replace = original
    assert seen == [0o640] and target.read_bytes() == b"{}\n"


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's owner needs root")
def test_owner_group_and_mode_are_applied_as_root(s3, tmp_path: Path) -> None:
    store(s3).create("test", sample())
    group = grp.getgrgid(pwd.getpwnam("nobody").pw_gid).gr_name
    agent, _ = make_agent(s3, tmp_path, (dict(HELLO, owner="nobody", group=group,
                                              mode="0640"),))
    agent.poll_once()
    st = runtime(tmp_path).stat()
    assert (st.st_uid, st.st_gid) == (pwd.getpwnam("nobody").pw_uid, grp.getgrnam(group).gr_gid)
    assert stat.S_IMODE(st.st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "state.json").stat().st_mode) == 0o644


def test_an_unknown_group_is_an_error_naming_the_product(s3, tmp_path: Path) -> None:
    store(s3).create("test", sample())
    agent, _ = make_agent(s3, tmp_path, (dict(HELLO, group="no-such-group-hk"),))
    agent.poll_once()
    assert not runtime(tmp_path).exists()
    assert ("product 'hello': group 'no-such-group-hk' does not exist on this host"
            in state(tmp_path)["last_error"])


# ------------------------------------------------------------------ configuration


def valid_config(**changes: Any) -> dict[str, Any]:
    config = {"bucket": "b", "key": "k", "products": [{"name": "hello",
                                                       "path": "/srv/www/hello/runtime.json"}]}
    config.update(changes)
    return config


@pytest.mark.parametrize(("changes", "expected"), [
    ({"bucket": ""}, "bucket: must be an S3 bucket name, got ''"),
    ({"interval": 0}, "interval: must be a number >= 0.1 (seconds), got 0"),
    ({"products": {}}, "products: {} is not of type 'array'"),
    ({"colour": 1}, "('colour' was unexpected)"),
    ({"products": [{"name": "hello", "path": "runtime.json"}]},
     "products[0].path: must be an absolute path, got 'runtime.json'"),
    ({"products": [{"name": "hello", "path": "/a", "mode": 640}]},
     "products[0].mode: must be an octal file mode in a string"),
    ({"products": [{"name": "hello", "path": "/a", "mode": "0240"}]},
     "products[0].mode: must be an octal file mode in a string, such as '0640', that lets "
     "the owner read, got '0240'"),
    ({"products": [{"name": "hello", "path": "/a", "memcached": "yes"}]},
     "products[0].memcached: must be true or false, got 'yes'"),
    ({"products": [{"name": "hello", "path": "/a", "db_port": 0}]},
     "products[0].db_port: must be a port number 1-65535, got 0"),
    ({"products": [{"name": "hello", "path": "/a", "database": "hello"}]},
     "products[0].database: must be null or a mapping of name and user, got 'hello'"),
    ({"products": [{"name": "hello", "path": "/a"}, {"name": "hello", "path": "/b"}]},
     "products: name hello appears twice"),
    ({"products": [{"path": "/a"}]}, "products[0]: 'name' is a required property"),
    ({"state_file": "state.json"}, "state_file: must be an absolute path, got 'state.json'"),
])
def test_configuration_errors_name_the_field(changes: dict[str, Any], expected: str) -> None:
    with pytest.raises(ca.AgentError, match=None) as info:
        ca.parse_config(valid_config(**changes), "/etc/hostkit-config-agent/config.json")
    assert expected in str(info.value)


def test_every_problem_of_a_configuration_is_named_at_once() -> None:
    with pytest.raises(ca.AgentError) as info:
        ca.parse_config(valid_config(interval=0, key="", colour=1), "config.json")
    message = str(info.value)
    assert message.startswith("config.json: ")
    for expected in ("interval: must be", "key: must be", "'colour' was unexpected"):
        assert expected in message


def test_configuration_defaults() -> None:
    config = ca.parse_config(valid_config(interval=5, backoff_max=1))
    assert config.interval == 5 and config.backoff_max == 5  # the cap is never below
    assert config.state_file == ca.AgentConfig.state_file and config.read_timeout == 5.0
    assert config.products[0].mode == 0o640 and config.products[0].database is None
    assert config.reload_request is None and config.source == "s3://b/k"


def test_main_checks_a_configuration_file(tmp_path: Path, capsys) -> None:
    good = tmp_path / "config.json"
    good.write_text(json.dumps(valid_config()))
    assert ca.main(["--config", str(good), "--check-config"]) == 0
    assert "ok (1 product(s), s3://b/k)" in capsys.readouterr().out
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    assert ca.main(["--config", str(bad), "--check-config"]) == 1


def test_main_once_polls_and_reports_the_outcome(s3, tmp_path: Path) -> None:
    store(s3).create("test", sample())
    path = settings_dir(tmp_path, "hello") / "runtime.json"
    config = tmp_path / "config.json"
    config.write_text(json.dumps({
        "bucket": BUCKET, "key": KEY, "region": "us-east-1",
        "state_file": str(tmp_path / "state.json"),
        "reload_request": str(tmp_path / "reload.request"),
        "products": [dict(HELLO, path=str(path))]}))
    assert ca.main(["--config", str(config), "--once"]) == 0
    assert json.loads(path.read_text())["db"]["host"] == "172.18.0.11"
    assert "epoch 12: hello" in (tmp_path / "reload.request").read_text()
    put_raw(s3, b"{")
    path.unlink()
    assert ca.main(["--config", str(config), "--once"]) == 1
    assert not path.exists()
