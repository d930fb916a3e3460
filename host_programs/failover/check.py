"""`check`: the Nagios plugin reading the state file."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from host_programs.failover import decide as fo
from host_programs.failover.logs import stamp_epoch


def check(state: Mapping[str, Any], max_age: float, now: float) -> tuple[int, str]:
    """Nagios: (exit code, one line) from the state file."""
    updated = state.get("updated_at")
    if not updated:
        return 3, "UNKNOWN: no state written yet"
    age = now - stamp_epoch(updated)
    if age > max_age:
        return 2, f"CRITICAL: the watcher has not written its state for {age:.0f} s"
    worst, notes = 0, []
    for name, info in sorted((state.get("clusters") or {}).items()):
        verdict = info.get("verdict")
        journal = info.get("journal") or {}
        if verdict in (fo.DEAD, fo.UNKNOWN) or journal.get("status") in (fo.RUNNING,
                                                                          fo.FAILED):
            worst = 2
        elif verdict == fo.SUSPECT or not info.get("failover_allowed", True):
            worst = max(worst, 1)
        notes.append(f"{name}: master {info.get('master')} {verdict}"
                     + ("" if info.get("failover_allowed", True) else ", failover blocked "
                        "(anti-flap; acknowledge)"))
    label = {0: "OK", 1: "WARNING", 2: "CRITICAL"}[worst]
    return worst, f"{label}: " + ("; ".join(notes) or "no clusters")
