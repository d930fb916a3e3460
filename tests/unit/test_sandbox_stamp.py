"""The converge record of `make up` (scripts/sandbox.py stamp): it holds while the code and
the running sandbox are as they were, a test's own containers are not part of the sandbox,
and CI's note of a re-run that changed nothing is kept only while the record holds."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from scripts import sandbox

INSPECT = {
    "a1": "/hostkit-db-1 | a1 2026-12-07T10:00:00Z",
    "b2": "/hkbak-tabc-db-1 hkbak-tabc| b2 2026-12-07T10:05:00Z",
    "c3": "/hostkit-aws | c3 2026-12-07T09:59:00Z",
}


@pytest.fixture()
def engine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    """A fake engine: `docker ps` lists the ids of `state['running']`, `docker inspect`
    prints their lines; the global config's version is `state['version']`."""
    state: dict[str, Any] = {"running": ["a1", "b2", "c3"], "version": "v1", "code": "d1",
                             "inspect": dict(INSPECT)}

    def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        if args[0] == "ps":
            wanted = ["a1", "a1x", "b2"] if "managed" in args[3] else ["c3"]
            out = "\n".join(i for i in state["running"] if i in wanted)
        else:
            out = "\n".join(state["inspect"][i] for i in args[3:] if i in state["running"])
        return subprocess.CompletedProcess(args, 0, out, "")

    class Client:
        def head_object(self, **_: str) -> dict[str, str]:
            return {"VersionId": state["version"]}

    monkeypatch.setattr(sandbox, "docker", docker)
    monkeypatch.setattr(sandbox, "_answers", lambda url: True)
    monkeypatch.setattr(sandbox, "s3_client", lambda url: Client())
    monkeypatch.setattr(sandbox, "code_digest", lambda root=sandbox.ROOT: state["code"])
    monkeypatch.setattr(sandbox, "ROOT", tmp_path)
    monkeypatch.setattr(sandbox, "STAMP", tmp_path / "converged.json")
    return state


def test_identity_leaves_out_a_tests_own_containers(engine: dict[str, Any]) -> None:
    identity = sandbox.sandbox_identity()
    assert set(identity) == {"hostkit-db-1", "hostkit-aws", "global config"}
    assert identity["hostkit-db-1"] == "a1 2026-12-07T10:00:00Z"


def test_record_holds_while_a_test_starts_and_removes_containers(engine: dict[str, Any]
                                                                 ) -> None:
    engine["running"] = ["a1", "c3"]
    sandbox.write_stamp()
    engine["running"] = ["a1", "b2", "c3"]
    assert sandbox.stamp_holds()[0]


@pytest.mark.parametrize("change", ["code", "version", "restart"])
def test_record_stops_holding_after_a_change(engine: dict[str, Any], change: str) -> None:
    sandbox.write_stamp()
    if change == "restart":
        engine["inspect"]["a1x"] = "/hostkit-db-1 | a1x 2026-12-07T11:00:00Z"
        engine["running"] = ["a1x", "c3"]
    else:
        engine[change] = "other"
    holds, why = sandbox.stamp_holds()
    assert not holds and "changed" in why


def test_rerun_is_noted_only_while_the_record_holds(engine: dict[str, Any]) -> None:
    assert not sandbox.note_rerun()  # no record at all
    sandbox.write_stamp()
    assert sandbox.rerun_noted() == ""
    assert sandbox.note_rerun()
    noted = sandbox.rerun_noted()
    assert noted and json.loads(sandbox.STAMP.read_text())["rerun_changed_nothing"] == noted
    engine["version"] = "v2"  # the config was written since: neither the record nor the note
    assert sandbox.rerun_noted() == "" and not sandbox.note_rerun()


def test_a_new_converge_drops_the_note(engine: dict[str, Any]) -> None:
    sandbox.write_stamp()
    sandbox.note_rerun()
    sandbox.write_stamp()
    assert sandbox.rerun_noted() == ""
