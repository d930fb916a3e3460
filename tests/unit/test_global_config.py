"""module_utils/global_config.py: schema and cross-reference checks, the pure changes, and
the S3 store (conditional writes, races, epochs, errors) against moto in-process."""

from __future__ import annotations

import copy
import functools
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from module_utils import global_config as gc
from tests.unit.gc_helpers import (
    BUCKET,
    KEY,
    SAMPLE,
    Recorder,
    client_error,
    moto_s3,
    sample,
    store,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch):
    with moto_s3(monkeypatch) as client:
        yield client


def put_raw(client: Any, body: Any) -> str:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.put_object(Bucket=BUCKET, Key=KEY, Body=data)["ETag"]


def only(problems: list[str]) -> str:
    assert len(problems) == 1, problems
    return problems[0]


# ------------------------------------------------------------------ schema


def test_schema_file_is_the_embedded_schema_and_valid_2020_12() -> None:
    on_disk = json.loads((REPO_ROOT / "schemas/global_config.schema.json").read_text())
    assert on_disk == gc.SCHEMA, (
        "schemas/global_config.schema.json and SCHEMA in module_utils/global_config.py differ: "
        "change both")
    import jsonschema
    jsonschema.Draft7Validator.check_schema(on_disk)


def test_the_sample_document_is_valid() -> None:
    assert gc.problems(SAMPLE) == []
    assert gc.validate(sample()) == SAMPLE


def test_a_role_typo_names_the_path_and_the_choices() -> None:
    doc = sample()
    doc["servers"]["hostkit-web-a1b2"]["role"] = "wbe"
    assert only(gc.problems(doc)) == (
        "servers.hostkit-web-a1b2.role: 'wbe' is not one of "
        "['web', 'db', 'memcached', 'monitor']")
    with pytest.raises(gc.DocumentInvalid, match=r"^s3://b/k is invalid: servers\.hostkit-web"):
        gc.validate(doc, "s3://b/k")


@pytest.mark.parametrize(("mutate", "expected"), [
    (lambda d: d.update(epoch=-1), "epoch: -1 is less than the minimum of 0"),
    (lambda d: d.update(epoch="12"), "epoch: '12' is not of type 'integer'"),
    # the pattern, and the date-time format too where rfc3339-validator is installed
    (lambda d: d.update(updated_at="yesterday"), "updated_at: 'yesterday' "),
    (lambda d: d.pop("updated_by"), "document: 'updated_by' is a required property"),
    (lambda d: d.update(extra=1), "document: Additional properties are not allowed ('extra'"),
    (lambda d: d["servers"]["hostkit-db-1"].update(address="10.0.0"),
     "servers.hostkit-db-1.address: '10.0.0' is not valid: expected private IPv4 or IPv6"),
    (lambda d: d["servers"]["hostkit-db-1"].update(state="up"),
     "servers.hostkit-db-1.state: 'up' is not one of"),
    (lambda d: d["servers"]["hostkit-db-1"].pop("az"),
     "servers.hostkit-db-1: 'az' is a required property"),
    (lambda d: d["products"]["hello"]["db"].pop("backup"),
     "products.hello.db: 'backup' is a required property"),
    (lambda d: d["products"]["hello"]["db"].update(primary="hostkit-db-1"),
     "products.hello.db: Additional properties are not allowed ('primary'"),
    (lambda d: d["products"]["hello"].update(web=["hostkit-web-a1b2", "hostkit-web-a1b2"]),
     "products.hello.web: ['hostkit-web-a1b2', 'hostkit-web-a1b2'] has non-unique elements"),
    (lambda d: d["products"].update({"Bad-Name": d["products"]["hello"]}),
     "products: 'Bad-Name' does not match"),
])
def test_schema_errors_name_the_field(mutate, expected: str) -> None:
    doc = sample()
    mutate(doc)
    found = gc.schema_problems(doc)
    assert found and all(p.startswith(expected) for p in found), found


def test_not_json_is_invalid() -> None:
    with pytest.raises(gc.DocumentInvalid, match=r"^s3://x/y is invalid: not JSON"):
        gc.parse(b"{epoch: 1", "s3://x/y")


# ------------------------------------------------------------------ cross-references


