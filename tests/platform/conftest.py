"""Fixtures shared by the platform tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
def sandbox_up() -> subprocess.CompletedProcess[str]:
    """The sandbox site brought up once per test session (playbooks/sandbox_up.yml, what
    `make up` runs after the images): the modules that work on the shared sandbox start
    from it, and each leaves it in its initial positions. A failed run fails them all with
    its output."""
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
           "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.default", "ANSIBLE_FORCE_COLOR": "0",
           "ANSIBLE_NOCOLOR": "1", "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}
    result = subprocess.run([str(BIN / "ansible-playbook"), "playbooks/sandbox_up.yml"],
                            text=True, capture_output=True, cwd=ROOT, env=env, timeout=1800)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    return result
