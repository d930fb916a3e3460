"""Automated database failover: the decisions, with no I/O.

The failover watcher (roles/failover_watcher, host_programs/failover/watcher.py) and the
planned switchover (playbooks/failover.yml) feed this module what they observed of each
database server and get back decisions; host_programs/failover/steps.py carries the decisions
out against the servers. Everything here is a pure function or a small state machine with
an explicit clock, so every decision is unit-tested with made-up observations.

- `MasterHealth`: is the master dead? A direct check every round, plus the view of every
  replica that replicates from the master (its IO thread, and whether events or heartbeats
  still arrive). Dead only when the direct check failed `rounds` times in a row AND no
  replica still hears the master AND at least one replica was asked (quorum): one blocked
  network path (watcher <-> master) never causes a failover. A master that restarted (its
  uptime went back) is a failed master whatever the replicas say: it may have lost
  transactions it acknowledged, or hold some no replica has. The exception is the whole
  cluster restarting (a power cut, the sandbox's host rebooted): when every replica that
  answers restarted after the master's previous start too, no replica kept running through
  the master's absence, there is nothing better to fail over to, and the master stays.
- `choose`: the new master - the most advanced replica by GTID among the eligible ones
  (candidate, then slave candidate; the backup replica never), refusing a replica with
  errant transactions or a broken SQL thread. When a replica that may not be promoted (the
  backup) received more than the chosen one, the chosen one first copies the difference
  from it, so an acknowledged write that reached only that replica is not lost. No
  eligible replica: no choice, and the caller changes nothing.
- `failover_plan` / `switchover_plan`: the steps, in order, as a journal (`Journal`) that a
  restarted watcher resumes: fence -> apply relay log -> catch up -> promote -> publish
  (global config epoch + 1) -> repoint the acknowledging replica (semi-sync) -> wait for
  semi-sync -> repoint the other replicas (the chained one and the backup too) -> power off.
- `AntiFlap`: after an automatic failover, no second one for a window unless an operator
  acknowledged it.

Positions are the global config's (clusters.<name>.db): master, candidate, slave_candidate
(replicates from the candidate), backup (replicates from the master, never promoted). One
cluster serves one or several products; every decision is per cluster. No Ansible imports;
runs on Python 3.9+ (EL 9 monitor hosts).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from module_utils.mysql_flavor import (
    Flavor,
    errant_gtids,
    gtid_subset,
    parse_mariadb_gtids,
    parse_mysql_gtid_set,
)

POSITIONS = ("master", "candidate", "slave_candidate", "backup")
# Positions that may become master, most preferred first. The backup replica never does.
ELIGIBLE = ("candidate", "slave_candidate")
# position -> the position it replicates from
SOURCE_OF = {"candidate": "master", "backup": "master", "slave_candidate": "candidate"}

ALIVE = "alive"
SUSPECT = "suspect"
DEAD = "dead"
UNKNOWN = "unknown"

FAILOVER = "failover"
SWITCHOVER = "switchover"

PENDING = "pending"
RUNNING = "running"
DONE = "done"
FAILED = "failed"
ABORTED = "aborted"


class FailoverError(Exception):
    """A decision cannot be made from what was given; the message names cluster and server."""


# ---------------------------------------------------------------------------------------------
# GTID positions: which server has more


def domain_positions(text: str | None) -> dict[int, int]:
    """MariaDB: the highest sequence number of each replication domain in a GTID list.
    Within a domain, sequence numbers grow across masters (gtid_strict_mode), so this is the
    position whoever wrote the transactions."""
    out: dict[int, int] = {}
    for (domain, _server), seq in parse_mariadb_gtids(text).items():
        out[domain] = max(seq, out.get(domain, -1))
    return out


def covers(have: str | None, want: str | None, flavor: Flavor) -> bool:
    """Whether a server at position `have` has every transaction of position `want`.
    MariaDB: per domain, sequence numbers (positions such as gtid_current_pos, Gtid_IO_Pos).
    MySQL: GTID set inclusion."""
    if flavor.is_mariadb:
        mine = domain_positions(have)
        return all(mine.get(d, -1) >= seq for d, seq in domain_positions(want).items())
    return gtid_subset(want, have, flavor)


def join_positions(parts: Iterable[str | None], flavor: Flavor) -> str:
    """One position holding every transaction of `parts` (MariaDB: the highest sequence of
    each domain, keeping the GTID that carries it; MySQL: the union of the sets)."""
    texts = [p for p in parts if p]
    if not flavor.is_mariadb:
        merged = parse_mysql_gtid_set(",".join(texts))
        return ",".join(src + "".join(f":{a}" if a == b else f":{a}-{b}" for a, b in ivs)
                        for src, ivs in sorted(merged.items()))
    best: dict[int, tuple[int, int]] = {}
    for text in texts:
        for (domain, server), seq in parse_mariadb_gtids(text).items():
            if seq > best.get(domain, (0, -1))[1]:
                best[domain] = (server, seq)
    return ",".join(f"{d}-{s}-{n}" for d, (s, n) in sorted(best.items()))


def _score(position: str | None, flavor: Flavor) -> int:
    """A number that grows with a position, to order positions no one covers entirely."""
    if flavor.is_mariadb:
        return sum(domain_positions(position).values())
    return sum(b - a + 1 for ivs in parse_mysql_gtid_set(position).values() for a, b in ivs)


def gtid_state(gtid: Mapping[str, str], flavor: Flavor | None) -> str:
    """Every origin's last transaction a server has, from a mysql_flavor.gtid_position()
    answer. MariaDB: gtid_binlog_state joined with gtid_current_pos and gtid_slave_pos, per
    domain and server - a replica seeded from a copy (RESET MASTER, then gtid_slave_pos set)
    has the copy's history only in gtid_slave_pos. MySQL: gtid_executed."""
    if flavor is None or not flavor.is_mariadb:
        return str(gtid.get("executed") or gtid.get("binlog_state") or "")
    best: dict[tuple[int, int], int] = {}
    for key in ("binlog_state", "current", "slave", "binlog"):
        for pair, seq in parse_mariadb_gtids(gtid.get(key)).items():
            best[pair] = max(seq, best.get(pair, -1))
    return ",".join(f"{d}-{s}-{n}" for (d, s), n in sorted(best.items()))