def positions(doc: dict[str, Any], **held: str | None) -> None:
    """Set positions of cluster hello and of its product alike (in place)."""
    doc["clusters"]["hello"]["db"].update(held)
    doc["products"]["hello"]["db"].update(held)


@pytest.mark.parametrize(("mutate", "expected"), [
    (lambda d: positions(d, master="hostkit-db-9"),
     "clusters.hello.db.master: unknown server 'hostkit-db-9' (not in servers)"),
    (lambda d: positions(d, backup="hostkit-web-a1b2"),
     "clusters.hello.db.backup: server 'hostkit-web-a1b2' has role 'web', expected 'db'"),
    (lambda d: d["servers"]["hostkit-db-2"].update(products=[]),
     "clusters.hello.db.candidate: server 'hostkit-db-2' does not list product 'hello' "
     "in its products"),
    (lambda d: positions(d, backup="hostkit-db-1"),
     "clusters.hello.db: server 'hostkit-db-1' holds several positions (master, backup)"),
    (lambda d: d["servers"]["hostkit-db-1"].update(state="fenced"),
     "clusters.hello.db.master: server 'hostkit-db-1' is fenced and cannot be the master"),
    (lambda d: d["products"]["hello"]["db"].update(master="hostkit-db-2"),
     "products.hello.db: differs from clusters.hello.db (the positions of a product are those "
     "of its cluster)"),
    (lambda d: d["products"]["hello"].update(cluster="main"),
     "products.hello.cluster: unknown cluster 'main' (not in clusters)"),
    (lambda d: d["clusters"].update(other={"db": {**gc.empty_positions(),
                                                  "backup": "hostkit-db-1"}}),
     "servers.hostkit-db-1: holds positions in several clusters (hello, other); a server "
     "belongs to one cluster"),
    (lambda d: d["products"]["hello"].update(memcached=["hostkit-db-1"]),
     "products.hello.memcached[0]: server 'hostkit-db-1' has role 'db', expected 'memcached'"),
    (lambda d: d["products"]["hello"].update(web=["hostkit-web-a1b2", "ghost"]),
     "products.hello.web[1]: unknown server 'ghost' (not in servers)"),
    (lambda d: d["servers"]["hostkit-web-a1b2"].update(products=["hello", "shop"]),
     "servers.hostkit-web-a1b2.products: unknown product 'shop' (not in products)"),
])
def test_semantic_problems_name_the_reference(mutate, expected: str) -> None:
    doc = sample()
    mutate(doc)
    assert gc.schema_problems(doc) == []
    assert only(gc.semantic_problems(doc)) == expected
    with pytest.raises(gc.DocumentInvalid, match="is invalid"):
        gc.validate(doc)


def test_empty_positions_and_lists_are_fine() -> None:
    doc = sample()
    doc["products"]["hello"] = gc.empty_product()
    assert gc.problems(doc) == []


def test_semantic_checks_wait_for_a_valid_schema() -> None:
    doc = sample()
    doc["servers"]["hostkit-db-1"]["role"] = "database"  # also breaks the references
    assert only(gc.problems(doc)).startswith("servers.hostkit-db-1.role:")


# ------------------------------------------------------------------ changes


WEB2 = {"role": "web", "products": ["hello"], "az": "us-east-1b", "address": "172.18.0.8"}


def test_a_new_server_starts_provisioning_outside_the_web_list() -> None:
    before = sample()
    doc, changed = gc.set_server(before, "hostkit-web-c3d4", **WEB2)
    assert changed
    assert doc["servers"]["hostkit-web-c3d4"] == {**WEB2, "state": "provisioning"}
    assert doc["products"]["hello"]["web"] == ["hostkit-web-a1b2"]
    assert before == SAMPLE, "the input document was modified"
    assert gc.problems(doc) == []


def test_in_service_joins_the_end_of_the_list_and_draining_leaves_it() -> None:
    doc, _ = gc.set_server(sample(), "hostkit-web-c3d4", **WEB2, state="in_service")
    assert doc["products"]["hello"]["web"] == ["hostkit-web-a1b2", "hostkit-web-c3d4"]
    doc, changed = gc.set_server(doc, "hostkit-web-a1b2", state="draining")
    assert changed
    assert doc["products"]["hello"]["web"] == ["hostkit-web-c3d4"]
    assert doc["servers"]["hostkit-web-a1b2"]["state"] == "draining"


