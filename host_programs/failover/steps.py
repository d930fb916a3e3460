"""Carrying out a failover or switchover journal (host_programs/failover/decide.py) against the
database servers, and observing the servers each round.

Every step is idempotent: a watcher that restarts in the middle of a failover runs the
journal again from its first step that is not done, and a step whose effect is already
there only says so. The servers are reached through `connect(server)` (a DB-API
connection, pymysql in practice), the provider through a `fence.Fencer`, the global config
through a `publish` callable: tests give fakes of all three.

No Ansible imports. Python 3.9+.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, NoReturn, Protocol

from host_programs.failover.decide import (
    ABORTED,
    DONE,
    FAILED,
    FAILOVER,
    RUNNING,
    SWITCHOVER,
    Journal,
    Observation,
    Step,
    covers,
    gtid_state,
    missing_from,
)
from module_utils.mysql_flavor import (
    Connection,
    Flavor,
    change_source_statements,
    execute,
    gtid_origin,
    gtid_position,
    liveness,
    read_only_state,
    read_only_statements,
    replication_status,
    reset_replica_statement,
    semi_sync_statements,
    semi_sync_status,
    server_flavor,
    start_replica_statement,
    stop_replica_statement,
)


def utc_stamp(at: float | None = None) -> str:
    """RFC 3339 UTC time with milliseconds (decisions are seconds apart)."""
    moment = datetime.fromtimestamp(time.time() if at is None else at, timezone.utc)  # noqa: UP017
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


# ---------------------------------------------------------------------------------------------
# Observing a server


def observe(conn: Connection, server: str, at: float, flavor: Flavor | None = None
            ) -> Observation:
    """Everything a round needs from one server (see failover.Observation)."""
    flavor = flavor or server_flavor(conn)
    alive = liveness(conn, flavor)
    return Observation(
        server=server, at=at, ok=True, flavor=flavor,
        read_only=read_only_state(conn, flavor)["read_only"], uptime=alive["uptime"],
        origin=gtid_origin(conn, flavor), gtid=gtid_position(conn, flavor),
        replica=replication_status(conn, flavor), heartbeats=alive["heartbeats"],
        heartbeat_period=alive["heartbeat_period"])


def failed_observation(server: str, at: float, error: BaseException | str) -> Observation:
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return Observation(server=server, at=at, ok=False, error=" ".join(str(text).split())[:300])


# ---------------------------------------------------------------------------------------------
# Running a journal


class Fencer(Protocol):
    """Cuts a server off (isolate) and powers it off, through the provider."""

    isolates: bool

    def isolate(self, server: str) -> str: ...

    def power_off(self, server: str) -> str: ...


class StepFailed(Exception):
    """A step did not complete; the journal stays running and is tried again later."""


class Aborted(Exception):
    """The journal was abandoned before it changed anything that matters."""


@dataclass(frozen=True)
class RunSettings:
    """replication_*: the account replicas use to reach their source; heartbeat_period and
    connect_retry: what every repointed replica gets (short, so the watcher sees a dead
    source quickly); *_timeout: seconds to wait for the new master to apply its relay log,
    to copy the difference from a more advanced replica, for the old master to stop writing
    (switchover) and for semi-sync to come back; catch_up_attempts: tries of that copy
    before the failover goes on without it (loudly); poll: seconds between checks."""

    replication_user: str
    replication_password: str
    port: int = 3306
    heartbeat_period: float = 0.5
    connect_retry: int = 1
    apply_timeout: float = 60.0
    catch_up_timeout: float = 30.0
    catch_up_attempts: int = 2
    semi_sync_timeout: float = 5.0
    freeze_lock_timeout: int = 3
    wait_point: str = "AFTER_SYNC"
    poll: float = 0.05


Log = Callable[..., None]


def _no_log(level: str, event: str, **fields: Any) -> None:
    return None


class Runner:
    """Runs the steps of a journal in order, saving it before and after each step."""

    def __init__(self, connect: Callable[[str], Connection], fencer: Fencer,
                 publish: Callable[[Journal], str], settings: RunSettings,
                 save: Callable[[Journal], None], log: Log = _no_log,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep,
                 stamp: Callable[[], str] = utc_stamp) -> None:
        self.connect = connect
        self.fencer = fencer
        self.publish_fn = publish
        self.settings = settings
        self.save = save
        self.log = log
        self.clock = clock
        self.sleep = sleep
        self.stamp = stamp

    # -- the loop
    def run(self, journal: Journal) -> Journal:
        """Run every step that is not done. Returns the journal, done or aborted; raises
        StepFailed when a step failed and the journal must be tried again."""
        if journal.finished:
            return journal
        journal.status = RUNNING
        while (step := journal.next_step()) is not None:
            step.status, step.started_at = RUNNING, self.stamp()
            step.attempts += 1
            self.save(journal)
            self.log("info", "step_start", cluster=journal.cluster, journal=journal.id,
                     step=step.name, server=step.server, attempt=step.attempts)
            try:
                step.detail = getattr(self, f"_step_{step.name}")(journal, step) or ""
            except Exception as exc:  # every failure is recorded, then decided on
                step.status, step.detail = FAILED, f"{type(exc).__name__}: {exc}"
                self._failed(journal, step, exc)
            step.status, step.finished_at = DONE, self.stamp()
            self.save(journal)
            self.log("info", "step_done", cluster=journal.cluster, journal=journal.id,
                     step=step.name, server=step.server, detail=step.detail)
        journal.status, journal.finished_at = DONE, self.stamp()
        self.save(journal)
        self.log("info", f"{journal.kind}_done", cluster=journal.cluster, journal=journal.id,
                 new_master=journal.new.get("master"))
        return journal

    def _failed(self, journal: Journal, step: Step, exc: Exception) -> NoReturn:
        """Raise StepFailed (try again later) or, when nothing that matters has changed
        yet, abort the journal and raise Aborted."""
        abort = (journal.kind == FAILOVER and step.name == "fence") or (
            journal.kind == SWITCHOVER and step.name in ("freeze", "wait_caught_up"))
        if not abort:
            journal.error = f"step {step.name} ({step.server}): {step.detail}"
            self.save(journal)
            self.log("error", "step_failed", cluster=journal.cluster, journal=journal.id,
                     step=step.name, server=step.server, error=step.detail,
                     attempt=step.attempts)
            raise StepFailed(journal.error) from exc
        if journal.kind == SWITCHOVER:
            step.detail += "; " + self._unfreeze(journal)
        for rest in journal.steps:
            if rest.status != DONE:
                rest.status = ABORTED if rest is not step else FAILED
        journal.status, journal.finished_at = ABORTED, self.stamp()
        journal.error = f"step {step.name} ({step.server}): {step.detail}"
        self.save(journal)
        self.log("critical", f"{journal.kind}_aborted", cluster=journal.cluster,
                 journal=journal.id, step=step.name, server=step.server, error=step.detail)
        raise Aborted(journal.error) from exc

    # -- helpers
    def _address(self, journal: Journal, server: str) -> str:
        return journal.addresses.get(server, server)

    def _wait(self, what: str, timeout: float, check: Callable[[], bool]) -> float:
        start = self.clock()
        while not check():
            if self.clock() - start > timeout:
                raise TimeoutError(f"{what}: not done within {timeout:g} s")
            self.sleep(self.settings.poll)
        return self.clock() - start

    @staticmethod
    def _close(conn: Any) -> None:
        close = getattr(conn, "close", None)
        if close is not None:
            # closing a broken connection may fail; there is nothing more to do with it
            with contextlib.suppress(Exception):
                close()

    def _with(self, server: str, action: Callable[[Connection, Flavor], str]) -> str:
        conn = self.connect(server)
        try:
            return action(conn, server_flavor(conn))
        finally:
            self._close(conn)

    # -- steps of a failover
    def _step_fence(self, journal: Journal, step: Step) -> str:
        server = str(step.server)
        if self.fencer.isolates:
            return self.fencer.isolate(server)
        # No provider can cut it off: only a server that answers and is made read-only is
        # fenced; an unreachable one might come back writable, so the failover stops here.
        def make_read_only(conn: Connection, flavor: Flavor) -> str:
            execute(conn, read_only_statements(flavor, True))
            return "no provider fencing; made read-only over SQL"
        return self._with(server, make_read_only)

    def _step_apply_relay_log(self, journal: Journal, step: Step) -> str:
        def apply(conn: Connection, flavor: Flavor) -> str:
            status = replication_status(conn, flavor)
            if not status["configured"]:
                return "no replication configured (already promoted)"
            if status["last_sql_errno"]:
                raise RuntimeError(f"SQL thread stopped with error {status['last_sql_errno']}: "
                                   f"{status['last_sql_error']}")
            if not status["sql_running"] and status["io_thread"] == "No":
                # Both threads stopped: starting the SQL thread would discard the relay log
                # (GTID mode), so what it holds cannot be applied. Go on from what is applied.
                return self._relay_log_unusable(journal, step, _executed(conn, flavor))
            if not status["sql_running"]:
                # A lagging replica whose SQL thread was stopped. The IO thread is left alone
                # (the old master is fenced: nothing more arrives); stopping it would wait for
                # a reconnection attempt in flight, and with both threads stopped MariaDB
                # would discard the relay log.
                execute(conn, [(start_replica_statement(flavor, "sql"), ())])
            received = replication_status(conn, flavor)["gtid_io_pos"]
            took = self._wait(f"'{step.server}' applying its relay log up to {received}",
                              self.settings.apply_timeout,
                              lambda: covers(gtid_position(conn, flavor).get("current")
                                             or gtid_position(conn, flavor).get("executed"),
                                             received, flavor))
            return f"relay log applied up to {received or 'nothing'} in {took:.2f} s"
        return self._with(str(step.server), apply)

    def _relay_log_unusable(self, journal: Journal, step: Step, have: str) -> str:
        catch_up = any(s.name == "catch_up" for s in journal.steps)
        if not catch_up:
            for later in journal.steps:
                if later.name == "promote":
                    later.args["target"] = have
        self.log("critical", "relay_log_unusable", cluster=journal.cluster, journal=journal.id,
                 server=step.server, have=have, catch_up=catch_up)
        return (f"relay log NOT applied (both replication threads were stopped): at {have}"
                + ("; the catch-up copies the rest" if catch_up else
                   "; transactions only in that relay log are not on the new master"))

    def _step_catch_up(self, journal: Journal, step: Step) -> str:
        source, target = str(step.args["source"]), str(step.args["target"])

        def executed(conn: Connection, flavor: Flavor) -> str:
            pos = gtid_position(conn, flavor)
            return str(pos.get("current") or pos.get("executed") or "")

        def progress(conn: Connection, flavor: Flavor) -> bool:
            if covers(executed(conn, flavor), target, flavor):
                return True
            status = replication_status(conn, flavor)
            if status["io_thread"] == "No" and status["last_io_errno"]:
                # e.g. 1236: the source's binary logs no longer hold what is missing
                raise RuntimeError(f"cannot copy from '{source}': IO error "
                                   f"{status['last_io_errno']}: {status['last_io_error']}")
            return False

        def catch_up(conn: Connection, flavor: Flavor) -> str:
            if covers(executed(conn, flavor), target, flavor):
                return f"already at {target}"
            execute(conn, change_source_statements(
                flavor, self._address(journal, source), self.settings.port,
                self.settings.replication_user, self.settings.replication_password,
                connect_retry=self.settings.connect_retry,
                heartbeat_period=self.settings.heartbeat_period))
            try:
                took = self._wait(f"'{step.server}' copying {target} from '{source}'",
                                  self.settings.catch_up_timeout,
                                  lambda: progress(conn, flavor))
            except (TimeoutError, RuntimeError) as exc:
                execute(conn, [(stop_replica_statement(flavor), ())])
                if step.attempts < self.settings.catch_up_attempts:
                    raise
                return self._give_up_catch_up(journal, step, executed(conn, flavor), exc)
            execute(conn, [(stop_replica_statement(flavor), ())])
            return f"copied the difference from '{source}' up to {target} in {took:.2f} s"
        return self._with(str(step.server), catch_up)

    def _give_up_catch_up(self, journal: Journal, step: Step, have: str,
                          exc: Exception) -> str:
        """The more advanced replica cannot give what it has (its binary logs were purged,
        it died): the failover goes on with what the new master has, loudly - an outage that
        never ends would be worse. The promotion's target comes down to that position."""
        for later in journal.steps:
            if later.name == "promote":
                later.args["target"] = have
        self.log("critical", "catch_up_abandoned", cluster=journal.cluster,
                 journal=journal.id, server=step.server, source=step.args.get("source"),
                 target=step.args.get("target"), have=have, error=str(exc))
        return (f"GAVE UP after {step.attempts} attempts ({exc}): transactions past {have} "
                f"that only '{step.args.get('source')}' had are not on the new master")

    def _step_promote(self, journal: Journal, step: Step) -> str:
        target = str(step.args.get("target") or "")

        def promote(conn: Connection, flavor: Flavor) -> str:
            pos = gtid_position(conn, flavor)
            executed = pos.get("current") or pos.get("executed") or ""
            if target and not covers(executed, target, flavor):
                raise RuntimeError(f"'{step.server}' is at {executed}, short of {target}: not "
                                   "promoted (a transaction would be lost)")
            execute(conn, semi_sync_statements(flavor, master=True, slave=False,
                                               wait_point=self.settings.wait_point))
            execute(conn, read_only_statements(flavor, False))
            return f"writable at {executed}, semi-sync master on ({self.settings.wait_point})"
        return self._with(str(step.server), promote)

    def _step_detach(self, journal: Journal, step: Step) -> str:
        def detach(conn: Connection, flavor: Flavor) -> str:
            if not replication_status(conn, flavor)["configured"]:
                return "no replication configured"
            execute(conn, [(stop_replica_statement(flavor), ()),
                           (reset_replica_statement(flavor), ())])
            return "replication from its old source stopped and forgotten"
        return self._with(str(step.server), detach)

    def _step_publish(self, journal: Journal, step: Step) -> str:
        return self.publish_fn(journal)

    def _step_repoint(self, journal: Journal, step: Step) -> str:
        server, source = str(step.server), str(step.args.get("source") or "")
        semi = bool(step.args.get("semi_sync"))
        try:
            conn = self.connect(server)
        except Exception as exc:
            # A replica that is down is repointed by the db role when it comes back (the
            # global config names its source); the failover does not wait for it.
            self.log("warning", "repoint_skipped", cluster=journal.cluster, server=server,
                     error=str(exc))
            return f"skipped: unreachable ({exc})"
        try:
            return self._repoint(journal, conn, server, source, semi)
        finally:
            self._close(conn)

    def _repoint(self, journal: Journal, conn: Connection, server: str, source: str,
                 semi: bool) -> str:
        flavor = server_flavor(conn)
        address = self._address(journal, source)
        status = replication_status(conn, flavor)
        semi_state = semi_sync_status(conn, flavor)
        if (status["configured"] and status["source_host"] in (address, source)
                and status["using_gtid"] != "no" and status["io_running"]
                and status["sql_running"] and semi_state["slave_enabled"] == semi
                and not semi_state["master_enabled"]):
            return f"already replicates from '{source}'"
        mine = gtid_position(conn, flavor)
        theirs = self._with(source, lambda c, f: gtid_state(gtid_position(c, f), f))
        # Transactions this server has that its new source lacks would diverge: refuse.
        extra = missing_from(gtid_state(mine, flavor), theirs, flavor)
        if extra:
            self.log("critical", "repoint_refused", cluster=journal.cluster, server=server,
                     source=source, errant=extra)
            return f"refused: '{server}' has transactions '{source}' lacks ({extra}); re-seed it"
        slave_pos = None
        if flavor.is_mariadb and mine.get("current") and mine.get("current") != mine.get("slave"):
            # A former master: its own writes are in gtid_binlog_pos, not gtid_slave_pos.
            slave_pos = str(mine["current"])
        # A replica never has the master side on: it would stall its own applier waiting
        # for an acknowledgement from below (the old master of a switchover had it on).
        execute(conn, semi_sync_statements(flavor, master=False, slave=semi))
        execute(conn, change_source_statements(
            flavor, address, self.settings.port, self.settings.replication_user,
            self.settings.replication_password, connect_retry=self.settings.connect_retry,
            heartbeat_period=self.settings.heartbeat_period, gtid_slave_pos=slave_pos))
        return f"replicates from '{source}' ({address})" + (", acknowledges commits" if semi
                                                             else "")

    def _step_wait_semi_sync(self, journal: Journal, step: Step) -> str:
        def wait(conn: Connection, flavor: Flavor) -> str:
            try:
                took = self._wait("semi-sync", self.settings.semi_sync_timeout,
                                  lambda: _semi_sync_up(conn, flavor))
            except TimeoutError:
                self.log("critical", "semi_sync_missing", cluster=journal.cluster,
                         server=step.server, timeout=self.settings.semi_sync_timeout)
                return (f"semi-sync NOT established within {self.settings.semi_sync_timeout:g}"
                        " s: commits are not acknowledged by a replica")
            return f"semi-sync active after {took:.2f} s"
        return self._with(str(step.server), wait)

    def _step_power_off(self, journal: Journal, step: Step) -> str:
        try:
            return self.fencer.power_off(str(step.server))
        except Exception as exc:  # it is isolated already; say so loudly, do not loop
            self.log("critical", "power_off_failed", cluster=journal.cluster,
                     server=step.server, error=str(exc))
            return f"power off failed ({exc}); the server stays isolated"

    # -- steps of a switchover
    def _step_freeze(self, journal: Journal, step: Step) -> str:
        def freeze(conn: Connection, flavor: Flavor) -> str:
            conn.cursor().execute("SET SESSION lock_wait_timeout = %s",
                                  (self.settings.freeze_lock_timeout,))
            execute(conn, read_only_statements(flavor, True))
            pos = gtid_position(conn, flavor)
            target = str(pos.get("binlog") or pos.get("executed") or "")
            step.args["target"] = target
            return f"read-only at {target or 'nothing'}"
        return self._with(str(step.server), freeze)

    def _unfreeze(self, journal: Journal) -> str:
        old = str(journal.old.get("master"))
        try:
            self._with(old, lambda c, f: execute(c, read_only_statements(f, False)) or "")
        except Exception as exc:
            self.log("critical", "unfreeze_failed", cluster=journal.cluster, server=old,
                     error=str(exc))
            return f"could NOT make '{old}' writable again ({exc})"
        return f"'{old}' is writable again"

    def _step_wait_caught_up(self, journal: Journal, step: Step) -> str:
        freeze = next(s for s in journal.steps if s.name == "freeze")
        target = str(freeze.args.get("target") or "")

        def wait(conn: Connection, flavor: Flavor) -> str:
            took = self._wait(f"'{step.server}' applying up to {target}",
                              self.settings.catch_up_timeout,
                              lambda: covers(_executed(conn, flavor), target, flavor))
            return f"caught up with {target or 'nothing'} in {took:.2f} s"
        return self._with(str(step.server), wait)


def _executed(conn: Connection, flavor: Flavor) -> str:
    pos = gtid_position(conn, flavor)
    return str(pos.get("current") or pos.get("executed") or "")


def _semi_sync_up(conn: Connection, flavor: Flavor) -> bool:
    status = semi_sync_status(conn, flavor)
    return status["master_status"] and status["master_clients"] >= 1


def fence_read_only(conn: Connection) -> str:
    """Make a fenced server that answers again read-only (it must never take writes)."""
    flavor = server_flavor(conn)
    execute(conn, read_only_statements(flavor, True))
    return "made read-only"


__all__ = ["Aborted", "Fencer", "RunSettings", "Runner", "StepFailed", "fence_read_only",
           "failed_observation", "observe", "utc_stamp"]