def missing_from(part: str | None, whole: str | None, flavor: Flavor) -> str:
    """The transactions of GTID state `part` that a server with state `whole` does not have
    ('' when none). MySQL: set difference. MariaDB: a server keeps only the last GTID of each
    domain and origin, and a server seeded from a copy keeps only the copy's position per
    domain; so (d, s, n) counts as missing only when `whole` has neither origin s up to n nor
    any transaction of domain d as far as n. A transaction written on a replica while it
    followed the master (same sequence number as the master's next one) would stop its SQL
    thread under gtid_strict_mode, which is refused on its own."""
    if not flavor.is_mariadb:
        return errant_gtids(part, whole, flavor)
    have, reach = parse_mariadb_gtids(whole), domain_positions(whole)
    return ",".join(f"{d}-{s}-{n}" for (d, s), n in parse_mariadb_gtids(part).items()
                    if have.get((d, s), -1) < n and reach.get(d, -1) < n)


def not_applied_by(part: str | None, whole: str | None, flavor: Flavor) -> str:
    """The transactions of GTID state `part` (a server's own history) that a server with state
    `whole` never applied: the check before a server's data is thrown away (rejoin). MariaDB:
    (d, s, n) is missing when `whole` knows origin s in domain d only up to a lower number (its
    later transactions came from another origin: the two diverged), or, not knowing origin s
    at all, has not reached n in domain d. MySQL: set difference."""
    if not flavor.is_mariadb:
        return errant_gtids(part, whole, flavor)
    have, reach = parse_mariadb_gtids(whole), domain_positions(whole)
    out = []
    for (d, s), n in parse_mariadb_gtids(part).items():
        known = have.get((d, s))
        if (known is not None and known < n) or (known is None and reach.get(d, -1) < n):
            out.append(f"{d}-{s}-{n}")
    return ",".join(out)


def without_origin(gtids: str | None, origin: str | None, flavor: Flavor) -> str:
    """The part of a GTID state written by servers other than `origin` (MariaDB: a
    server_id; MySQL: a server_uuid)."""
    if origin is None or origin == "":
        return gtids or ""
    if flavor.is_mariadb:
        return ",".join(f"{d}-{s}-{n}" for (d, s), n in parse_mariadb_gtids(gtids).items()
                        if str(s) != str(origin))
    merged = parse_mysql_gtid_set(gtids)
    return ",".join(src + "".join(f":{a}" if a == b else f":{a}-{b}" for a, b in ivs)
                    for src, ivs in sorted(merged.items()) if src != str(origin).lower())


# ---------------------------------------------------------------------------------------------
# Observations and the cluster