def test_a_memcached_server_joins_the_memcached_list() -> None:
    doc, _ = gc.set_server(sample(), "hostkit-mc-2", role="memcached", products=["hello"],
                           az="us-east-1b", address="172.18.0.22", state="in_service")
    assert doc["products"]["hello"]["memcached"] == ["hostkit-mc-1", "hostkit-mc-2"]
    assert doc["products"]["hello"]["web"] == ["hostkit-web-a1b2"]


def test_dropping_a_product_leaves_its_list() -> None:
    doc, _ = gc.set_product(sample(), "shop")
    doc, _ = gc.set_server(doc, "hostkit-web-a1b2", products=["shop"])
    assert doc["products"]["hello"]["web"] == []
    assert doc["products"]["shop"]["web"] == ["hostkit-web-a1b2"]
    assert gc.problems(doc) == []


def test_setting_the_same_values_is_no_change() -> None:
    doc, changed = gc.set_server(sample(), "hostkit-web-a1b2", role="web", state="in_service",
                                 products=["hello"])
    assert not changed
    assert doc == SAMPLE


def test_a_new_server_needs_role_az_and_address() -> None:
    with pytest.raises(gc.ChangeRejected, match=r"server 'x' is new: az, address are required"):
        gc.set_server(sample(), "x", role="web")


def test_remove_server_clears_every_reference() -> None:
    doc, changed = gc.remove_server(sample(), "hostkit-db-1")
    assert changed
    assert "hostkit-db-1" not in doc["servers"]
    assert doc["products"]["hello"]["db"]["master"] is None
    assert doc["products"]["hello"]["db"]["candidate"] == "hostkit-db-2"
    doc, _ = gc.remove_server(doc, "hostkit-web-a1b2")
    assert doc["products"]["hello"]["web"] == []
    assert gc.problems(doc) == []
    assert gc.remove_server(doc, "nobody") == (doc, False)


def test_set_product_creates_and_sets_only_the_named_positions() -> None:
    doc, changed = gc.set_product(sample(), "shop")
    assert changed and doc["products"]["shop"] == gc.empty_product()
    doc, changed = gc.set_product_db(doc, "hello", master="hostkit-db-2", candidate="hostkit-db-1")
    assert changed
    assert doc["products"]["hello"]["db"] == {
        "master": "hostkit-db-2", "candidate": "hostkit-db-1",
        "slave_candidate": "hostkit-db-3", "backup": "hostkit-db-4"}
    doc, _ = gc.set_product(doc, "hello", db={"backup": None}, memcached=[])
    assert doc["products"]["hello"]["db"]["backup"] is None
    assert doc["products"]["hello"]["memcached"] == []
    assert gc.problems(doc) == []


def test_set_product_rejects_an_unknown_position() -> None:
    with pytest.raises(gc.ChangeRejected, match=r"cluster 'hello': unknown db position\(s\) "
                                                r"primary"):
        gc.set_product(sample(), "hello", db={"primary": "hostkit-db-1"})


def test_remove_product_drops_it_from_the_servers() -> None:
    doc, changed = gc.remove_product(sample(), "hello")
    assert changed and doc["products"] == {}
    assert all(s["products"] == [] for s in doc["servers"].values())
    assert gc.problems(doc) == []


def test_chain_is_one_change() -> None:
    # A failover: the old master is fenced and the candidate promoted in one write.
    failover = gc.chain(
        functools.partial(gc.set_product_db, name="hello", master="hostkit-db-2",
                          candidate="hostkit-db-3", slave_candidate=None),
        functools.partial(gc.set_server, server_id="hostkit-db-1", state="fenced"),
    )
    doc, changed = gc.apply_change(sample(), failover, "failover@monitor",
                                   now="2026-11-28T10:00:00Z")
    assert changed
    assert doc["epoch"] == 13
    assert doc["updated_by"] == "failover@monitor"
    assert doc["updated_at"] == "2026-11-28T10:00:00Z"
    assert doc["products"]["hello"]["db"]["master"] == "hostkit-db-2"


def test_apply_change_refuses_an_invalid_result() -> None:
    fence_master = functools.partial(gc.set_server, server_id="hostkit-db-1", state="fenced")
    with pytest.raises(gc.DocumentInvalid, match=r"after the change is invalid: .*fenced"):
        gc.apply_change(sample(), fence_master, "me")


