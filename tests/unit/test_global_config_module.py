"""library/global_config.py against moto: get, set/remove a server, a product's db roles,
check mode and diff without writing, and the module's entry point as Ansible runs it."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.module_utils.testing import patch_module_args

from module_utils import global_config as gc
from tests.unit.gc_helpers import BUCKET, KEY, SAMPLE, moto_s3, store

REPO_ROOT = Path(__file__).resolve().parents[2]


def load_module() -> Any:
    """library/global_config.py, importing its core as Ansible would ship it
    (ansible.module_utils.global_config)."""
    sys.modules.setdefault("ansible.module_utils.global_config", gc)
    spec = importlib.util.spec_from_file_location("hostkit_global_config_module",
                                                  REPO_ROOT / "library/global_config.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


mod = load_module()

NEW_WEB = {"id": "hostkit-web-c3d4", "role": "web", "products": ["hello"], "az": "us-east-1b",
           "address": "172.18.0.8", "state": "in_service"}


def params(**given: Any) -> dict[str, Any]:
    """Parameters as AnsibleModule fills them (defaults for what is not given)."""
    base = {"state": "get", "server": None, "servers": None, "product": None,
            "bucket": BUCKET, "key": KEY,
            "region": "us-east-1", "endpoint_url": None, "updated_by": "tester@ctl",
            "create": False, "max_attempts": 5}
    base.update(given)
    for name in ("server", "product"):
        if base[name] is not None:
            fields = mod.ARGUMENT_SPEC[name]["options"]
            base[name] = {k: base[name].get(k) for k in fields}
    if base["servers"] is not None:
        base["servers"] = [{k: s.get(k) for k in mod.SERVER_OPTIONS} for s in base["servers"]]
    return base


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch):
    with moto_s3(monkeypatch) as client:
        client.put_object(Bucket=BUCKET, Key=KEY, Body=gc.dumps(SAMPLE))
        yield client


def etag(client: Any) -> str:
    return client.head_object(Bucket=BUCKET, Key=KEY)["ETag"]


def test_get(s3) -> None:
    result = mod.run(params(), store(s3))
    assert result == {"changed": False, "document": SAMPLE, "epoch": 12, "etag": etag(s3)}


def test_set_a_server(s3) -> None:
    result = mod.run(params(state="present", server=NEW_WEB), store(s3))
    assert result["changed"] and result["epoch"] == 13 and result["attempts"] == 1
    stored, stored_etag = store(s3).read()
    assert stored == result["document"] and stored_etag == result["etag"]
    assert stored["products"]["hello"]["web"] == ["hostkit-web-a1b2", "hostkit-web-c3d4"]
    assert stored["updated_by"] == "tester@ctl"
    again = mod.run(params(state="present", server=NEW_WEB), store(s3))
    assert not again["changed"] and again["epoch"] == 13 and "diff" not in again


def test_several_servers_are_one_write(s3) -> None:
    second = {**NEW_WEB, "id": "hostkit-web-e5f6", "address": "172.30.17.9"}
    result = mod.run(params(state="present", servers=[NEW_WEB, second]), store(s3))
    assert result["changed"] and result["epoch"] == 13 and result["attempts"] == 1
    doc = store(s3).read()[0]
    assert {"hostkit-web-c3d4", "hostkit-web-e5f6"} <= set(doc["servers"])
    again = mod.run(params(state="present", servers=[NEW_WEB, second]), store(s3))
    assert not again["changed"] and again["epoch"] == 13
    gone = mod.run(params(state="absent", servers=[{"id": "hostkit-web-e5f6"}]), store(s3))
    assert gone["epoch"] == 14 and "hostkit-web-e5f6" not in store(s3).read()[0]["servers"]


def test_check_mode_and_diff_show_the_change_without_writing(s3) -> None:
    before = etag(s3)
    result = mod.run(params(state="present", server=NEW_WEB), store(s3), check_mode=True,
                     diff=True)
    assert result["changed"] and result["epoch"] == 13
    assert "hostkit-web-c3d4" in result["document"]["servers"]
    assert etag(s3) == before, "check mode wrote to S3"
    diff = result["diff"]
    assert json.loads(diff["before"]) == SAMPLE
    after = json.loads(diff["after"])
    assert after == result["document"]
    assert after["products"]["hello"]["web"] == ["hostkit-web-a1b2", "hostkit-web-c3d4"]


def test_diff_of_a_real_write(s3) -> None:
    result = mod.run(params(state="absent", server={"id": "hostkit-web-a1b2"}), store(s3),
                     diff=True)
    assert result["changed"] and result["epoch"] == 13
    assert "hostkit-web-a1b2" in json.loads(result["diff"]["before"])["servers"]
    assert "hostkit-web-a1b2" not in json.loads(result["diff"]["after"])["servers"]
    assert store(s3).read()[0]["products"]["hello"]["web"] == []


def test_failover_is_one_write(s3) -> None:
    result = mod.run(params(state="present", server={"id": "hostkit-db-1", "state": "fenced"},
                            product={"name": "hello", "db": {
                                "master": "hostkit-db-2", "candidate": "hostkit-db-3",
                                "slave_candidate": None}}), store(s3))
    assert result["epoch"] == 13
    doc = store(s3).read()[0]
    assert doc["products"]["hello"]["db"] == {"master": "hostkit-db-2",
                                              "candidate": "hostkit-db-3",
                                              "slave_candidate": None, "backup": "hostkit-db-4"}
    assert doc["servers"]["hostkit-db-1"]["state"] == "fenced"


def test_an_invalid_change_fails_naming_the_field_and_writes_nothing(s3) -> None:
    before = etag(s3)
    with pytest.raises(gc.DocumentInvalid, match=r"clusters\.hello\.db\.master: server "
                                                 r"'hostkit-web-a1b2' has role 'web'"):
        mod.run(params(state="present", product={"name": "hello",
                                                 "db": {"master": "hostkit-web-a1b2"}}),
                store(s3), check_mode=True)
    with pytest.raises(gc.DocumentInvalid):
        mod.run(params(state="present", product={"name": "hello",
                                                 "db": {"master": "hostkit-web-a1b2"}}),
                store(s3))
    assert etag(s3) == before


@pytest.mark.parametrize(("given", "message"), [
    ({"state": "present"}, "state=present needs a server, servers, a cluster or a product"),
    ({"state": "present", "product": {"name": "hello", "db": {"primary": "hostkit-db-2"}}},
     r"product 'hello': unknown db position\(s\) primary"),
    ({"state": "present", "product": {"name": "hello", "db": {"master": ["hostkit-db-2"]}}},
     "product 'hello': db.master must be a server id or null"),
])
def test_parameter_errors(s3, given: dict[str, Any], message: str) -> None:
    with pytest.raises(mod.ParameterError, match=message):
        mod.run(params(**given), store(s3))


def test_missing_document_and_create(s3) -> None:
    s3.delete_object(Bucket=BUCKET, Key=KEY)
    product = {"name": "hello"}
    with pytest.raises(gc.DocumentMissing):
        mod.run(params(state="present", product=product), store(s3))
    planned = mod.run(params(state="present", product=product, create=True), store(s3),
                      check_mode=True, diff=True)
    assert planned["changed"] and planned["epoch"] == 1 and planned["diff"]["before"] == ""
    result = mod.run(params(state="present", product=product, create=True), store(s3))
    assert result["epoch"] == 1 and store(s3).read()[0]["products"] == {
        "hello": gc.empty_product()}


# ------------------------------------------------------------------ as Ansible runs it


def run_main(args: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    with patch_module_args(args), pytest.raises(SystemExit):
        mod.main()
    return json.loads(capsys.readouterr().out)


def test_main_in_check_mode_with_diff(s3, capsys) -> None:
    before = etag(s3)
    out = run_main({"bucket": BUCKET, "state": "present", "server": NEW_WEB,
                    "_ansible_check_mode": True, "_ansible_diff": True}, capsys)
    assert out["changed"] is True and out["epoch"] == 13
    assert "hostkit-web-c3d4" in json.loads(out["diff"]["after"])["servers"]
    assert etag(s3) == before
    assert out["document"]["updated_by"].startswith("ansible@")


def test_main_writes(s3, capsys) -> None:
    out = run_main({"bucket": BUCKET, "state": "present",
                    "server": {"id": "hostkit-web-a1b2", "state": "draining"}}, capsys)
    assert out["changed"] is True and out["epoch"] == 13
    assert store(s3).read()[0]["servers"]["hostkit-web-a1b2"]["state"] == "draining"


def test_main_fails_with_the_message(s3, capsys) -> None:
    out = run_main({"bucket": "no-such-bucket-x"}, capsys)
    assert out["failed"] is True
    assert out["msg"].startswith("cannot read s3://no-such-bucket-x/global-config.json: "
                                 "bucket 'no-such-bucket-x' does not exist")
    out = run_main({"bucket": BUCKET, "state": "present"}, capsys)
    assert out["failed"] is True and "needs a server, servers, a cluster or a product" in out["msg"]


def test_bucket_and_endpoint_from_the_environment(s3, capsys, monkeypatch) -> None:
    seen: list[tuple[Any, Any]] = []
    real = mod.make_client

    def recording_client(region: str | None, endpoint: str | None) -> Any:
        seen.append((region, endpoint))
        monkeypatch.delenv("AWS_ENDPOINT_URL")  # boto3 would use it too: stay on moto
        return real(region)

    monkeypatch.setattr(mod, "make_client", recording_client)
    monkeypatch.setenv("HOSTKIT_GLOBAL_CONFIG_BUCKET", BUCKET)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:15000")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    out = run_main({}, capsys)
    assert out["epoch"] == 12
    assert seen == [("us-east-1", "http://127.0.0.1:15000")]


# ------------------------------------------------------------------ documentation


def test_choices_are_the_cores() -> None:
    server = mod.ARGUMENT_SPEC["server"]["options"]
    assert server["role"]["choices"] == list(gc.ROLES)
    assert server["state"]["choices"] == list(gc.STATES)


def test_examples_parse() -> None:
    examples = yaml.safe_load(mod.EXAMPLES)
    assert all("global_config" in task for task in examples)
    assert yaml.safe_load(mod.RETURN)["epoch"]["type"] == "int"



def test_get_with_create_starts_an_empty_document_once(s3) -> None:
    s3.delete_object(Bucket=BUCKET, Key=KEY)
    with pytest.raises(gc.DocumentMissing):
        mod.run(params(), store(s3))
    planned = mod.run(params(create=True), store(s3), check_mode=True)
    assert planned["changed"] and planned["epoch"] == 0 and planned["etag"] is None
    with pytest.raises(gc.DocumentMissing):
        store(s3).read()
    created = mod.run(params(create=True), store(s3))
    assert created["changed"] and created["document"]["servers"] == {}
    assert created["document"]["updated_by"] == "tester@ctl"
    again = mod.run(params(create=True), store(s3))
    assert not again["changed"] and again["etag"] == created["etag"]


def test_a_cluster_and_a_product_on_it_in_one_write(s3) -> None:
    # the cluster's servers serve the new product too, in the same write
    servers = [{"id": f"hostkit-db-{i}", "products": ["hello", "shop"]} for i in range(1, 5)]
    with pytest.raises(gc.DocumentInvalid, match="server 'hostkit-db-2' does not list product "
                                                 "'shop' in its products"):
        mod.run(params(state="present", product={"name": "shop", "cluster": "hello"}), store(s3))
    result = mod.run(params(state="present", servers=servers,
                            cluster={"name": "hello", "db": {"master": "hostkit-db-2",
                                                             "candidate": "hostkit-db-1"}},
                            product={"name": "shop", "cluster": "hello"}), store(s3))
    doc = result["document"]
    assert result["changed"] and result["attempts"] == 1
    assert doc["products"]["shop"]["db"] == doc["products"]["hello"]["db"] == {
        "master": "hostkit-db-2", "candidate": "hostkit-db-1",
        "slave_candidate": "hostkit-db-3", "backup": "hostkit-db-4"}


def test_a_cluster_in_use_is_not_removed(s3) -> None:
    with pytest.raises(gc.ChangeRejected, match="cluster 'hello' still serves hello"):
        mod.run(params(state="absent", cluster={"name": "hello"}), store(s3))


def test_a_bad_cluster_position_is_named(s3) -> None:
    with pytest.raises(mod.ParameterError, match=r"cluster 'hello': unknown db position\(s\) "
                                                 "leader"):
        mod.run(params(state="present", cluster={"name": "hello", "db": {"leader": "x"}}),
                store(s3))


def test_a_cluster_is_renamed_once(s3) -> None:
    task = params(state="present", cluster={"name": "main", "renamed_from": "hello"})
    result = mod.run(task, store(s3))
    assert result["changed"] and "hello" not in result["document"]["clusters"]
    assert result["document"]["products"]["hello"]["cluster"] == "main"
    again = mod.run(task, store(s3))
    assert not again["changed"] and again["epoch"] == result["epoch"]
