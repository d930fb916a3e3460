"""scripts/sandbox.py down: the containers are gone before the network is removed, and a
container still attached to the network (a test's leftover) does not stop its removal."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from scripts import sandbox


class Engine:
    """A fake engine: containers by label, the network's attached containers, and a network
    rm that answers 'active endpoints' while anything is attached."""

    def __init__(self) -> None:
        self.containers = {"hostkit-db-1": "io.hostkit.managed=true",
                           "hostkit-aws": sandbox.SANDBOX_LABEL}
        self.attached = {"hostkit-db-1", "hostkit-aws", "hkagent-web-1"}
        self.network = True
        self.lag = 1  # rm -f answers before the container is gone, once
        self.calls: list[tuple[str, ...]] = []

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        self.calls.append(args)
        out, code, err = "", 0, ""
        if args[:2] == ("ps", "-a"):
            label = args[3].removeprefix("label=")
            out = "\n".join(n for n, lbl in self.containers.items() if lbl == label)
        elif args[0] == "rm":
            if self.lag:
                self.lag -= 1
            else:
                for name in args[2:]:
                    self.containers.pop(name, None)
                    self.attached.discard(name)
        elif args[:2] == ("network", "inspect"):
            code = 0 if self.network else 1
            out = " ".join(sorted(self.attached))
        elif args[:2] == ("network", "disconnect"):
            self.attached.discard(args[-1])
        elif args[:2] == ("network", "rm"):
            if self.attached:
                code, err = 1, "error while removing network: has active endpoints"
            else:
                self.network = False
        return subprocess.CompletedProcess(args, code, out, err)


@pytest.fixture()
def engine(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Engine:
    fake = Engine()
    monkeypatch.setattr(sandbox, "docker", fake)
    monkeypatch.setattr(sandbox, "ROOT", tmp_path)
    monkeypatch.setattr(sandbox.time, "sleep", lambda _: None)
    return fake


def test_down_waits_for_the_containers_and_frees_the_network(engine: Engine) -> None:
    removed = sandbox.down()
    assert removed == ["container hostkit-db-1", "container hostkit-aws",
                       f"network {sandbox.NETWORK}"]
    assert not engine.containers and not engine.network
    assert ("network", "disconnect", "-f", sandbox.NETWORK, "hkagent-web-1") in engine.calls


def test_down_twice_removes_nothing_the_second_time(engine: Engine) -> None:
    sandbox.down()
    assert sandbox.down() == []


def test_a_network_that_never_frees_is_an_error_naming_it(engine: Engine,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    monkeypatch.setattr(Engine, "__call__", lambda self, *a, check=True: subprocess.
                        CompletedProcess(a, 1 if a[:2] == ("network", "rm") else 0, "",
                                         "has active endpoints"))
    with pytest.raises(sandbox.SandboxError, match="docker network rm hostkit failed 30 "
                                                   "times: has active endpoints"):
        sandbox._remove_network()