def test_apply_change_of_nothing_keeps_the_epoch() -> None:
    doc, changed = gc.apply_change(sample(), lambda d: (d, False), "me")
    assert (doc, changed) == (SAMPLE, False)


# ------------------------------------------------------------------ store


def test_read_returns_the_document_and_its_etag(s3) -> None:
    etag = put_raw(s3, SAMPLE)
    assert store(s3).read() == (SAMPLE, etag)


def test_read_if_changed_uses_if_none_match(s3) -> None:
    etag = put_raw(s3, SAMPLE)
    recorder = Recorder(s3)
    config = store(recorder)
    assert config.read_if_changed(etag) is None
    newer = put_raw(s3, sample(epoch=13))
    assert config.read_if_changed(etag) == (sample(epoch=13), newer)
    assert config.read_if_changed(None) == (sample(epoch=13), newer)
    assert recorder.calls == {"get_object": 3}


def test_update_writes_epoch_plus_one_encrypted_json(s3) -> None:
    etag = put_raw(s3, SAMPLE)
    config = store(s3)
    result = config.update(functools.partial(gc.set_server, server_id="hostkit-web-c3d4", **WEB2),
                           "tester@here")
    assert result.changed and result.attempts == 1
    assert result.epoch == 13 and result.before == SAMPLE
    assert result.etag != etag
    stored, stored_etag = config.read()
    assert stored == result.doc and stored_etag == result.etag
    assert stored["updated_by"] == "tester@here"
    head = s3.head_object(Bucket=BUCKET, Key=KEY)
    assert head["ServerSideEncryption"] == "AES256"
    assert head["ContentType"] == "application/json"
    body = s3.get_object(Bucket=BUCKET, Key=KEY)["Body"].read()
    assert body == gc.dumps(stored)


def test_update_without_change_writes_nothing(s3) -> None:
    etag = put_raw(s3, SAMPLE)
    recorder = Recorder(s3)
    result = store(recorder).update(lambda d: gc.set_server(d, "hostkit-web-a1b2",
                                                            state="in_service"), "me")
    assert (result.changed, result.epoch, result.etag, result.attempts) == (False, 12, etag, 0)
    assert "put_object" not in recorder.calls


def test_an_invalid_change_writes_nothing(s3) -> None:
    etag = put_raw(s3, SAMPLE)
    with pytest.raises(gc.DocumentInvalid, match=r"clusters\.hello\.db\.master: unknown server"):
        store(s3).update(lambda d: gc.set_product_db(d, "hello", master="hostkit-db-9"), "me")
    assert s3.head_object(Bucket=BUCKET, Key=KEY)["ETag"] == etag


def test_first_write_uses_if_none_match(s3) -> None:
    recorder = Recorder(s3)
    config = store(recorder)
    with pytest.raises(gc.DocumentMissing, match=rf"s3://{BUCKET}/{KEY}: the document does not"):
        config.update(lambda d: gc.set_product(d, "hello"), "me")
    seen: list[dict[str, Any]] = []
    recorder.fail["put_object"] = lambda kwargs, n: seen.append(kwargs)
    result = config.update(lambda d: gc.set_product(d, "hello"), "me", create=True)
    assert result.changed and result.epoch == 1 and result.before is None
    assert seen[0]["IfNoneMatch"] == "*" and "IfMatch" not in seen[0]
    config.update(lambda d: gc.set_product(d, "shop"), "me")
    assert seen[1]["IfMatch"] == result.etag and "IfNoneMatch" not in seen[1]


def test_create_writes_once(s3) -> None:
    config = store(s3)
    doc, _ = config.create("me")
    assert doc["epoch"] == 0 and doc["servers"] == {} and doc["products"] == {}
    with pytest.raises(gc.DocumentExists, match="already exists: not overwritten"):
        config.create("someone else")
    assert config.read()[0] == doc