@dataclass(frozen=True)
class Observation:
    """What one round learned from one server. `at` is the watcher's monotonic clock.

    gtid: mysql_flavor.gtid_position() (MariaDB current/slave/binlog/binlog_state, MySQL
    executed/purged); replica: mysql_flavor.replication_status() (normalised); origin: the
    server's GTID origin (MariaDB server_id, MySQL server_uuid); heartbeats: heartbeats
    received from its source so far, heartbeat_period: seconds between them (0: off)."""

    server: str
    at: float
    ok: bool
    error: str = ""
    flavor: Flavor | None = None
    read_only: bool | None = None
    uptime: float | None = None
    origin: str | None = None
    gtid: Mapping[str, str] = field(default_factory=dict)
    replica: Mapping[str, Any] | None = None
    heartbeats: int | None = None
    heartbeat_period: float | None = None

    def executed(self) -> str:
        return str(self.gtid.get("current") or self.gtid.get("executed") or "")

    def binlog_state(self) -> str:
        """Every origin's last transaction (see gtid_state): the input of the
        errant-transaction check."""
        return gtid_state(self.gtid, self.flavor)

    def received(self) -> str:
        """Executed plus what the IO thread wrote to the relay log but was not applied. With
        both replication threads stopped the relay log counts for nothing: with GTID, MariaDB
        discards it when a thread starts again."""
        replica = self.replica or {}
        io_pos = replica.get("gtid_io_pos") or ""
        if replica.get("io_thread", "No") == "No" and not replica.get("sql_running"):
            io_pos = ""
        if self.flavor is None:
            return self.executed()
        return join_positions([self.executed(), io_pos], self.flavor)

    def io_running(self) -> bool:
        return bool(self.replica and self.replica.get("io_running"))

    def source(self) -> str | None:
        if not self.replica or not self.replica.get("configured"):
            return None
        return str(self.replica.get("source_host") or "") or None

    def sql_error(self) -> str:
        replica = self.replica or {}
        if replica.get("last_sql_errno"):
            return f"error {replica['last_sql_errno']}: {replica.get('last_sql_error', '')}"
        return ""


@dataclass(frozen=True)
class Cluster:
    """A database cluster's positions (the global config's clusters.<name>.db), the
    addresses of its servers (servers.<id>.address) and the products it serves (every
    product that names it: one failover moves them all)."""

    name: str
    positions: Mapping[str, str | None]
    addresses: Mapping[str, str]
    products: tuple[str, ...] = ()

    @classmethod
    def from_document(cls, doc: Mapping[str, Any], name: str) -> Cluster:
        """The cluster `name` of a version 2 global config document."""
        clusters = doc.get("clusters") or {}
        if name not in clusters:
            raise FailoverError(f"cluster '{name}' is not in the global config")
        db = clusters[name].get("db") or {}
        positions = {p: db.get(p) for p in POSITIONS}
        servers = doc.get("servers") or {}
        addresses: dict[str, str] = {}
        for position, server in positions.items():
            if server is None:
                continue
            entry = servers.get(server)
            if not entry or not entry.get("address"):
                raise FailoverError(f"cluster '{name}': {position} '{server}' has no "
                                    "address in the global config servers")
            addresses[server] = str(entry["address"])
        products = tuple(sorted(p for p, v in (doc.get("products") or {}).items()
                                if (v or {}).get("cluster") == name))
        return cls(name, positions, addresses, products)

    @property
    def master(self) -> str | None:
        return self.positions.get("master")

    def position_of(self, server: str) -> str | None:
        return next((p for p, s in self.positions.items() if s == server), None)

    def members(self) -> list[str]:
        return [s for p in POSITIONS if (s := self.positions.get(p))]

    def replicas(self) -> list[str]:
        return [s for s in self.members() if s != self.master]

    def names(self, server: str | None) -> set[str]:
        """The ways a replica's status may name `server`: its id and its address."""
        if not server:
            return set()
        return {server, self.addresses.get(server, server)}

    def downstream(self, server: str) -> list[str]:
        """Servers that replicate, directly or through others, from `server`."""
        position = self.position_of(server)
        below = [self.positions[p] for p, src in SOURCE_OF.items()
                 if src == position and self.positions.get(p)]
        return [s for s in below if s] + [d for s in below if s for d in self.downstream(s)]


# ---------------------------------------------------------------------------------------------
# Is the master dead?


