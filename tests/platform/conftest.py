"""Fixtures shared by the platform tests, and their order.

`make platform` runs them in two lanes at once (scripts/platform-tests.sh): the modules that
work on the shared sandbox carry `pytest.mark.sandbox` and run one after another in one
lane, test_launch first (its re-run test can rely on the converge record of `make up` while
nothing has touched the sandbox yet); every other module builds containers, buckets and
keys of its own, with names of its own, and runs in the other lane.
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


# Modules that run first, in this order; the rest follow in collection order.
FIRST = ("test_launch",)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """test_launch first; and a module that uses the shared sandbox must say so, or it
    would run beside the sandbox's modules in the other lane."""
    unmarked = sorted({str(i.fspath) for i in items if i.get_closest_marker("sandbox") is None
                       and "sandbox_up" in Path(str(i.fspath)).read_text()
                       and Path(str(i.fspath)).name != "conftest.py"})
    if unmarked:
        raise pytest.UsageError(f"these modules use the shared sandbox (sandbox_up) but lack "
                                f"pytest.mark.sandbox: {', '.join(unmarked)}")
    rank = {name: n for n, name in enumerate(FIRST)}
    items.sort(key=lambda i: rank.get(Path(str(i.fspath)).stem, len(rank)))  # stable


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
