"""lookup_plugins/global_config.py, loaded and called the way Ansible does, against moto:
values by dotted path, on_missing modes, one S3 read per run (also across forks), and the
errors for a missing bucket, denied access and an invalid document."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path
from typing import Any

import pytest
from ansible.errors import AnsibleLookupError
from ansible.plugins.loader import lookup_loader

from module_utils import global_config as gc
from tests.unit.gc_helpers import BUCKET, KEY, SAMPLE, Recorder, client_error, moto_s3, sample

REPO_ROOT = Path(__file__).resolve().parents[2]
OPTIONS = {"bucket": BUCKET, "region": "us-east-1"}


@pytest.fixture
def plugin_module(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """The plugin's Python module with an empty cache of its own, and its S3 clients
    recorded (plugin_module.clients)."""
    lookup_loader.add_directory(str(REPO_ROOT / "lookup_plugins"))
    plugin = lookup_loader.get("global_config")
    assert plugin is not None, "lookup_plugins/global_config.py was not found"
    module = __import__(type(plugin).__module__, fromlist=["LookupModule"])
    monkeypatch.setattr(module, "_cache_dir", lambda: tmp_path / "run-tmp")
    monkeypatch.setattr(module, "_MEMORY", {})
    clients: list[Recorder] = []

    def recorded_client(region: str | None, endpoint: str | None, **kwargs: Any) -> Recorder:
        clients.append(Recorder(gc.make_client(region, endpoint, **kwargs)))
        clients[-1].made_with = kwargs
        return clients[-1]

    monkeypatch.setattr(module, "make_client", recorded_client)
    module.clients = clients
    return module


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch):
    with moto_s3(monkeypatch) as client:
        client.put_object(Bucket=BUCKET, Key=KEY, Body=gc.dumps(SAMPLE))
        yield client


def lookup():
    """A new plugin instance, as each task gets."""
    return lookup_loader.get("global_config")


def reads(module: Any) -> int:
    return sum(c.calls.get("get_object", 0) for c in module.clients)


def test_values_by_dotted_path(plugin_module, s3) -> None:
    assert lookup().run(["products.hello.db.master"], {}, **OPTIONS) == ["hostkit-db-1"]
    assert lookup().run(["products.hello.memcached", "servers.hostkit-db-2.address",
                         "products.hello.web.0", "epoch"], {}, **OPTIONS) == [
        ["hostkit-mc-1"], "172.18.0.12", "hostkit-web-a1b2", 12]
    assert lookup().run([""], {}, **OPTIONS) == [SAMPLE]


def test_options_from_variables_and_environment(plugin_module, s3, monkeypatch) -> None:
    variables = {"hostkit_global_config_bucket": BUCKET, "hostkit_region": "us-east-1"}
    assert lookup().run(["epoch"], variables) == [12]
    monkeypatch.setenv("HOSTKIT_GLOBAL_CONFIG_BUCKET", BUCKET)
    monkeypatch.setenv("HOSTKIT_GLOBAL_CONFIG_KEY", KEY)
    assert lookup().run(["epoch"], {}) == [12]


def test_credentials_from_hostkit_aws_environment(plugin_module, s3, monkeypatch) -> None:
    """A lookup does not see a play's `environment:`; it takes the same mapping."""
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    variables = {"hostkit_global_config_bucket": BUCKET, "hostkit_region": "us-east-1",
                 "hostkit_aws_environment": {"AWS_ACCESS_KEY_ID": "sandbox",
                                             "AWS_SECRET_ACCESS_KEY": "sandbox",
                                             "AWS_DEFAULT_REGION": "us-east-1"}}
    assert lookup().run(["epoch"], variables, cache=False) == [12]
    assert plugin_module.clients[-1].made_with["credentials"]["AWS_ACCESS_KEY_ID"] == "sandbox"
    client = gc.make_client("us-east-1", credentials=variables["hostkit_aws_environment"])
    assert client._request_signer._credentials.access_key == "sandbox"


def test_no_bucket_is_an_error(plugin_module, s3) -> None:
    with pytest.raises(AnsibleLookupError, match="bucket"):
        lookup().run(["epoch"], {})


def test_on_missing_error_names_the_path(plugin_module, s3) -> None:
    with pytest.raises(AnsibleLookupError, match=(
            rf"^global_config: s3://{BUCKET}/{KEY} \(epoch 12\): 'products\.shop\.db\.master': "
            r"'shop' not found in products$")):
        lookup().run(["products.hello.db.master", "products.shop.db.master"], {}, **OPTIONS)


def test_on_missing_warn_and_skip(plugin_module, s3, monkeypatch) -> None:
    warnings: list[str] = []
    monkeypatch.setattr(plugin_module.display, "warning", warnings.append)
    terms = ["products.shop.web", "products.hello.db.backup"]
    assert lookup().run(terms, {}, on_missing="skip", **OPTIONS) == ["hostkit-db-4"]
    assert warnings == []
    assert lookup().run(terms, {}, on_missing="warn", **OPTIONS) == ["hostkit-db-4"]
    assert len(warnings) == 1 and "'products.shop.web': 'shop' not found" in warnings[0]


