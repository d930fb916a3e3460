"""hostkit-failover: the failover watcher of the monitor hosts, and the planned switchover.

`hostkit-failover run` (a systemd service, roles/failover_watcher) watches the database
master of every cluster named in its configuration (all clusters of the global config
when none is named): every round it checks the master directly and asks each replica
whether it still hears the master (host_programs/failover/decide.py decides), and after a verdict
of death it fails over: fence, promote, publish in the global config, repoint (module_utils/
failover_run.py). Each failover is a journal in the state directory, written before and
after every step; a watcher that is restarted in the middle finishes it first. Old masters
that are fenced in the global config and come back are made read-only and cut off again.
A cluster serves one or several products: one journal, and one publish that moves all of
them in one epoch.

`hostkit-failover switchover --cluster C|--product P [--new-master S]`
(playbooks/failover.yml) makes a planned switchover: master read-only, wait for the new
master to apply everything, promote, publish, repoint. `ack` acknowledges the last
automatic failover (anti-flap), `abandon` gives up an unfinished journal when an operator
takes over, `status` prints the state file, `check` is a Nagios plugin reading it.

Decisions are logged with UTC timestamps (milliseconds) to stderr (the journal of systemd);
the state file (<state_dir>/state.json) tells monitoring what the watcher sees. No Ansible
imports; Python 3.9+.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from host_programs.common.atomic_files import json_bytes, locked, write_atomic
from host_programs.failover import decide as fo
from host_programs.failover.fence import make_fencer
from host_programs.failover.steps import (
    Aborted,
    Runner,
    RunSettings,
    StepFailed,
    failed_observation,
    observe,
    utc_stamp,
)
from module_utils.global_config import (
    EpochGuard,
    GlobalConfig,
    GlobalConfigError,
    Reader,
    cluster_of_server,
    make_client,
    set_cluster,
    set_server,
)
from module_utils.mysql_flavor import execute as sql_execute
from module_utils.mysql_flavor import read_only_statements, server_flavor

PROGRAM = "hostkit-failover"
DEFAULT_CONFIG = "/etc/hostkit-failover/config.json"
STAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
# Static AWS credentials (the sandbox's emulator) may come with the configuration, so that
# the service and an operator's command (switchover) use the same; production leaves them
# out and boto3 uses the instance profile.
AWS_ENVIRONMENT = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                   "AWS_DEFAULT_REGION")
log = logging.getLogger(PROGRAM)


class WatcherError(Exception):
    """Bad configuration or a refused command; the message names the field or server."""


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class WatcherConfig:
    bucket: str
    key: str
    mysql_user: str
    mysql_password: str
    replication_user: str
    replication_password: str
    state_dir: str
    region: str | None = None
    endpoint_url: str | None = None
    clusters: tuple[str, ...] = ()
    mysql_port: int = 3306
    connect_timeout: float = 0.5
    read_timeout: float = 0.5
    interval: float = 0.5
    rounds: int = 3
    silence: float = 1.5
    anti_flap_window: float = 3600.0
    config_poll_interval: float = 5.0
    heartbeat_period: float = 0.5
    apply_timeout: float = 60.0
    catch_up_timeout: float = 30.0
    semi_sync_timeout: float = 5.0
    retry_interval: float = 5.0
    switchover_max_lag: float = 5.0
    fence: Mapping[str, Any] = field(default_factory=dict)
    aws_environment: Mapping[str, str] = field(default_factory=dict)
    updated_by: str = f"{PROGRAM}@{socket.gethostname()}"

    def health(self) -> fo.HealthSettings:
        return fo.HealthSettings(self.rounds, self.silence)

    def run_settings(self) -> RunSettings:
        return RunSettings(self.replication_user, self.replication_password, self.mysql_port,
                           self.heartbeat_period, 1, self.apply_timeout,
                           self.catch_up_timeout, self.semi_sync_timeout)


_REQUIRED = ("bucket", "key", "mysql_user", "mysql_password", "replication_user",
             "replication_password", "state_dir")
_NUMBERS = {"mysql_port": (1, 65535), "connect_timeout": (0.05, 60), "read_timeout": (0.05, 600),
            "interval": (0.05, 3600), "rounds": (1, 1000), "silence": (0.1, 3600),
            "anti_flap_window": (0, 10 ** 7), "config_poll_interval": (0.1, 3600),
            "heartbeat_period": (0.1, 3600), "apply_timeout": (1, 86400),
            "catch_up_timeout": (1, 86400), "semi_sync_timeout": (0.1, 3600),
            "retry_interval": (0.1, 3600), "switchover_max_lag": (0, 86400)}


def parse_config(data: Any, source: str = "configuration") -> WatcherConfig:
    """A WatcherConfig from the parsed JSON, or WatcherError naming every bad field."""
    if not isinstance(data, Mapping):
        raise WatcherError(f"{source}: expected a JSON object")
    known = set(WatcherConfig.__dataclass_fields__)
    problems = [f"unknown field '{k}'" for k in sorted(set(data) - known)]
    problems += [f"field '{k}' is required" for k in _REQUIRED
                 if not isinstance(data.get(k), str) or not data.get(k)]
    for name, (low, high) in _NUMBERS.items():
        value = data.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not low <= value <= high):
            problems.append(f"field '{name}' must be a number from {low} to {high}, "
                            f"got {value!r}")
    clusters = data.get("clusters", [])
    if not isinstance(clusters, list) or not all(isinstance(c, str) for c in clusters):
        problems.append("field 'clusters' must be a list of cluster names")
    fence = data.get("fence", {})
    if not isinstance(fence, Mapping) or fence.get("method", "none") not in (
            "none", "docker", "ec2"):
        problems.append("field 'fence' must be an object whose method is none, docker or ec2")
    env = data.get("aws_environment", {})
    if not isinstance(env, Mapping) or not all(
            k in AWS_ENVIRONMENT and isinstance(v, str) for k, v in env.items()):
        problems.append("field 'aws_environment' must map " + ", ".join(AWS_ENVIRONMENT)
                        + " to strings")
    if problems:
        raise WatcherError(f"{source}: " + "; ".join(problems))
    values = {k: v for k, v in data.items() if k in known}
    values["clusters"] = tuple(clusters)
    if values.get("rounds") is not None:
        values["rounds"] = int(values["rounds"])
    return WatcherConfig(**values)


def read_config(path: str) -> WatcherConfig:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except OSError as exc:
        raise WatcherError(f"cannot read the configuration {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise WatcherError(f"{path}: not JSON: {exc}") from None
    return parse_config(data, path)


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


# --------------------------------------------------------------------------- logging


def log_event(level: str, event: str, **fields: Any) -> None:
    """One line per decision: event=... key=value (values JSON-quoted when needed)."""
    parts = [f"event={event}"]
    for key, value in fields.items():
        if value is None:
            continue
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        if not text or any(c in text for c in ' "=\n'):
            text = json.dumps(text)
        parts.append(f"{key}={text}")
    log.log(logging.getLevelName(level.upper()), " ".join(parts))


class _UTCFormatter(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        return utc_stamp(record.created)


def setup_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_UTCFormatter("%(asctime)s %(levelname)s %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)


# --------------------------------------------------------------------------- servers


class Servers:
    """Connections to the database servers of the global config with the watcher's account.
    `probe` keeps one connection per server between rounds (a dropped one is reopened the
    next round); `connect` opens a fresh one for the steps of a journal."""

    def __init__(self, config: WatcherConfig, addresses: Callable[[], Mapping[str, str]],
                 driver: Any = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.addresses = addresses
        self.clock = clock
        self._driver = driver
        self._conns: dict[str, Any] = {}
        self._flavors: dict[str, Any] = {}
        self._lock = threading.Lock()

    @property
    def driver(self) -> Any:
        if self._driver is None:
            import pymysql  # on the monitor host only; tests pass a fake driver
            self._driver = pymysql
        return self._driver

    def connect(self, server: str) -> Any:
        address = self.addresses().get(server, server)
        return self.driver.connect(host=address, port=self.config.mysql_port,
                                   user=self.config.mysql_user,
                                   password=self.config.mysql_password,
                                   connect_timeout=self.config.connect_timeout,
                                   read_timeout=max(self.config.read_timeout, 5.0),
                                   write_timeout=max(self.config.read_timeout, 5.0),
                                   autocommit=True, charset="utf8mb4")

    def _quick(self, server: str) -> Any:
        address = self.addresses().get(server, server)
        return self.driver.connect(host=address, port=self.config.mysql_port,
                                   user=self.config.mysql_user,
                                   password=self.config.mysql_password,
                                   connect_timeout=self.config.connect_timeout,
                                   read_timeout=self.config.read_timeout,
                                   write_timeout=self.config.read_timeout,
                                   autocommit=True, charset="utf8mb4")

    def probe(self, server: str) -> fo.Observation:
        with self._lock:
            conn = self._conns.pop(server, None)
        try:
            if conn is None:
                conn = self._quick(server)
            obs = observe(conn, server, self.clock(), self._flavors.get(server))
        except Exception as exc:  # any driver error is a failed check of that server
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()
            self._flavors.pop(server, None)
            return failed_observation(server, self.clock(), exc)
        self._flavors[server] = obs.flavor
        with self._lock:
            self._conns[server] = conn
        return obs

    def probe_all(self, servers: Sequence[str]) -> dict[str, fo.Observation]:
        servers = list(dict.fromkeys(servers))
        if not servers:
            return {}
        with ThreadPoolExecutor(max_workers=min(8, len(servers))) as pool:
            return dict(zip(servers, pool.map(self.probe, servers)))  # noqa: B905

    def forget(self, server: str) -> None:
        with self._lock:
            conn = self._conns.pop(server, None)
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()


# --------------------------------------------------------------------------- the document


class Document:
    """The global config, re-read at most every `every` seconds (If-None-Match), shared by
    the cluster threads; the last good copy stays when a read fails."""

    def __init__(self, store: GlobalConfig, every: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.reader = Reader(store, EpochGuard())
        self.every = every
        self.clock = clock
        self._read_at: float | None = None
        self._lock = threading.Lock()
        self._error: str | None = None

    def get(self, force: bool = False) -> dict[str, Any] | None:
        with self._lock:
            now = self.clock()
            if force or self._read_at is None or now - self._read_at >= self.every:
                self._read_at = now
                try:
                    self.reader.poll()
                    if self._error:
                        log_event("info", "global_config_readable_again")
                    self._error = None
                except GlobalConfigError as exc:
                    if str(exc) != self._error:
                        log_event("error", "global_config_unreadable", error=str(exc),
                                  keeping_epoch=(self.reader.doc or {}).get("epoch"))
                    self._error = str(exc)
            return self.reader.doc

    def addresses(self) -> dict[str, str]:
        doc = self.reader.doc or {}
        return {k: str(v.get("address")) for k, v in (doc.get("servers") or {}).items()
                if isinstance(v, Mapping) and v.get("address")}

    def publish(self, journal: fo.Journal, updated_by: str) -> str:
        """Write the journal's new positions (and fence its old master) with epoch + 1: one
        write moves every product of the cluster."""
        def change(doc: dict[str, Any]) -> tuple[dict[str, Any], bool]:
            new, _ = set_cluster(doc, journal.cluster, db=journal.new)
            for server in journal.fenced:
                if server in new["servers"]:
                    new, _ = set_server(new, server, state="fenced")
            return new, new != doc
        result = self.store.update(change, updated_by)
        self.get(force=True)
        if not result.changed:
            return f"already published (epoch {result.epoch})"
        return f"global config epoch {result.epoch}: master {journal.new.get('master')}"


def fenced_servers(doc: Mapping[str, Any], cluster: str) -> list[str]:
    """The fenced db servers of a cluster (through their products: a fenced server holds no
    position)."""
    return sorted(s for s, v in (doc.get("servers") or {}).items()
                  if v.get("state") == "fenced" and v.get("role") == "db"
                  and cluster_of_server(doc, s) == cluster)


def managed_clusters(doc: Mapping[str, Any] | None, config: WatcherConfig) -> list[str]:
    clusters = (doc or {}).get("clusters") or {}
    if config.clusters:
        return [c for c in config.clusters if c in clusters]
    return sorted(c for c, v in clusters.items() if (v.get("db") or {}).get("master"))


def cluster_named(doc: Mapping[str, Any] | None, cluster: str | None,
                  product: str | None) -> str:
    """The cluster an operator's command names: given, or the one of `product`."""
    if cluster:
        return cluster
    entry = ((doc or {}).get("products") or {}).get(product or "")
    if entry is None:
        raise WatcherError(f"product '{product}' is not in the global config")
    if not entry.get("cluster"):
        raise WatcherError(f"product '{product}' has no database cluster")
    return str(entry["cluster"])


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
    return round(_epoch(end) - _epoch(start), 3)


