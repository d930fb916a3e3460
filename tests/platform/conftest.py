"""Fixtures shared by the platform tests, and how they are spread over pytest-xdist workers.

`make platform` runs them on two workers (`--dist loadgroup`). The modules that work on the
shared sandbox carry `pytest.mark.xdist_group("sandbox")`: they run one after another on one
worker, test_launch first (its re-run test can rely on the converge record of `make up`
while nothing has touched the sandbox yet). Every other module builds containers, buckets
and keys of its own, with names of its own; each is one group, so that its module-scoped
site is built once, on one worker.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.sandbox import stamp_holds, write_stamp

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


# The shared sandbox's modules, in the order they run; the rest follow in collection order.
SANDBOX_FIRST = ("test_launch",)


def _module_name(item: pytest.Item) -> str:
    return Path(str(item.fspath)).stem


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups into the node ids
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    rank = {name: n for n, name in enumerate(SANDBOX_FIRST)}
    for item in items:
        if Path(str(item.fspath)).parent == here and not any(
                m.name == "xdist_group" for m in item.iter_markers()):
            item.add_marker(pytest.mark.xdist_group(_module_name(item)))
    items.sort(key=lambda i: rank.get(_module_name(i), len(rank)))  # stable: the rest as found


@pytest.fixture(scope="session")
def sandbox_up() -> subprocess.CompletedProcess[str]:
    """The sandbox site brought up once per test session (playbooks/sandbox_up.yml, what
    `make up` runs after the images): the modules that work on the shared sandbox start
    from it, and each leaves it in its initial positions. A failed run fails them all with
    its output. When the last converge's record still holds (`scripts/sandbox.py stamp
    --check`: the same code, the same running containers, the same global config, as right
    after `make up`), it is not run a third time; the closing table is printed instead."""
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
           "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.default", "ANSIBLE_FORCE_COLOR": "0",
           "ANSIBLE_NOCOLOR": "1", "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}
    holds, detail = stamp_holds()
    book = "playbooks/fleet_summary.yml" if holds else "playbooks/sandbox_up.yml"
    print(f"sandbox: {'converged at ' + detail + ', not again' if holds else detail}")
    result = subprocess.run([str(BIN / "ansible-playbook"), book],
                            text=True, capture_output=True, cwd=ROOT, env=env, timeout=1800)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    if not holds:
        write_stamp()
    return result