@dataclass(frozen=True)
class HealthSettings:
    """rounds: failed direct checks in a row before the master may be declared dead;
    silence: seconds without an event or heartbeat after which a replica no longer hears
    its source (at least 2.5 heartbeat periods of that replica are allowed);
    restart_slack: seconds of disagreement tolerated when the master's start time is
    computed from its uptime;
    cluster_restart_window: a master that restarted is not failed when every replica that
    answers started at most this many seconds before it (the whole cluster restarted)."""

    rounds: int = 3
    silence: float = 2.0
    restart_slack: float = 3.0
    cluster_restart_window: float = 120.0

    def __post_init__(self) -> None:
        if self.rounds < 1:
            raise FailoverError(f"rounds must be at least 1, got {self.rounds}")
        if self.silence <= 0:
            raise FailoverError(f"silence must be positive, got {self.silence}")


@dataclass(frozen=True)
class Verdict:
    state: str                              # ALIVE, SUSPECT, DEAD, UNKNOWN
    reasons: tuple[str, ...]
    failed_rounds: int = 0
    first_failure_at: float | None = None   # monotonic time of the first failed check
    witnesses: Mapping[str, str] = field(default_factory=dict)
    restarted: bool = False
    cluster_restarted: bool = False    # the master restarted with every replica: not failed


@dataclass
class _Progress:
    heartbeats: int | None
    io_pos: str
    changed_at: float


class MasterHealth:
    """The verdict on one cluster's master, round after round.

    `started_at` (wall-clock seconds when the master process started, from uptime) may be
    given from a previous run of the watcher so that a restart while the watcher itself was
    down is still seen."""

    def __init__(self, cluster: Cluster, settings: HealthSettings | None = None,
                 started_at: float | None = None) -> None:
        self.cluster = cluster
        self.settings = settings or HealthSettings()
        self.master = cluster.master
        self.started_at = started_at
        self.failures = 0
        self.first_failure_at: float | None = None
        self._progress: dict[str, _Progress] = {}

    def _witness(self, obs: Observation) -> tuple[bool | None, str]:
        """(True: hears the master, False: does not, None: cannot tell), and why."""
        if not obs.ok:
            return None, f"unreachable ({obs.error})"
        if obs.source() not in self.cluster.names(self.master):
            return None, f"does not replicate from the master (source {obs.source()})"
        replica = obs.replica or {}
        if not obs.io_running():
            self._progress.pop(obs.server, None)
            error = replica.get("last_io_error") or replica.get("io_state") or ""
            return False, f"IO thread {replica.get('io_thread', 'No')}" + (
                f" ({error})" if error else "")
        io_pos = str(replica.get("gtid_io_pos") or "")
        previous = self._progress.get(obs.server)
        if previous is None or previous.heartbeats != obs.heartbeats or previous.io_pos != io_pos:
            self._progress[obs.server] = _Progress(obs.heartbeats, io_pos, obs.at)
            return True, "receiving events or heartbeats"
        quiet = obs.at - previous.changed_at
        period = obs.heartbeat_period or 0.0
        if period <= 0 or obs.heartbeats is None:
            return True, (f"IO thread running, nothing received for {quiet:.1f} s, but no "
                          "heartbeats are configured to tell a quiet master from a dead one")
        limit = max(self.settings.silence, 2.5 * period)
        if quiet <= limit:
            return True, f"IO thread running, last event or heartbeat {quiet:.1f} s ago"
        return False, (f"IO thread running but nothing received for {quiet:.1f} s "
                       f"(heartbeat every {period:g} s)")

    def _cluster_restarted(self, replicas: Sequence[Observation], wall_now: float) -> bool:
        """Every replica that answers started no earlier than `cluster_restart_window` seconds
        before the master's new start, and at least one answers: the cluster restarted as a
        whole, no replica ran through the master's absence."""
        assert self.started_at is not None
        earliest = self.started_at - self.settings.cluster_restart_window
        answering = [obs for obs in replicas if obs.ok and obs.uptime is not None]
        return bool(answering) and all(wall_now - obs.uptime >= earliest for obs in answering)

    def _restarted(self, obs: Observation, wall_now: float) -> bool:
        if obs.uptime is None:
            return False
        started = wall_now - obs.uptime
        previous = self.started_at
        if previous is not None and started > previous + self.settings.restart_slack:
            self.started_at = started
            return True
        # uptime has a resolution of one second: keep the earliest estimate
        self.started_at = started if previous is None else min(previous, started)
        return False

    def observe(self, master: Observation, replicas: Sequence[Observation],
                wall_now: float) -> Verdict:
        """The verdict after one round: the direct check of the master (`master`) and every
        replica of the cluster (only those that replicate from the master are witnesses)."""
        witnesses: dict[str, str] = {}
        views: dict[str, bool | None] = {}
        for obs in replicas:
            views[obs.server], witnesses[obs.server] = self._witness(obs)
        if master.ok:
            if self._restarted(master, wall_now):
                up = f"up {master.uptime:.0f} s"
                if self._cluster_restarted(replicas, wall_now):
                    self.failures, self.first_failure_at = 0, None
                    return Verdict(ALIVE, (f"master '{self.master}' restarted ({up}) together "
                                           "with every replica that answers: the whole cluster "
                                           "restarted, the master stays",), 0, None, witnesses,
                                   cluster_restarted=True)
                self.failures, self.first_failure_at = 0, master.at
                return Verdict(DEAD, (f"master '{self.master}' restarted ({up}): a crashed "
                                      "master is a failed master, whatever its replicas see",),
                               0, master.at, witnesses, True)
            self.failures, self.first_failure_at = 0, None
            reasons = ["direct check passed"]
            if master.read_only:
                reasons.append(f"master '{self.master}' is read-only: writes are refused")
            return Verdict(ALIVE, tuple(reasons), 0, None, witnesses)
        self.failures += 1
        if self.first_failure_at is None:
            self.first_failure_at = master.at
        failed = f"direct check failed {self.failures} time(s) in a row ({master.error})"
        hearing = sorted(s for s, v in views.items() if v is True)
        deaf = sorted(s for s, v in views.items() if v is False)
        if self.failures < self.settings.rounds:
            return Verdict(SUSPECT, (failed,), self.failures, self.first_failure_at, witnesses)
        if hearing:
            return Verdict(SUSPECT, (failed, "replicas still hear the master: "
                                    + ", ".join(hearing)), self.failures,
                           self.first_failure_at, witnesses)
        if not deaf:
            return Verdict(UNKNOWN, (failed, "no replica of the master could be asked: the "
                                     "watcher may be the one cut off"), self.failures,
                           self.first_failure_at, witnesses)
        return Verdict(DEAD, (failed, "no replica hears the master: " + ", ".join(
            f"{s} ({witnesses[s]})" for s in deaf)), self.failures, self.first_failure_at,
            witnesses)


