"""Conditional writes of the global config with a botocore that predates the PutObject
IfMatch / IfNoneMatch parameters (Debian 12's python3-botocore 1.29, as the failover watcher
on a monitor host has): the conditions go out as HTTP headers, and S3 (moto) enforces them."""

from __future__ import annotations

from typing import Any

import pytest

from module_utils import global_config as gc
from tests.unit.gc_helpers import moto_s3 as moto
from tests.unit.gc_helpers import sample, store


@pytest.fixture
def old_botocore(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(gc, "_put_takes", lambda client, condition: False)
    with moto(monkeypatch) as client:
        yield client


def test_headers_carry_the_conditions(old_botocore: Any) -> None:
    s = store(old_botocore)
    doc, etag = s.create("test", sample(epoch=0))
    with pytest.raises(gc.DocumentExists):
        s.create("test", sample(epoch=0))                      # If-None-Match: * enforced
    result = s.update(lambda d: gc.set_product_db(d, "hello", master="hostkit-db-2",
                                                  candidate="hostkit-db-1"), "test")
    assert result.changed and result.epoch == 1 and result.attempts == 1
    with pytest.raises(gc._Conflict):
        s._put(sample(epoch=5), etag)                          # stale If-Match refused
    assert s.read()[0]["products"]["hello"]["db"]["master"] == "hostkit-db-2"


def test_the_header_handler_is_removed_after_the_call(old_botocore: Any) -> None:
    s = store(old_botocore)
    _, etag = s.create("test", sample(epoch=0))
    # a plain put_object afterwards carries no leftover If-Match
    old_botocore.put_object(Bucket=s.bucket, Key=s.key, Body=b"{}")
    assert old_botocore.get_object(Bucket=s.bucket, Key=s.key)["Body"].read() == b"{}"


def test_a_client_with_the_parameters_uses_them(monkeypatch: pytest.MonkeyPatch) -> None:
    with moto(monkeypatch) as client:
        assert gc._put_takes(client, {"IfMatch": "x"})
        assert gc._put_takes(object(), {"IfMatch": "x"})       # a double: the call decides
