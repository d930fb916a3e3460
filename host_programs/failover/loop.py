"""`run`: the watch loop, round after round for every cluster, failing over a dead master."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from host_programs.failover import decide as fo
from host_programs.failover.config import PROGRAM, WatcherConfig
from host_programs.failover.document import Document, fenced_servers, managed_clusters
from host_programs.failover.logs import log, log_event
from host_programs.failover.servers import Servers
from host_programs.failover.state import StateDir
from host_programs.failover.steps import Aborted, Runner, StepFailed, utc_stamp
from module_utils.global_config import GlobalConfig
from module_utils.mysql_flavor import execute as sql_execute
from module_utils.mysql_flavor import read_only_statements, server_flavor

# --------------------------------------------------------------------------- one cluster


class ClusterWatch:
    """Round after round for one cluster: resume an unfinished journal, else observe,
    judge, and fail over when the master is dead (and the anti-flap window allows it)."""

    ALERT_REPEAT = 30.0

    def __init__(self, name: str, watcher: Watcher) -> None:
        self.name = name
        self.w = watcher
        self.health: fo.MasterHealth | None = None
        # A state file written before clusters kept the same records per product; that
        # product's cluster got the product's name when the global config was upgraded.
        saved = (watcher.saved.get("clusters") or {}).get(name) \
            or (watcher.saved.get("products") or {}).get(name) or {}
        self.started: dict[str, float] = dict(saved.get("master_started_at") or {})
        self.master_state: dict[str, str] = dict(saved.get("master_state") or {})
        self.master_origin: dict[str, str] = dict(saved.get("master_origin") or {})
        self.flap = fo.AntiFlap.from_dict(saved.get("anti_flap") or {},
                                          watcher.config.anti_flap_window)
        self.retry_after = 0.0
        self.verdict: fo.Verdict | None = None
        self.alerts: list[dict[str, str]] = list(saved.get("alerts") or [])[-20:]
        self._alerted: dict[str, float] = {}
        self.journal_summary: dict[str, Any] | None = saved.get("journal")
        self.fenced_seen: dict[str, str] = {}

    # -- helpers
    def alert(self, key: str, event: str, **fields: Any) -> None:
        """A loud alert (critical log line, state file), repeated at most every 30 s."""
        now = self.w.clock()
        if now - self._alerted.get(key, -1e9) < self.ALERT_REPEAT:
            return
        self._alerted[key] = now
        log_event("critical", event, cluster=self.name, **fields)
        self.alerts.append({"at": utc_stamp(), "event": event,
                            "detail": json.dumps(fields, sort_keys=True)})
        self.alerts = self.alerts[-20:]

    def _wall_of(self, monotonic: float | None) -> str | None:
        if monotonic is None:
            return None
        return utc_stamp(self.w.wall() - (self.w.clock() - monotonic))

    # -- journals
    def _run(self, journal: fo.Journal) -> None:
        runner = self.w.runner()
        self.journal_summary = {"id": journal.id, "kind": journal.kind,
                                "status": journal.status}
        try:
            runner.run(journal)
        except StepFailed as exc:
            self.retry_after = self.w.clock() + self.w.config.retry_interval
            self.alert(f"step:{journal.id}", "journal_step_failed", journal=journal.id,
                       error=str(exc), retry_in=self.w.config.retry_interval)
        except Aborted as exc:
            self.retry_after = self.w.clock() + self.w.config.retry_interval
            if journal.kind == fo.FAILOVER:
                self.flap = self._flap_before
            self.alert(f"abort:{journal.id}", "journal_aborted", journal=journal.id,
                       error=str(exc))
        self.journal_summary = {"id": journal.id, "kind": journal.kind,
                                "status": journal.status,
                                "new_master": journal.new.get("master")}
        self.w.state.prune()
        if journal.status == fo.DONE:
            self.health = None
            self.w.document.get(force=True)

    # -- a round
    def tick(self) -> None:
        if self.w.clock() < self.retry_after:
            return
        with self.w.state.lock(self.name) as mine:
            if not mine:
                self.health = None   # a switchover is running: start afresh after it
                log_event("info", "cluster_locked", cluster=self.name)
                return
            journal = self.w.state.unfinished(self.name)
            if journal is not None:
                log_event("warning", "journal_resume", cluster=self.name,
                          journal=journal.id, step=(journal.next_step() or fo.Step("")).name)
                self._flap_before = fo.AntiFlap(**vars(self.flap))
                self._run(journal)
                return
            self._observe_and_judge()

    def _take_ack(self) -> None:
        ack = self.w.state.take_ack(self.name)
        if ack is None:
            return
        if self.flap.acknowledge(ack.get("journal")):
            log_event("warning", "failover_acknowledged", cluster=self.name,
                      journal=self.flap.last_failover_id)
        else:
            log_event("warning", "acknowledgement_ignored", cluster=self.name,
                      journal=ack.get("journal"), last=self.flap.last_failover_id)

    def _observe_and_judge(self) -> None:
        self._take_ack()
        doc = self.w.document.get()
        if doc is None:
            return
        try:
            cluster = fo.Cluster.from_document(doc, self.name)
        except fo.FailoverError as exc:
            self.alert("cluster", "cluster_unusable", error=str(exc))
            return
        if not cluster.master:
            self.alert("no_master", "no_master", detail="the global config names no master")
            return
        # What is remembered of a master (its start time for restart detection, its last
        # GTID state for the errant check) holds only while it stays master: a server that
        # was master before, was restarted as a replica and is master again is no restart.
        for memory in (self.started, self.master_state, self.master_origin):
            for server in [s for s in memory if s != cluster.master]:
                del memory[server]
        if self.health is None or self.health.master != cluster.master \
                or self.health.cluster != cluster:
            self.health = fo.MasterHealth(cluster, self.w.config.health(),
                                          self.started.get(cluster.master))
        fenced = fenced_servers(doc, self.name)
        seen = self.w.servers.probe_all(cluster.members() + fenced)
        master = seen[cluster.master]
        replicas = [seen[s] for s in cluster.replicas()]
        verdict = self.health.observe(master, replicas, self.w.wall())
        if master.ok and master.uptime is not None and self.health.started_at is not None:
            self.started[cluster.master] = self.health.started_at
        if master.ok and master.binlog_state() and not verdict.restarted:
            self.master_state[cluster.master] = master.binlog_state()
            self.master_origin[cluster.master] = str(master.origin or "")
        self._log_verdict(verdict)
        self.verdict = verdict
        if verdict.cluster_restarted:
            self.alert("cluster_restarted", "cluster_restarted", master=cluster.master,
                       detail=verdict.reasons[0])
        for server in fenced:
            self._keep_fenced(server, seen[server])
        if verdict.state == fo.DEAD:
            self._fail_over(cluster, seen, verdict)

    def _log_verdict(self, verdict: fo.Verdict) -> None:
        previous = self.verdict
        if previous is None or previous.state != verdict.state or \
                previous.failed_rounds != verdict.failed_rounds:
            level = {fo.ALIVE: "info", fo.SUSPECT: "warning"}.get(verdict.state, "error")
            if previous is None or previous.state != verdict.state or verdict.failed_rounds:
                log_event(level, "verdict", cluster=self.name, master=self.health.master
                          if self.health else None, state=verdict.state,
                          failed_rounds=verdict.failed_rounds, reasons=list(verdict.reasons),
                          witnesses=dict(verdict.witnesses))

    def _keep_fenced(self, server: str, obs: fo.Observation) -> None:
        """A fenced server must never take writes: when it answers again, make it read-only
        and cut it off again through the provider."""
        if not obs.ok:
            self.fenced_seen.pop(server, None)
            return
        actions = []
        if fo.fenced_server_action(obs) == "make_read_only":
            try:
                conn = self.w.servers.connect(server)
                try:
                    sql_execute(conn, read_only_statements(server_flavor(conn), True))
                finally:
                    conn.close()
                actions.append("made read-only")
            except Exception as exc:
                actions.append(f"could not make it read-only ({exc})")
        try:
            actions.append(self.w.fencer.isolate(server))
        except Exception as exc:
            actions.append(f"could not isolate it ({exc})")
        self.w.servers.forget(server)
        self.alert(f"fenced:{server}", "fenced_server_returned", server=server,
                   read_only=obs.read_only, actions=actions)

    def _fail_over(self, cluster: fo.Cluster, seen: Mapping[str, fo.Observation],
                   verdict: fo.Verdict) -> None:
        now = self.w.wall()
        if not self.flap.allowed(now):
            self.alert("flap", "failover_refused_anti_flap", master=cluster.master,
                       last=self.flap.last_failover_id,
                       blocked_until=utc_stamp(self.flap.blocked_until()),
                       how=f"{PROGRAM} ack --cluster {self.name}")
            return
        flavor = next((o.flavor for o in seen.values() if o.ok and o.flavor), None)
        if flavor is None:
            self.alert("noflavor", "failover_impossible", reason="no replica answers")
            return
        master = str(cluster.master)
        choice = fo.choose(cluster, {s: seen[s] for s in cluster.replicas()}, flavor,
                           self.master_origin.get(master), self.master_state.get(master),
                           excluded=fenced_servers(self.w.document.get() or {}, self.name))
        if choice.new_master is None:
            self.alert("nochoice", "failover_impossible", master=master,
                       reasons=list(choice.reasons), changed="nothing")
            return
        stamp = utc_stamp(now)
        journal = fo.failover_plan(
            cluster, choice, stamp,
            [*verdict.reasons, f"first failed check at {self._wall_of(verdict.first_failure_at)}"],
            detected_at=stamp)
        log_event("critical", "failover_start", cluster=self.name, journal=journal.id,
                  old_master=master, new_master=choice.new_master,
                  first_failed_check=self._wall_of(verdict.first_failure_at),
                  reasons=list(journal.reasons), positions=dict(choice.positions))
        self._flap_before = fo.AntiFlap(**vars(self.flap))
        self.flap.record(journal.id, now)
        self.w.state.save_journal(journal)
        self._run(journal)

    def summary(self) -> dict[str, Any]:
        v = self.verdict
        return {
            "master": self.health.master if self.health else None,
            "verdict": v.state if v else None,
            "reasons": list(v.reasons) if v else [],
            "failed_rounds": v.failed_rounds if v else 0,
            "witnesses": dict(v.witnesses) if v else {},
            "master_started_at": self.started,
            "master_state": self.master_state,
            "master_origin": self.master_origin,
            "anti_flap": self.flap.to_dict(),
            "failover_allowed": self.flap.allowed(self.w.wall()),
            "journal": self.journal_summary,
            "alerts": self.alerts,
        }


# --------------------------------------------------------------------------- the watcher


class Watcher:
    def __init__(self, config: WatcherConfig, store: GlobalConfig, fencer: Any,
                 driver: Any = None, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.config = config
        self.clock = clock
        self.wall = wall
        self.sleep = sleep
        self.state = StateDir(config.state_dir)
        self.saved = self.state.load_state()
        self.document = Document(store, config.config_poll_interval, clock)
        self.servers = Servers(config, self.document.addresses, driver, clock)
        self.fencer = fencer
        self.watches: dict[str, ClusterWatch] = {}
        self.started_at = utc_stamp()

    def runner(self) -> Runner:
        return Runner(self.servers.connect, self.fencer,
                      lambda j: self.document.publish(j, self.config.updated_by),
                      self.config.run_settings(), self.state.save_journal, log_event,
                      self.clock, self.sleep, utc_stamp)

    def watch(self, name: str) -> ClusterWatch:
        if name not in self.watches:
            self.watches[name] = ClusterWatch(name, self)
        return self.watches[name]

    def write_state(self) -> None:
        self.state.save_state({
            "program": PROGRAM, "pid": os.getpid(), "started_at": self.started_at,
            "updated_at": utc_stamp(), "epoch": (self.document.reader.doc or {}).get("epoch"),
            "interval": self.config.interval,
            "clusters": {c: w.summary() for c, w in sorted(self.watches.items())}})

    def tick(self) -> None:
        """One round of every cluster (in parallel: a slow cluster does not delay another)."""
        doc = self.document.get()
        clusters = managed_clusters(doc, self.config)
        for name in clusters:
            self.watch(name)
        if clusters:
            with ThreadPoolExecutor(max_workers=len(clusters)) as pool:
                for name, future in [(c, pool.submit(self.watches[c].tick))
                                     for c in clusters]:
                    try:
                        future.result()
                    except Exception as exc:  # one cluster's bug must not stop the others
                        log.exception("event=tick_failed cluster=%s error=%s", name, exc)
        self.write_state()

    def run(self, stop: threading.Event) -> None:
        log_event("info", "watcher_start", clusters=list(self.config.clusters) or "all",
                  interval=self.config.interval, rounds=self.config.rounds,
                  silence=self.config.silence, fence=getattr(self.fencer, "name", "?"),
                  anti_flap_window=self.config.anti_flap_window)
        while not stop.is_set():
            start = self.clock()
            self.tick()
            stop.wait(max(0.0, self.config.interval - (self.clock() - start)))
        log_event("info", "watcher_stop")