# ---------------------------------------------------------------------------------------------
# Who becomes master


@dataclass(frozen=True)
class Choice:
    new_master: str | None
    positions: Mapping[str, str | None] = field(default_factory=dict)
    catch_up_from: str | None = None    # a more advanced replica to copy the difference from
    target: str = ""                    # position the new master must apply before promotion
    acker: str | None = None            # the replica that acknowledges semi-sync commits
    reasons: tuple[str, ...] = ()
    refused: Mapping[str, str] = field(default_factory=dict)


def errant(obs: Observation, reference: str, master_origin: str | None,
           flavor: Flavor) -> str:
    """Transactions of `obs` that did not come from the master (`master_origin`) and are not
    in `reference` (the master's last known GTID state): written on a replica directly."""
    return missing_from(without_origin(obs.binlog_state(), master_origin, flavor), reference,
                        flavor)


def _errant_reference(cluster: Cluster, server: str, observations: Mapping[str, Observation],
                      master_state: str | None, flavor: Flavor) -> str:
    if master_state:
        return master_state
    # The master was never seen alive: compare with the replicas that are not fed by this
    # server (a chained replica copies its errant transactions too).
    below = set(cluster.downstream(server))
    others = [o.binlog_state() for s, o in observations.items()
              if s != server and s not in below and o.ok]
    return ",".join(x for x in others if x)


def _most_advanced(candidates: Sequence[Observation], flavor: Flavor) -> Observation:
    """The observation whose received position covers all others (or, when none does, the
    highest score); the first of equals wins, so callers order by preference."""
    for obs in candidates:
        if all(covers(obs.received(), other.received(), flavor) for other in candidates):
            return obs
    return max(candidates, key=lambda o: _score(o.received(), flavor))


def _positions_after(cluster: Cluster, new_master: str, successors: Sequence[str]
                     ) -> dict[str, str | None]:
    positions: dict[str, str | None] = {p: None for p in POSITIONS}
    positions["master"] = new_master
    positions["backup"] = cluster.positions.get("backup")
    for index, server in enumerate(successors[:len(ELIGIBLE)]):
        positions[ELIGIBLE[index]] = server
    return positions