def test_on_missing_applies_to_a_missing_document(plugin_module, s3, monkeypatch) -> None:
    s3.delete_object(Bucket=BUCKET, Key=KEY)
    with pytest.raises(AnsibleLookupError, match="the document does not exist"):
        lookup().run(["epoch"], {}, **OPTIONS)
    assert lookup().run(["epoch"], {}, on_missing="skip", **OPTIONS) == []


def test_one_read_per_run(plugin_module, s3) -> None:
    for _ in range(5):
        lookup().run(["products.hello.db.master"], {}, **OPTIONS)
    lookup().run(["servers", "epoch"], {}, **OPTIONS)
    assert reads(plugin_module) == 1

    # A fork of the same run starts with an empty memory but finds the run's file.
    plugin_module._MEMORY.clear()
    assert lookup().run(["epoch"], {}, **OPTIONS) == [12]
    assert reads(plugin_module) == 1

    # Another document (key) is another read.
    s3.put_object(Bucket=BUCKET, Key="other.json", Body=gc.dumps(sample(epoch=3)))
    assert lookup().run(["epoch"], {}, key="other.json", **OPTIONS) == [3]
    assert reads(plugin_module) == 2


def test_cache_false_reads_again_and_refreshes_the_run_copy(plugin_module, s3) -> None:
    assert lookup().run(["epoch"], {}, **OPTIONS) == [12]
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=gc.dumps(sample(epoch=13)))
    assert lookup().run(["epoch"], {}, **OPTIONS) == [12]  # the run's copy
    assert lookup().run(["epoch"], {}, cache=False, **OPTIONS) == [13]
    plugin_module._MEMORY.clear()
    assert lookup().run(["epoch"], {}, **OPTIONS) == [13]
    assert reads(plugin_module) == 2


def _fork_lookup(barrier: Any, counter: Any, queue: Any) -> None:
    """In a forked worker: wait for the others, then look up (counting S3 reads)."""
    plugin = lookup()
    module = __import__(type(plugin).__module__, fromlist=["LookupModule"])
    real = module.LookupModule._read_s3

    def counting(self: Any, *ident: str) -> dict[str, Any]:
        with counter.get_lock():
            counter.value += 1
        return real(self, *ident)

    module.LookupModule._read_s3 = counting
    barrier.wait()
    queue.put(plugin.run(["products.hello.db.master"], {}, **OPTIONS))


def test_concurrent_forks_share_one_read(plugin_module, s3) -> None:
    """Task forks of one run looking up at the same moment: the first reads S3, the others
    wait for its file."""
    context = multiprocessing.get_context("fork")
    workers = 4
    barrier, counter, queue = context.Barrier(workers), context.Value("i", 0), context.Queue()
    procs = [context.Process(target=_fork_lookup, args=(barrier, counter, queue))
             for _ in range(workers)]
    for proc in procs:
        proc.start()
    results = [queue.get(timeout=60) for _ in procs]
    for proc in procs:
        proc.join(timeout=60)
    assert [p.exitcode for p in procs] == [0] * workers
    assert results == [["hostkit-db-1"]] * workers
    assert counter.value == 1


def test_a_damaged_cache_file_is_read_again(plugin_module, s3) -> None:
    lookup().run(["epoch"], {}, **OPTIONS)
    plugin_module._MEMORY.clear()
    (cache,) = (plugin_module._cache_dir()).glob("hostkit-global-config-*.json")
    cache.write_text("{")
    assert lookup().run(["epoch"], {}, **OPTIONS) == [12]
    assert reads(plugin_module) == 2
    assert json.loads(cache.read_text())["epoch"] == 12


def test_missing_bucket(plugin_module, s3) -> None:
    with pytest.raises(AnsibleLookupError, match=(
            r"^global_config: cannot read s3://nowhere-bucket/global-config\.json: bucket "
            r"'nowhere-bucket' does not exist")):
        lookup().run(["epoch"], {}, bucket="nowhere-bucket", on_missing="skip")


def test_access_denied(plugin_module, s3, monkeypatch) -> None:
    def denying_client(region: str | None, endpoint: str | None, **kwargs: Any) -> Recorder:
        client = Recorder(gc.make_client(region, endpoint, **kwargs))
        client.fail["get_object"] = lambda kwargs, n: (_ for _ in ()).throw(
            client_error("AccessDenied", 403))
        return client

    monkeypatch.setattr(plugin_module, "make_client", denying_client)
    with pytest.raises(AnsibleLookupError, match=(
            rf"^global_config: cannot read s3://{BUCKET}/{KEY}: access denied \(AccessDenied")):
        lookup().run(["epoch"], {}, on_missing="skip", **OPTIONS)


def test_invalid_document(plugin_module, s3) -> None:
    bad = sample()
    bad["servers"]["hostkit-web-a1b2"]["role"] = "wbe"
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=json.dumps(bad).encode())
    with pytest.raises(AnsibleLookupError, match=(
            rf"^global_config: s3://{BUCKET}/{KEY} is invalid: servers\.hostkit-web-a1b2\.role: "
            r"'wbe' is not one of")):
        lookup().run(["epoch"], {}, on_missing="skip", **OPTIONS)
