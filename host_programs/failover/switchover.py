"""`switchover` (planned, checked first) and `abandon` (an operator takes over an
unfinished journal)."""

from __future__ import annotations

from typing import Any

from host_programs.failover import decide as fo
from host_programs.failover.config import WatcherError
from host_programs.failover.logs import log_event, stamp_epoch
from host_programs.failover.loop import Watcher
from host_programs.failover.state import StateDir
from host_programs.failover.steps import Aborted, StepFailed, utc_stamp

# --------------------------------------------------------------------------- switchover


def switchover(watcher: Watcher, name: str, new_master: str | None,
               lock_wait: float = 30.0, attempts: int = 3) -> dict[str, Any]:
    """A planned switchover of cluster `name` to `new_master` (default: the candidate):
    every product of the cluster moves. Checks first and changes nothing when a check fails
    (WatcherError naming the server)."""
    doc = watcher.document.get(force=True)
    if doc is None:
        raise WatcherError("cannot read the global config")
    cluster = fo.Cluster.from_document(doc, name)
    target = new_master or cluster.positions.get("candidate") \
        or cluster.positions.get("slave_candidate")
    if not target:
        raise WatcherError(f"cluster '{name}': no candidate to switch over to")
    with watcher.state.lock(name, wait=lock_wait) as mine:
        if not mine:
            raise WatcherError(f"cluster '{name}': another switchover or failover holds the "
                               "lock")
        running = watcher.state.unfinished(name)
        if running is not None:
            raise WatcherError(f"cluster '{name}': {running.kind} {running.id} is not "
                               "finished yet")
        _switchover_checks(watcher, cluster, str(target))
        journal = fo.switchover_plan(cluster, str(target), utc_stamp(), ["planned switchover"])
        watcher.state.save_journal(journal)
        log_event("warning", "switchover_start", cluster=name, journal=journal.id,
                  old_master=cluster.master, new_master=target)
        runner = watcher.runner()
        for attempt in range(1, attempts + 1):
            try:
                runner.run(journal)
                break
            except StepFailed:
                if attempt == attempts:
                    raise WatcherError(f"switchover {journal.id}: {journal.error}; the watcher "
                                       "finishes the journal") from None
                watcher.sleep(0.5)
            except Aborted:
                raise WatcherError(f"switchover {journal.id} aborted, nothing changed: "
                                   f"{journal.error}") from None
    return switchover_report(journal)


def abandon(state: StateDir, name: str, reason: str, lock_wait: float = 30.0) -> str:
    """Mark the cluster's unfinished journal abandoned: an operator has taken over (e.g. a
    step that keeps failing because a server is gone for good). Nothing on the servers
    changes; the watcher watches the positions of the global config again."""
    with state.lock(name, wait=lock_wait) as mine:
        if not mine:
            raise WatcherError(f"cluster '{name}': the lock is held (a step is running); "
                               "try again")
        journal = state.unfinished(name)
        if journal is None:
            raise WatcherError(f"cluster '{name}': no unfinished failover or switchover")
        for step in journal.steps:
            if step.status != fo.DONE:
                step.status = fo.ABORTED
        journal.status, journal.finished_at = fo.ABORTED, utc_stamp()
        journal.error = f"abandoned by an operator: {reason}"
        state.save_journal(journal)
    log_event("critical", "journal_abandoned", cluster=name, journal=journal.id,
              reason=reason)
    return journal.id


def _switchover_checks(watcher: Watcher, cluster: fo.Cluster, target: str) -> None:
    name = cluster.name
    if cluster.position_of(target) not in fo.ELIGIBLE:
        raise WatcherError(f"cluster '{name}': '{target}' is "
                           f"{cluster.position_of(target) or 'not in its cluster'}; only the "
                           "candidate or the slave candidate can become master")
    seen = watcher.servers.probe_all(cluster.members())
    master, new = seen[str(cluster.master)], seen[target]
    if not master.ok:
        raise WatcherError(f"cluster '{name}': master '{cluster.master}' does not answer "
                           f"({master.error}); a dead master is the watcher's to replace")
    if not new.ok:
        raise WatcherError(f"cluster '{name}': '{target}' does not answer ({new.error})")
    replica = new.replica or {}
    if not (new.io_running() and replica.get("sql_running")):
        raise WatcherError(f"cluster '{name}': '{target}' does not replicate (IO thread "
                           f"{replica.get('io_thread')}, SQL thread {replica.get('sql_thread')}"
                           f"{', ' + new.sql_error() if new.sql_error() else ''})")
    lag = replica.get("seconds_behind")
    if lag is None or lag > watcher.config.switchover_max_lag:
        raise WatcherError(f"cluster '{name}': '{target}' is {lag} s behind (at most "
                           f"{watcher.config.switchover_max_lag:g} s for a switchover)")
    assert master.flavor is not None
    errant = fo.errant(new, master.binlog_state(), master.origin, master.flavor)
    if errant:
        raise WatcherError(f"cluster '{name}': '{target}' has errant transactions {errant}")


def _seconds(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return round(stamp_epoch(end) - stamp_epoch(start), 3)


def switchover_report(journal: fo.Journal) -> dict[str, Any]:
    steps = {s.name: s for s in journal.steps}
    freeze, publish = steps.get("freeze"), steps.get("publish")
    return {"journal": journal.id, "status": journal.status, "cluster": journal.cluster,
            "products": list(journal.products),
            "old_master": journal.old.get("master"), "new_master": journal.new.get("master"),
            "positions": journal.new,
            "read_only_to_published_seconds": _seconds(
                freeze.started_at if freeze else None, publish.finished_at if publish else None),
            "steps": [{"name": s.name, "server": s.server, "status": s.status,
                       "seconds": _seconds(s.started_at, s.finished_at), "detail": s.detail}
                      for s in journal.steps]}