def acker_of(positions: Mapping[str, str | None]) -> str | None:
    """The replica that acknowledges the master's commits: the candidate, else the backup."""
    return positions.get("candidate") or positions.get("backup")


def choose(cluster: Cluster, observations: Mapping[str, Observation], flavor: Flavor,
           master_origin: str | None = None, master_state: str | None = None,
           excluded: Iterable[str] = ()) -> Choice:
    """The new master after the master failed, from this round's observations of the
    replicas. `master_origin` / `master_state`: the failed master's GTID origin and its last
    known GTID state (for the errant-transaction check); `excluded`: servers that must not be
    promoted (e.g. fenced). With no eligible replica, `new_master` is None and `refused` says
    why for each server."""
    refused: dict[str, str] = {}
    eligible: list[Observation] = []
    excluded = set(excluded)
    for position in POSITIONS[1:]:
        server = cluster.positions.get(position)
        if not server:
            continue
        obs = observations.get(server)
        if position not in ELIGIBLE:
            refused[server] = f"the {position} replica is never promoted"
        elif server in excluded:
            refused[server] = "fenced"
        elif obs is None or not obs.ok:
            refused[server] = "unreachable" + (f" ({obs.error})" if obs else "")
        elif obs.sql_error():
            refused[server] = f"its SQL thread stopped with {obs.sql_error()}"
        else:
            reference = _errant_reference(cluster, server, observations, master_state, flavor)
            bad = errant(obs, reference, master_origin, flavor)
            if bad:
                refused[server] = f"errant transactions {bad} (never on the master)"
            else:
                eligible.append(obs)
    if not eligible:
        return Choice(None, reasons=(f"cluster '{cluster.name}': no replica can be "
                                     "promoted: " + "; ".join(f"{s}: {r}" for s, r in
                                                              refused.items()),),
                      refused=refused)
    chosen = _most_advanced(eligible, flavor)
    reasons = [f"'{chosen.server}' ({cluster.position_of(chosen.server)}) is the most advanced "
               f"eligible replica at {chosen.received() or 'nothing'}"]
    # A reachable replica that may not be promoted (or is not eligible) may still hold
    # transactions the chosen one lacks: copy them first. Never from one with errant ones.
    sources = [o for s, o in observations.items() if o.ok and s != cluster.master
               and s in cluster.positions.values() and not o.sql_error()
               and not errant(o, _errant_reference(cluster, s, observations, master_state,
                                                   flavor), master_origin, flavor)]
    best = _most_advanced([chosen] + [o for o in sources if o.server != chosen.server], flavor)
    catch_up_from = None
    target = chosen.received()
    if not covers(chosen.received(), best.received(), flavor):
        catch_up_from = best.server
        target = join_positions([chosen.received(), best.received()], flavor)
        reasons.append(f"'{best.server}' received more ({best.received()}): "
                       f"'{chosen.server}' copies the difference from it first")
    successors = [s for p in ELIGIBLE if (s := cluster.positions.get(p))
                  and s != chosen.server and s in {o.server for o in eligible}]
    positions = _positions_after(cluster, chosen.server, successors)
    return Choice(chosen.server, positions, catch_up_from, target, acker_of(positions),
                  tuple(reasons), refused)


def switchover_positions(cluster: Cluster, new_master: str) -> dict[str, str | None]:
    """Positions after a planned switchover to `new_master`: the old master becomes the
    candidate (it acknowledges commits), the other eligible replica the slave candidate."""
    if cluster.position_of(new_master) not in ELIGIBLE:
        raise FailoverError(f"cluster '{cluster.name}': '{new_master}' is "
                            f"{cluster.position_of(new_master) or 'not in the cluster'}; only "
                            f"the {' or '.join(ELIGIBLE)} can become master")
    others = [s for p in ELIGIBLE if (s := cluster.positions.get(p)) and s != new_master]
    return _positions_after(cluster, new_master, [s for s in [cluster.master, *others] if s])


def source_in(positions: Mapping[str, str | None], server: str) -> str | None:
    """The server `server` replicates from in `positions`."""
    position = next((p for p, s in positions.items() if s == server), None)
    if position not in SOURCE_OF:
        return None
    return positions.get(SOURCE_OF[position]) or positions.get("master")


# ---------------------------------------------------------------------------------------------
# The plan, as a journal of steps