def test_two_first_writers_both_land(s3) -> None:
    """Both find no document; If-None-Match: * lets one create it, the other re-reads and
    applies its change on top."""
    barrier = threading.Barrier(2, timeout=10)

    def add(name: str) -> gc.Change:
        def change(doc: dict[str, Any]) -> tuple[dict[str, Any], bool]:
            if doc["epoch"] == 0:  # both threads saw no document: write together
                barrier.wait()
            return gc.set_product(doc, name)
        return change

    results: dict[str, gc.UpdateResult] = {}
    threads = [threading.Thread(target=lambda n=n: results.update(
        {n: store(s3).update(add(n), n, create=True)})) for n in ("hello", "shop")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    doc, _ = store(s3).read()
    assert set(doc["products"]) == {"hello", "shop"}
    assert doc["epoch"] == 2
    assert sorted(r.attempts for r in results.values()) == [1, 2]


def test_two_writers_racing_lose_nothing(s3) -> None:
    """Two writers apply their own change many times each, from threads, on one document.
    Their first writes are forced to collide; after that the threads interleave freely.
    Every change ends up in the document, every write has its own epoch, one more than
    the version before it, and the retries really happened."""
    rounds = 25
    put_raw(s3, sample(epoch=0, servers={}, clusters={}, products={"hello": gc.empty_product()}))
    start = threading.Barrier(2, timeout=10)
    first = {"a": True, "b": True}
    results: dict[str, list[gc.UpdateResult]] = {"a": [], "b": []}
    errors: list[BaseException] = []

    def change_for(writer: str, i: int) -> gc.Change:
        def change(doc: dict[str, Any]) -> tuple[dict[str, Any], bool]:
            if first[writer]:
                first[writer] = False
                start.wait()  # both have read the same version: one write must lose
            if writer == "a":
                return gc.set_server(doc, f"hostkit-web-{i}", role="web", products=["hello"],
                                     az="us-east-1a", address=f"10.0.1.{i + 1}",
                                     state="in_service")
            return gc.set_product(doc, f"p{i}")
        return change

    def writer(name: str) -> None:
        config = store(s3)
        try:
            for i in range(rounds):
                results[name].append(config.update(change_for(name, i), f"writer-{name}",
                                                   max_attempts=50))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []

    doc, _ = store(s3).read()
    assert set(doc["servers"]) == {f"hostkit-web-{i}" for i in range(rounds)}
    assert doc["products"]["hello"]["web"] == [f"hostkit-web-{i}" for i in range(rounds)]
    assert set(doc["products"]) == {"hello"} | {f"p{i}" for i in range(rounds)}

    epochs = {n: [r.epoch for r in rs] for n, rs in results.items()}
    for name, mine in epochs.items():
        assert mine == sorted(set(mine)), f"writer {name}: epochs not strictly increasing"
    assert sorted(epochs["a"] + epochs["b"]) == list(range(1, 2 * rounds + 1))
    assert doc["epoch"] == 2 * rounds
    retries = sum(r.attempts - 1 for rs in results.values() for r in rs)
    assert retries >= 1, "the writers never collided: the race was not exercised"

    # The bucket keeps every version: each one is the previous epoch plus one.
    versions = s3.list_object_versions(Bucket=BUCKET, Prefix=KEY)["Versions"]
    stored = sorted(
        json.loads(s3.get_object(Bucket=BUCKET, Key=KEY, VersionId=v["VersionId"])["Body"]
                   .read())["epoch"] for v in versions)
    assert stored == list(range(0, 2 * rounds + 1))


def test_retries_are_bounded_and_back_off(s3) -> None:
    put_raw(s3, SAMPLE)
    config_other = store(s3)
    waits: list[float] = []
    config = store(s3, sleep=waits.append, jitter=lambda low, high: high)
    counter = iter(range(1000))

    def always_beaten(doc: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        # Another writer gets in between our read and our write, every time.
        n = next(counter)
        config_other.update(lambda d: gc.set_product(d, f"other{n}"), "other")
        return gc.set_product(doc, "mine")

    with pytest.raises(gc.RetriesExhausted, match=r"gave up after 4 conditional writes"):
        config.update(always_beaten, "me", max_attempts=4)
    assert waits == [0.05, 0.1, 0.2]
    doc, _ = config.read()
    assert "mine" not in doc["products"] and doc["epoch"] == 16


def test_backoff_is_jittered_and_capped() -> None:
    config = gc.GlobalConfig(None, "b", "k", jitter=lambda low, high: (low, high))
    assert config.backoff(1) == (0.0, 0.05)
    assert config.backoff(3) == (0.0, 0.2)
    assert config.backoff(10) == (0.0, 1.0)


def test_a_409_conflict_is_retried(s3) -> None:
    put_raw(s3, SAMPLE)
    recorder = Recorder(s3)

    def conflict_once(kwargs: dict[str, Any], n: int) -> None:
        if n == 1:
            raise client_error("ConditionalRequestConflict", 409, "PutObject")

    recorder.fail["put_object"] = conflict_once
    result = store(recorder).update(lambda d: gc.set_product(d, "shop"), "me")
    assert result.changed and result.attempts == 2 and result.epoch == 13


def test_a_document_deleted_during_the_update_is_reported_missing(s3) -> None:
    put_raw(s3, SAMPLE)
    config = store(s3)

    def delete_then_change(doc: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        s3.delete_object(Bucket=BUCKET, Key=KEY)
        return gc.set_product(doc, "shop")

    with pytest.raises(gc.DocumentMissing):
        config.update(delete_then_change, "me")


# ------------------------------------------------------------------ errors


def test_missing_bucket(s3) -> None:
    config = gc.GlobalConfig(s3, "no-such-bucket-here", KEY)
    with pytest.raises(gc.BucketMissing, match=r"cannot read s3://no-such-bucket-here/"
                                               r"global-config\.json: bucket "
                                               r"'no-such-bucket-here' does not exist"):
        config.read()
    with pytest.raises(gc.BucketMissing, match="cannot write"):
        config.create("me")


@pytest.mark.parametrize("code", ["AccessDenied", "InvalidAccessKeyId"])
def test_access_denied(s3, code: str) -> None:
    recorder = Recorder(s3)

    def deny(kwargs: dict[str, Any], n: int) -> None:
        raise client_error(code, 403)

    recorder.fail["get_object"] = deny
    with pytest.raises(gc.AccessDenied, match=rf"cannot read s3://{BUCKET}/{KEY}: access "
                                              rf"denied \({code}: "):
        store(recorder).read()


def test_an_invalid_stored_document_names_the_object_and_the_field(s3) -> None:
    bad = sample()
    positions(bad, master="ghost")
    put_raw(s3, bad)
    with pytest.raises(gc.DocumentInvalid, match=rf"s3://{BUCKET}/{KEY} is invalid: "
                                                 r"clusters\.hello\.db\.master: unknown server "
                                                 r"'ghost'") as info:
        store(s3).read()
    assert info.value.problems == ["clusters.hello.db.master: unknown server 'ghost' "
                                   "(not in servers)"]


def test_an_unreachable_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    # Port 9 on the loopback (discard) has no listener here: connection refused at once.
    client = gc.make_client("us-east-1", "http://127.0.0.1:9", max_attempts=1,
                            connect_timeout=1)
    with pytest.raises(gc.S3Unavailable, match=r"cannot read s3://b-b-b/k: Could not connect"):
        gc.GlobalConfig(client, "b-b-b", "k").read()


def test_make_client_retries_in_standard_mode_and_uses_path_style() -> None:
    client = gc.make_client("us-east-1", "http://127.0.0.1:15000")
    assert client.meta.config.retries["mode"] == "standard"
    assert client.meta.config.s3["addressing_style"] == "path"
    assert client.meta.endpoint_url == "http://127.0.0.1:15000"


# ------------------------------------------------------------------ readers


def test_epoch_guard_refuses_a_lower_epoch() -> None:
    guard = gc.EpochGuard()
    guard.accept(sample(epoch=12))
    guard.accept(sample(epoch=12))
    guard.accept(sample(epoch=14))
    with pytest.raises(gc.StaleEpoch, match=r"s3://b/k has epoch 13, lower than epoch 14 "
                                            r"accepted before: refused"):
        guard.accept(sample(epoch=13), "s3://b/k")
    assert guard.epoch == 14


def test_epoch_guard_refuses_an_invalid_document() -> None:
    guard = gc.EpochGuard(10)
    bad = sample(epoch=20)
    bad["servers"]["hostkit-web-a1b2"]["role"] = "wbe"
    with pytest.raises(gc.DocumentInvalid):
        guard.accept(bad)
    assert guard.epoch == 10


def test_reader_keeps_the_last_good_document(s3) -> None:
    put_raw(s3, SAMPLE)
    reader = gc.Reader(store(s3))
    assert reader.poll() == SAMPLE
    assert reader.poll() is None  # unchanged: 304

    put_raw(s3, sample(epoch=11))  # an older copy put back by hand
    with pytest.raises(gc.StaleEpoch, match="epoch 11, lower than epoch 12"):
        reader.poll()
    assert reader.doc == SAMPLE

    broken = sample(epoch=13)
    broken["servers"]["hostkit-db-1"]["state"] = "sleeping"
    put_raw(s3, broken)
    with pytest.raises(gc.DocumentInvalid, match=r"servers\.hostkit-db-1\.state"):
        reader.poll()
    assert reader.doc == SAMPLE and reader.guard.epoch == 12

    put_raw(s3, sample(epoch=13))
    assert reader.poll() == sample(epoch=13)
    assert reader.doc["epoch"] == 13


# ------------------------------------------------------------------ resolve


def test_resolve_dotted_paths() -> None:
    doc = sample()
    doc["servers"]["web01.rack1.example.net"] = copy.deepcopy(doc["servers"]["hostkit-web-a1b2"])
    assert gc.resolve(doc, "products.hello.db.master") == "hostkit-db-1"
    assert gc.resolve(doc, "products.hello.web.0") == "hostkit-web-a1b2"
    assert gc.resolve(doc, "servers.web01.rack1.example.net.address") == "172.18.0.7"
    assert gc.resolve(doc, "epoch") == 12
    assert gc.resolve(doc, "products.hello.db") == SAMPLE["products"]["hello"]["db"]


@pytest.mark.parametrize(("path", "message"), [
    ("products.shop.db.master", "'products.shop.db.master': 'shop' not found in products"),
    ("products.hello.web.3", "'products.hello.web.3': '3' not found in products.hello.web"),
    ("nothing", "'nothing': 'nothing' not found in the document"),
    ("products..hello", "'products..hello' is not a dotted path"),
])
def test_resolve_names_the_missing_part(path: str, message: str) -> None:
    with pytest.raises(KeyError) as info:
        gc.resolve(sample(), path)
    assert info.value.args[0] == message


# ------------------------------------------------------------------ clusters


def two_products() -> dict[str, Any]:
    """hello and shop on one cluster 'main', every db server serving both."""
    doc = sample()
    doc, _ = gc.rename_cluster(doc, "hello", "main")
    doc, _ = gc.set_product(doc, "shop", cluster="main")
    for i in range(1, 5):
        doc, _ = gc.set_server(doc, f"hostkit-db-{i}", products=["hello", "shop"])
    assert gc.problems(doc) == []
    return doc


def test_one_write_moves_every_product_of_a_cluster() -> None:
    doc, changed = gc.set_cluster(two_products(), "main", db={
        "master": "hostkit-db-2", "candidate": "hostkit-db-3", "slave_candidate": None})
    assert changed and gc.problems(doc) == []
    for product in ("hello", "shop"):
        assert doc["products"][product]["db"] == {
            "master": "hostkit-db-2", "candidate": "hostkit-db-3", "slave_candidate": None,
            "backup": "hostkit-db-4"}
    assert gc.cluster_products(doc) == {"main": ["hello", "shop"]}


def test_positions_set_through_one_product_move_its_siblings() -> None:
    doc, _ = gc.set_product_db(two_products(), "shop", master="hostkit-db-2",
                               candidate="hostkit-db-1")
    assert doc["products"]["hello"]["db"]["master"] == "hostkit-db-2"
    assert doc["clusters"]["main"]["db"]["candidate"] == "hostkit-db-1"
    assert gc.problems(doc) == []


def test_a_product_joins_a_cluster_and_takes_its_positions() -> None:
    doc, _ = gc.set_product(sample(), "shop", cluster="hello")
    assert doc["products"]["shop"]["db"] == doc["clusters"]["hello"]["db"]
    doc, _ = gc.set_product(sample(), "blog", cluster="blog")
    assert doc["clusters"]["blog"] == {"db": gc.empty_positions()}


def test_a_product_with_data_is_not_moved_to_another_cluster() -> None:
    with pytest.raises(gc.ChangeRejected, match="product 'hello' is on cluster 'hello', which "
                                                "has servers: moving its database to cluster "
                                                "'main' is not automated"):
        gc.set_product(sample(), "hello", cluster="main")


def test_rename_and_remove_cluster() -> None:
    doc, _ = gc.rename_cluster(sample(), "hello", "main")
    assert doc["products"]["hello"]["cluster"] == "main" and "hello" not in doc["clusters"]
    with pytest.raises(gc.ChangeRejected, match="still serves hello"):
        gc.remove_cluster(doc, "main")
    with pytest.raises(gc.ChangeRejected, match="that name is taken"):
        gc.rename_cluster(gc.set_cluster(doc, "other")[0], "main", "other")
    doc, _ = gc.remove_product(doc, "hello")
    doc, changed = gc.remove_cluster(doc, "main")
    assert changed and doc["clusters"] == {}


def test_removing_a_server_empties_its_position_in_every_product() -> None:
    doc, _ = gc.remove_server(two_products(), "hostkit-db-3")
    assert doc["clusters"]["main"]["db"]["slave_candidate"] is None
    assert doc["products"]["shop"]["db"]["slave_candidate"] is None
    assert gc.problems(doc) == []


def test_cluster_of_a_server_with_or_without_a_position() -> None:
    doc = two_products()
    assert gc.cluster_of_server(doc, "hostkit-db-1") == "main"
    doc, _ = gc.set_cluster(doc, "main", db={"master": "hostkit-db-2", "candidate": None})
    doc, _ = gc.set_server(doc, "hostkit-db-1", state="fenced")
    assert gc.cluster_of_server(doc, "hostkit-db-1") == "main"  # through its products
    assert gc.cluster_of_server(doc, "hostkit-web-a1b2") is None


# ------------------------------------------------------------------ version 1 documents


def test_a_version_1_document_is_valid_and_read_upgraded(s3) -> None:
    from tests.unit.gc_helpers import SAMPLE_V1
    assert gc.problems(copy.deepcopy(SAMPLE_V1)) == []
    assert gc.upgrade(SAMPLE_V1) == SAMPLE
    put_raw(s3, SAMPLE_V1)
    config = store(s3)
    doc, _ = config.read()
    assert doc == SAMPLE and config.stored_version == 1


def test_the_next_write_stores_version_2_with_the_next_epoch(s3) -> None:
    from tests.unit.gc_helpers import SAMPLE_V1
    put_raw(s3, SAMPLE_V1)
    # even a change that changes nothing stores the upgrade: the epoch continues
    result = store(s3).update(lambda d: (d, False), "site.yml")
    assert result.changed and result.epoch == SAMPLE["epoch"] + 1
    stored = json.loads(s3.get_object(Bucket=BUCKET, Key=KEY)["Body"].read())
    assert stored["clusters"] == SAMPLE["clusters"] and stored["epoch"] == 13
    assert store(s3).update(lambda d: (d, False), "site.yml").changed is False


def test_upgrade_groups_products_that_share_positions() -> None:
    from tests.unit.gc_helpers import SAMPLE_V1
    v1 = copy.deepcopy(SAMPLE_V1)
    v1["products"]["shop"] = dict(copy.deepcopy(v1["products"]["hello"]), memcached=[], web=[])
    v1["products"]["solo"] = {"db": gc.empty_positions(), "memcached": [], "web": []}
    for server in v1["servers"].values():
        server["products"] = ["hello", "shop"] if server["role"] == "db" else server["products"]
    doc = gc.upgrade(v1)
    assert doc["clusters"] == {"hello": SAMPLE["clusters"]["hello"]}
    assert [doc["products"][p]["cluster"] for p in ("hello", "shop", "solo")] == [
        "hello", "hello", None]
    assert gc.problems(doc) == []


def test_upgrade_refuses_products_with_overlapping_positions() -> None:
    from tests.unit.gc_helpers import SAMPLE_V1
    v1 = copy.deepcopy(SAMPLE_V1)
    v1["products"]["shop"] = copy.deepcopy(v1["products"]["hello"])
    v1["products"]["shop"]["db"]["master"] = "hostkit-db-2"
    v1["products"]["shop"]["db"]["candidate"] = "hostkit-db-1"
    with pytest.raises(gc.DocumentInvalid, match="products.shop.db shares servers with "
                                                 "cluster 'hello' in other positions"):
        gc.upgrade(v1)
