"""The state directory: journals, the state file, acknowledgements and the per-cluster
locks."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from typing import Any

from host_programs.common.atomic_files import json_bytes, locked, write_atomic
from host_programs.failover import decide as fo
from host_programs.failover.logs import log
from host_programs.failover.steps import utc_stamp

# --------------------------------------------------------------------------- files


class StateDir:
    """<state_dir>/journals/<id>.json (every failover and switchover), state.json (for
    monitoring; also what must survive a restart: the masters' start times and last GTID
    states, the anti-flap records), acks/<cluster> (operator acknowledgements) and
    locks/<cluster>.lock (one actor per cluster at a time)."""

    KEEP_JOURNALS = 50

    def __init__(self, root: str) -> None:
        self.root = root
        for sub in ("journals", "acks", "locks"):
            os.makedirs(os.path.join(root, sub), mode=0o750, exist_ok=True)

    # journals
    def save_journal(self, journal: fo.Journal) -> None:
        write_atomic(os.path.join(self.root, "journals", f"{journal.id}.json"),
                     json_bytes(journal.to_dict()), 0o640)

    def journals(self, cluster: str | None = None) -> list[fo.Journal]:
        directory = os.path.join(self.root, "journals")
        out = []
        for name in sorted(os.listdir(directory)):
            if not name.endswith(".json") or name.startswith("."):
                continue
            try:
                with open(os.path.join(directory, name), encoding="utf-8") as handle:
                    journal = fo.Journal.from_dict(json.load(handle))
            except (OSError, ValueError, fo.FailoverError) as exc:
                log.error("event=journal_unreadable file=%s error=%s", name, exc)
                continue
            if cluster is None or journal.cluster == cluster:
                out.append(journal)
        return sorted(out, key=lambda j: j.started_at)

    def unfinished(self, cluster: str) -> fo.Journal | None:
        return next((j for j in self.journals(cluster) if not j.finished), None)

    def prune(self) -> None:
        finished = [j for j in self.journals() if j.finished]
        for journal in finished[:-self.KEEP_JOURNALS]:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(self.root, "journals", f"{journal.id}.json"))

    # state
    @property
    def state_file(self) -> str:
        return os.path.join(self.root, "state.json")

    def load_state(self) -> dict[str, Any]:
        try:
            with open(self.state_file, encoding="utf-8") as handle:
                data = json.load(handle)
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def save_state(self, state: Mapping[str, Any]) -> None:
        write_atomic(self.state_file, json_bytes(state), 0o644, sync=False)

    # acknowledgements
    def ack(self, cluster: str, journal_id: str | None) -> None:
        write_atomic(os.path.join(self.root, "acks", cluster),
                     json_bytes({"journal": journal_id, "at": utc_stamp()}))

    def take_ack(self, cluster: str) -> dict[str, Any] | None:
        path = os.path.join(self.root, "acks", cluster)
        try:
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
        except (OSError, ValueError):
            return None
        with contextlib.suppress(OSError):
            os.unlink(path)
        return data if isinstance(data, dict) else {"journal": None}

    # locks
    def lock(self, cluster: str,
             wait: float | None = 0.0) -> contextlib.AbstractContextManager[bool]:
        """Hold the cluster's lock; yields False when another process holds it (after
        waiting up to `wait` seconds; None waits forever)."""
        return locked(os.path.join(self.root, "locks", f"{cluster}.lock"), wait)