@dataclass
class Step:
    name: str
    server: str | None = None
    args: dict[str, Any] = field(default_factory=dict)
    status: str = PENDING
    attempts: int = 0
    started_at: str | None = None
    finished_at: str | None = None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "server": self.server, "args": copy.deepcopy(self.args),
                "status": self.status, "attempts": self.attempts,
                "started_at": self.started_at, "finished_at": self.finished_at,
                "detail": self.detail}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Step:
        return cls(str(data["name"]), data.get("server"), dict(data.get("args") or {}),
                   str(data.get("status") or PENDING), int(data.get("attempts") or 0),
                   data.get("started_at"), data.get("finished_at"), str(data.get("detail") or ""))


@dataclass
class Journal:
    """A failover or switchover in progress: what was decided and which steps are done.
    Written to disk before and after every step, so that a restarted watcher finishes it."""

    id: str
    cluster: str
    kind: str
    old: dict[str, str | None]
    new: dict[str, str | None]
    addresses: dict[str, str]
    steps: list[Step]
    started_at: str
    reasons: list[str] = field(default_factory=list)
    status: str = RUNNING
    finished_at: str | None = None
    error: str = ""
    detected_at: str | None = None
    fenced: list[str] = field(default_factory=list)
    products: list[str] = field(default_factory=list)

    def next_step(self) -> Step | None:
        return next((s for s in self.steps if s.status != DONE), None)

    @property
    def finished(self) -> bool:
        return self.status in (DONE, ABORTED)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "cluster": self.cluster, "products": list(self.products),
                "kind": self.kind,
                "old": dict(self.old), "new": dict(self.new), "addresses": dict(self.addresses),
                "steps": [s.to_dict() for s in self.steps], "started_at": self.started_at,
                "reasons": list(self.reasons), "status": self.status,
                "finished_at": self.finished_at, "error": self.error,
                "detected_at": self.detected_at, "fenced": list(self.fenced)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Journal:
        # A journal written before clusters named its product; that product's cluster
        # got the product's name when the global config was upgraded.
        data = dict(data)
        if "cluster" not in data and "product" in data:
            data["cluster"], data["products"] = data["product"], [data["product"]]
        for key in ("id", "cluster", "kind", "old", "new", "steps", "started_at"):
            if key not in data:
                raise FailoverError(f"journal {data.get('id', '?')}: field '{key}' is missing")
        if data["kind"] not in (FAILOVER, SWITCHOVER):
            raise FailoverError(f"journal {data['id']}: unknown kind {data['kind']!r}")
        return cls(str(data["id"]), str(data["cluster"]), str(data["kind"]), dict(data["old"]),
                   dict(data["new"]), dict(data.get("addresses") or {}),
                   [Step.from_dict(s) for s in data["steps"]], str(data["started_at"]),
                   list(data.get("reasons") or []), str(data.get("status") or RUNNING),
                   data.get("finished_at"), str(data.get("error") or ""),
                   data.get("detected_at"), list(data.get("fenced") or []),
                   list(data.get("products") or []))


def journal_id(cluster: str, kind: str, wall_time: str) -> str:
    stamp = re.sub(r"[^0-9TZ]", "", wall_time)
    return f"{cluster}-{kind}-{stamp}"


# Positions whose replicas have the semi-sync replica side on (as the mysql role sets them):
# the candidate acknowledges the master's commits; the slave candidate is ready to when its
# source is promoted. The backup replica is asynchronous (unless it is the only one left).
SEMI_SYNC_POSITIONS = ("candidate", "slave_candidate")


def _repoint_steps(positions: Mapping[str, str | None], skip: Iterable[str]) -> list[Step]:
    skip = set(skip)
    steps = []
    for position in ("candidate", "backup", "slave_candidate"):
        server = positions.get(position)
        if server and server not in skip:
            steps.append(Step("repoint", server, {"source": source_in(positions, server),
                                                  "semi_sync": position in SEMI_SYNC_POSITIONS}))
    return steps