def _epoch(stamp: str) -> float:
    """Seconds since 1970 of a utc_stamp()."""
    return datetime.strptime(stamp, STAMP_FORMAT).replace(
        tzinfo=timezone.utc).timestamp()  # noqa: UP017


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


# --------------------------------------------------------------------------- entry point


def build(config: WatcherConfig) -> Watcher:
    for name, value in config.aws_environment.items():
        os.environ.setdefault(name, value)
    store = GlobalConfig(make_client(config.region, config.endpoint_url, max_attempts=2,
                                     connect_timeout=2, read_timeout=5),
                         config.bucket, config.key)
    return Watcher(config, store, make_fencer(config.fence))


def check(state: Mapping[str, Any], max_age: float, now: float) -> tuple[int, str]:
    """Nagios: (exit code, one line) from the state file."""
    updated = state.get("updated_at")
    if not updated:
        return 3, "UNKNOWN: no state written yet"
    age = now - _epoch(updated)
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


def _which_cluster(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--cluster", help="the database cluster")
    which.add_argument("--product", help="a product: its database cluster")


def _document_for(config: WatcherConfig) -> dict[str, Any] | None:
    """The global config, read once (for an operator's command naming a product)."""
    return build(config).document.get(force=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROGRAM, description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="configuration file (JSON)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="watch the masters and fail over (the service)")
    s = sub.add_parser("switchover", help="planned switchover of one cluster's master")
    _which_cluster(s)
    s.add_argument("--new-master")
    a = sub.add_parser("ack", help="acknowledge the last automatic failover (anti-flap)")
    _which_cluster(a)
    a.add_argument("--journal", help="only this failover (default: the last one)")
    b = sub.add_parser("abandon", help="give up an unfinished failover or switchover (the "
                                       "operator takes over)")
    _which_cluster(b)
    b.add_argument("--reason", required=True)
    sub.add_parser("status", help="print the state file")
    c = sub.add_parser("check", help="Nagios plugin: the watcher's state")
    c.add_argument("--max-age", type=float, default=30.0)
    sub.add_parser("check-config", help="check the configuration file")
    args = parser.parse_args(argv)
    setup_logging()
    try:
        config = read_config(args.config)
        if args.command == "check-config":
            print(f"{args.config}: ok")
            return 0
        if args.command in ("status", "check", "ack", "abandon"):
            state = StateDir(config.state_dir)
            if args.command in ("abandon", "ack"):
                name = args.cluster or cluster_named(_document_for(config), None, args.product)
            if args.command == "abandon":
                print(f"{abandon(state, name, args.reason)}: abandoned")
                return 0
            if args.command == "ack":
                state.ack(name, args.journal)
                print(f"cluster {name}: acknowledgement written; the watcher takes it at its "
                      "next round")
                return 0
            if args.command == "status":
                print(json.dumps(state.load_state(), indent=2, sort_keys=True))
                return 0
            code, line = check(state.load_state(), args.max_age, time.time())
            print(line)
            return code
        watcher = build(config)
        if args.command == "switchover":
            name = cluster_named(watcher.document.get(force=True), args.cluster, args.product)
            print(json.dumps(switchover(watcher, name, args.new_master), indent=2))
            return 0
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        watcher.run(stop)
        return 0
    except (WatcherError, fo.FailoverError, GlobalConfigError) as exc:
        log_event("error", "refused", error=str(exc))
        print(f"{PROGRAM}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
