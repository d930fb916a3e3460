"""requirements.lock holds every package requirements.txt pins, at the same version, so
that the constraints scripts/bootstrap.sh installs with never contradict the pins."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==([^\s;#]+)")


def pins(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        match = PIN.match(line.strip())
        if match:
            out[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = match.group(2)
    return out


def test_every_pin_of_requirements_txt_is_in_the_lock_at_its_version() -> None:
    wanted, locked = pins(ROOT / "requirements.txt"), pins(ROOT / "requirements.lock")
    assert wanted, "requirements.txt pins nothing"
    assert {n: v for n, v in wanted.items() if locked.get(n) != v} == {}


def test_the_lock_pins_every_line_it_has() -> None:
    lines = [line for line in (ROOT / "requirements.lock").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert lines and all(PIN.match(line) for line in lines), \
        [line for line in lines if not PIN.match(line)]