def failover_plan(cluster: Cluster, choice: Choice, now: str, reasons: Sequence[str] = (),
                  detected_at: str | None = None) -> Journal:
    """The steps of an automatic failover to `choice.new_master`: fence the old master, let
    the new one apply its relay log (and copy what a more advanced replica has), promote it
    (writable, semi-sync master side on), publish it in the global config, take its old
    replication apart, re-establish semi-sync with the acknowledging replica, repoint the
    other replicas, power the old master off."""
    if not choice.new_master or not cluster.master:
        raise FailoverError(f"cluster '{cluster.name}': no failover without an old and "
                            "a new master")
    old, new = cluster.master, choice.new_master
    positions = dict(choice.positions)
    steps = [Step("fence", old), Step("apply_relay_log", new)]
    if choice.catch_up_from:
        steps.append(Step("catch_up", new, {"source": choice.catch_up_from,
                                            "target": choice.target}))
    steps.append(Step("promote", new, {"target": choice.target}))
    steps.append(Step("publish", None, {"fenced": [old]}))
    # Replication of the new master from the dead one is taken apart only now: STOP SLAVE
    # waits for an IO thread blocked on a frozen or cut-off master (2 s seen), which must
    # not delay the first write. The old master is fenced: nothing can arrive meanwhile.
    steps.append(Step("detach", new))
    acker = choice.acker
    if acker:
        steps.append(Step("repoint", acker, {"source": source_in(positions, acker),
                                             "semi_sync": True}))
        steps.append(Step("wait_semi_sync", new))
    steps += _repoint_steps(positions, skip=[acker] if acker else [])
    steps.append(Step("power_off", old))
    return Journal(journal_id(cluster.name, FAILOVER, now), cluster.name, FAILOVER,
                   dict(cluster.positions), positions, dict(cluster.addresses), steps, now,
                   [*reasons, *choice.reasons], detected_at=detected_at, fenced=[old],
                   products=list(cluster.products))


def switchover_plan(cluster: Cluster, new_master: str, now: str,
                    reasons: Sequence[str] = ()) -> Journal:
    """The steps of a planned switchover: make the master read-only, wait until the new
    master has applied everything it wrote, promote, publish, make the old master the
    acknowledging replica, repoint the others. No fencing: the old master stays a member."""
    if not cluster.master:
        raise FailoverError(f"cluster '{cluster.name}': there is no master to switch from")
    positions = switchover_positions(cluster, new_master)
    old = cluster.master
    steps = [Step("freeze", old), Step("wait_caught_up", new_master, {"from": old}),
             Step("detach", new_master), Step("promote", new_master),
             Step("publish", None, {"fenced": []})]
    acker = acker_of(positions)
    if acker:
        steps.append(Step("repoint", acker, {"source": source_in(positions, acker),
                                             "semi_sync": True}))
        steps.append(Step("wait_semi_sync", new_master))
    steps += _repoint_steps(positions, skip=[acker] if acker else [])
    return Journal(journal_id(cluster.name, SWITCHOVER, now), cluster.name, SWITCHOVER,
                   dict(cluster.positions), positions, dict(cluster.addresses), steps, now,
                   list(reasons), products=list(cluster.products))


# ---------------------------------------------------------------------------------------------
# Anti-flap


@dataclass
class AntiFlap:
    """No second automatic failover of a cluster within `window` seconds of the last one,
    unless an operator acknowledged the last one. Times are wall-clock seconds (they must
    survive a restart of the watcher)."""

    window: float
    last_failover_at: float | None = None
    last_failover_id: str | None = None
    acknowledged: bool = False

    def allowed(self, now: float) -> bool:
        if self.last_failover_at is None or self.acknowledged:
            return True
        return now - self.last_failover_at >= self.window

    def blocked_until(self) -> float | None:
        if self.last_failover_at is None or self.acknowledged:
            return None
        return self.last_failover_at + self.window

    def record(self, journal_id_: str, now: float) -> None:
        self.last_failover_at, self.last_failover_id, self.acknowledged = now, journal_id_, False

    def acknowledge(self, journal_id_: str | None = None) -> bool:
        """Acknowledge the last failover (only it, when an id is given); True when it was."""
        if self.last_failover_id is None:
            return False
        if journal_id_ is not None and journal_id_ != self.last_failover_id:
            return False
        self.acknowledged = True
        return True

    def to_dict(self) -> dict[str, Any]:
        return {"window": self.window, "last_failover_at": self.last_failover_at,
                "last_failover_id": self.last_failover_id, "acknowledged": self.acknowledged}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], window: float) -> AntiFlap:
        return cls(window, data.get("last_failover_at"), data.get("last_failover_id"),
                   bool(data.get("acknowledged")))


# ---------------------------------------------------------------------------------------------
# A returning old master


def fenced_server_action(obs: Observation) -> str | None:
    """What to do with a fenced server that answers again: None when it is harmless
    (read-only and not replicating), else the action, 'make_read_only'."""
    if not obs.ok:
        return None
    if obs.read_only is False:
        return "make_read_only"
    return None
