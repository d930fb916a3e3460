"""Shared by the global config tests: a valid sample document, moto S3 with S3's atomic
conditional writes, and a client wrapper that counts or fails calls."""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.s3.responses import S3Response

from module_utils.global_config import GlobalConfig, make_client

REGION = "us-east-1"
BUCKET = "hostkit-test-config"
KEY = "global-config.json"

SAMPLE: dict[str, Any] = {
    "epoch": 12,
    "updated_at": "2026-11-28T09:00:00Z",
    "updated_by": "launch_web@controller",
    "servers": {
        **{f"hostkit-db-{i}": {"role": "db", "products": ["hello"], "az": f"us-east-1{z}",
                               "address": f"172.18.0.{10 + i}", "state": "in_service"}
           for i, z in ((1, "a"), (2, "b"), (3, "c"), (4, "a"))},
        "hostkit-mc-1": {"role": "memcached", "products": ["hello"], "az": "us-east-1a",
                         "address": "172.18.0.21", "state": "in_service"},
        "hostkit-web-a1b2": {"role": "web", "products": ["hello"], "az": "us-east-1a",
                             "address": "172.18.0.7", "state": "in_service"},
    },
    "clusters": {
        "hello": {
            "db": {"master": "hostkit-db-1", "candidate": "hostkit-db-2",
                   "slave_candidate": "hostkit-db-3", "backup": "hostkit-db-4"},
        },
    },
    "products": {
        "hello": {
            "cluster": "hello",
            "db": {"master": "hostkit-db-1", "candidate": "hostkit-db-2",
                   "slave_candidate": "hostkit-db-3", "backup": "hostkit-db-4"},
            "memcached": ["hostkit-mc-1"],
            "web": ["hostkit-web-a1b2"],
        },
    },
}

# The same fleet as a version 1 document (before database clusters): what an older kit
# stored, which readers upgrade in memory and the next write stores as version 2.
SAMPLE_V1: dict[str, Any] = {
    **{k: v for k, v in SAMPLE.items() if k != "clusters"},
    "products": {"hello": {k: v for k, v in SAMPLE["products"]["hello"].items()
                           if k != "cluster"}},
}


def sample(**top: Any) -> dict[str, Any]:
    """A deep copy of SAMPLE with top-level fields replaced."""
    doc = copy.deepcopy(SAMPLE)
    doc.update(top)
    return doc


def sample_v1(**top: Any) -> dict[str, Any]:
    """A deep copy of SAMPLE_V1 (no clusters) with top-level fields replaced."""
    doc = copy.deepcopy(SAMPLE_V1)
    doc.update(top)
    return doc


@contextmanager
def moto_s3(monkeypatch: pytest.MonkeyPatch, versioning: bool = True) -> Iterator[Any]:
    """In-process moto with the test bucket (versioned, like the sandbox's).

    moto 5.2.5 checks If-Match / If-None-Match and then stores the object in two steps
    without a lock, so two threads can both pass the check; S3 itself decides a conditional
    write atomically. The handler is serialised here so that the emulator keeps S3's
    promise and the race tests test our code, not moto's."""
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                        ("AWS_DEFAULT_REGION", REGION)):
        monkeypatch.setenv(name, value)
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "HOSTKIT_GLOBAL_CONFIG_BUCKET",
                 "HOSTKIT_GLOBAL_CONFIG_KEY", "HOSTKIT_GLOBAL_CONFIG_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    lock = threading.Lock()
    original = S3Response.put_object

    def atomic_put_object(self: S3Response) -> Any:
        with lock:
            return original(self)

    monkeypatch.setattr(S3Response, "put_object", atomic_put_object)
    with mock_aws():
        client = make_client(REGION)
        client.create_bucket(Bucket=BUCKET)
        if versioning:
            client.put_bucket_versioning(Bucket=BUCKET,
                                         VersioningConfiguration={"Status": "Enabled"})
        yield client


def store(client: Any, **kwargs: Any) -> GlobalConfig:
    """A store that does not sleep between attempts."""
    kwargs.setdefault("sleep", lambda seconds: None)
    return GlobalConfig(client, BUCKET, KEY, **kwargs)


def client_error(code: str, status: int, operation: str = "GetObject") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": f"{code} (simulated)"},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, operation)


class Recorder:
    """Wraps a client: counts calls per operation; `fail` maps an operation to a function
    (called with the call's kwargs and its number) that may raise instead of the call."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls: dict[str, int] = {}
        self.fail: dict[str, Callable[[dict[str, Any], int], None]] = {}
        self.meta = client.meta

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)

        def call(**kwargs: Any) -> Any:
            self.calls[name] = self.calls.get(name, 0) + 1
            if name in self.fail:
                self.fail[name](kwargs, self.calls[name])
            return method(**kwargs)
        return call
