"""Fixtures shared by the platform tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.sandbox import stamp_holds, write_stamp

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


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
