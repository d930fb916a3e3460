"""A simulated MariaDB replication cluster that answers the statements the failover code
sends, for unit tests of host_programs/failover/steps.py.

Each `FakeDB` keeps the transactions it applied (GTIDs as (domain, server_id, seq)), what its
IO thread received but did not apply (relay log), its source, thread states, read_only and
semi-sync variables. `FakeCluster.replicate()` moves transactions along every running
replication link (and counts a heartbeat); every statement runs one replication round
first, so waits in the code under test make progress as time would. Servers can be made
unreachable (`down`), and a link can be held back (`hold_io`, `hold_sql`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

GTID = tuple[int, int, int]


class FakeOperationalError(Exception):
    """Stands in for pymysql.err.OperationalError."""


@dataclass
class FakeDB:
    name: str
    server_id: int
    address: str
    applied: list[GTID] = field(default_factory=list)
    relay: list[GTID] = field(default_factory=list)
    local: set[GTID] = field(default_factory=set)      # written on this server itself
    source: str | None = None                            # address of the source
    io: str = "No"
    sql: str = "No"
    sql_error: tuple[int, str] = (0, "")
    read_only: bool = True
    semi_master: bool = False
    semi_slave: bool = False
    wait_point: str = "AFTER_SYNC"
    heartbeats: int = 0
    heartbeat_period: float = 0.5
    uptime: int = 1000
    down: bool = False
    hold_io: bool = False
    io_error: tuple[int, str] = (0, "")
    slave_pos_override: str | None = None
    binlog_from: int = 0          # RESET MASTER: the binary log holds applied[binlog_from:]
    statements: list[str] = field(default_factory=list)

    # -- GTID views
    def _last_per_domain(self, gtids: list[GTID]) -> str:
        best: dict[int, GTID] = {}
        for g in gtids:
            if g[0] not in best or g[2] > best[g[0]][2]:
                best[g[0]] = g
        return ",".join(f"{d}-{s}-{n}" for d, s, n in sorted(best.values()))

    def binlog_pos(self) -> str:
        return self._last_per_domain(self.applied[self.binlog_from:])

    def slave_pos(self) -> str:
        if self.slave_pos_override is not None:
            return self.slave_pos_override
        # gtid_slave_pos only moves with replicated transactions, not with the server's own
        return self._last_per_domain([g for g in self.applied if g[1] != self.server_id])

    def current_pos(self) -> str:
        return self._last_per_domain(self.applied)

    def binlog_state(self) -> str:
        best: dict[tuple[int, int], int] = {}
        for d, s, n in self.applied[self.binlog_from:]:
            best[(d, s)] = max(n, best.get((d, s), 0))
        return ",".join(f"{d}-{s}-{n}" for (d, s), n in sorted(best.items()))

    def io_pos(self) -> str:
        return self._last_per_domain(self.applied + self.relay)

    def next_seq(self, domain: int = 0) -> int:
        return max([n for d, _, n in self.applied if d == domain] + [0]) + 1


class FakeCluster:
    def __init__(self) -> None:
        self.dbs: dict[str, FakeDB] = {}
        self.hold_sql: set[str] = set()
        self.acked: list[GTID] = []

    def add(self, name: str, server_id: int, address: str) -> FakeDB:
        self.dbs[name] = FakeDB(name, server_id, address)
        return self.dbs[name]

    def by_address(self, address: str | None) -> FakeDB | None:
        return next((d for d in self.dbs.values() if address in (d.address, d.name)), None)

    def link(self, replica: str, source: str, semi: bool = False) -> None:
        db = self.dbs[replica]
        db.source, db.io, db.sql, db.semi_slave = self.dbs[source].address, "Yes", "Yes", semi

    def write(self, master: str, count: int = 1, local: bool = False) -> list[GTID]:
        """Commit `count` transactions on `master` (as an application would)."""
        db = self.dbs[master]
        if db.down:
            raise FakeOperationalError(f"{master} is down")
        if db.read_only and not local:
            raise FakeOperationalError("1290 read-only")
        out = []
        for _ in range(count):
            gtid = (0, db.server_id, db.next_seq())
            db.applied.append(gtid)
            if local:
                db.local.add(gtid)
            out.append(gtid)
        if not local:
            self.replicate()
            self.acked += out
        return out

    def replicate(self) -> None:
        for db in self.dbs.values():
            source = self.by_address(db.source)
            if db.down or source is None:
                continue
            if db.io == "Yes" and not db.hold_io and source.binlog_from and any(
                    g not in set(db.applied) | set(db.relay)
                    for g in source.applied[:source.binlog_from]):
                db.io, db.io_error = "No", (1236, "Could not find GTID state requested by "
                                                  "slave in any binlog files")
            elif db.io == "Yes" and not db.hold_io:
                if source.down:
                    db.io = "Connecting"
                else:
                    have = set(db.applied) | set(db.relay)
                    db.relay += [g for g in source.applied if g not in have]
                    db.heartbeats += 1
            elif db.io == "Connecting" and not source.down and not db.hold_io:
                db.io = "Yes"
            if db.sql == "Yes" and db.name not in self.hold_sql and not db.sql_error[0]:
                db.applied += db.relay
                db.relay = []

    def connect(self, name: str) -> FakeConnection:
        db = self.dbs.get(name) or self.by_address(name)
        if db is None or db.down:
            raise FakeOperationalError(f"(2003, \"Can't connect to MySQL server on '{name}'\")")
        return FakeConnection(self, db)


SLAVE_COLUMNS = ["Slave_IO_State", "Master_Host", "Master_User", "Master_Port",
                 "Connect_Retry", "Slave_IO_Running", "Slave_SQL_Running", "Last_IO_Errno",
                 "Last_IO_Error", "Last_SQL_Errno", "Last_SQL_Error", "Seconds_Behind_Master",
                 "Using_Gtid", "Gtid_IO_Pos", "Slave_SQL_Running_State"]


class FakeCursor:
    def __init__(self, cluster: FakeCluster, db: FakeDB) -> None:
        self.cluster = cluster
        self.db = db
        self.description: list[tuple[str]] | None = None
        self._rows: list[tuple[Any, ...]] = []

    def _answer(self, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
        self.description = [(c,) for c in columns]
        self._rows = rows

    def _variables(self) -> dict[str, Any]:
        db = self.db
        return {"read_only": "ON" if db.read_only else "OFF", "server_id": db.server_id,
                "log_bin": "ON", "rpl_semi_sync_master_enabled": "ON" if db.semi_master else "OFF",
                "rpl_semi_sync_slave_enabled": "ON" if db.semi_slave else "OFF",
                "rpl_semi_sync_master_wait_point": db.wait_point,
                "rpl_semi_sync_master_timeout": 10000}

    def _status(self) -> dict[str, Any]:
        db = self.db
        clients = [d for d in self.cluster.dbs.values()
                   if not d.down and d.semi_slave and d.io == "Yes"
                   and self.cluster.by_address(d.source) is db]
        source = self.cluster.by_address(db.source)
        return {"Uptime": db.uptime, "Slave_received_heartbeats": db.heartbeats,
                "Slave_heartbeat_period": f"{db.heartbeat_period:.3f}",
                "Rpl_semi_sync_master_status": "ON" if db.semi_master and clients else "OFF",
                "Rpl_semi_sync_master_clients": len(clients),
                "Rpl_semi_sync_master_yes_tx": 0, "Rpl_semi_sync_master_no_tx": 0,
                "Rpl_semi_sync_slave_status": "ON" if db.semi_slave and db.io == "Yes"
                and source is not None and source.semi_master else "OFF"}

    @staticmethod
    def _like(pattern: str) -> re.Pattern[str]:
        regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c)
                        for c in pattern)
        return re.compile(f"^{regex}$", re.IGNORECASE)

    def execute(self, query: str, args: Any = None) -> int:
        sql = " ".join(query.split())
        params = tuple(args or ())
        if self.db.down:
            raise FakeOperationalError("(2013, 'Lost connection to MySQL server during query')")
        self.db.statements.append(sql)
        self.cluster.replicate()
        self._answer([], [])
        upper = sql.upper()
        db = self.db
        if upper.startswith("SELECT VERSION()"):
            self._answer(["version", "comment"], [("10.11.6-MariaDB-0+deb12u1-log", "Debian 12")])
        elif upper.startswith("SELECT @@GLOBAL.GTID_CURRENT_POS"):
            self._answer(["current", "slave", "binlog", "binlog_state"],
                         [(db.current_pos(), db.slave_pos(), db.binlog_pos(), db.binlog_state())])
        elif upper.startswith("SELECT @@GLOBAL."):
            name = sql.split("@@GLOBAL.", 1)[1].split()[0].lower()
            self._answer([name], [(self._variables().get(name),)])
        elif upper.startswith("SHOW GLOBAL VARIABLES LIKE") or upper.startswith(
                "SHOW GLOBAL STATUS LIKE"):
            source = self._status() if "STATUS" in upper else self._variables()
            like = self._like(str(params[0]))
            self._answer(["Variable_name", "Value"],
                         [(k, v) for k, v in source.items() if like.match(k)])
        elif upper == "SHOW SLAVE STATUS":
            self._slave_status()
        elif upper.startswith("STOP SLAVE"):
            if "SQL_THREAD" not in upper:
                db.io = "No"
            if "IO_THREAD" not in upper:
                db.sql = "No"
        elif upper.startswith("START SLAVE"):
            if db.io == "No" and db.sql == "No":
                db.relay = []   # GTID mode: the relay log is discarded after a full stop
            if db.source and "SQL_THREAD" not in upper:
                db.io = "Yes"
            if db.source and "IO_THREAD" not in upper:
                db.sql = "Yes"
            self.cluster.replicate()
        elif upper.startswith("RESET SLAVE ALL"):
            db.source, db.io, db.sql, db.relay = None, "No", "No", []
        elif upper.startswith("CHANGE MASTER TO"):
            self._change_master(sql, params)
        elif upper.startswith("SET GLOBAL GTID_SLAVE_POS"):
            db.slave_pos_override = str(params[0])
        elif upper.startswith("SET GLOBAL"):
            self._set_global(sql, params)
        elif upper.startswith("SET SESSION"):
            pass
        else:
            raise AssertionError(f"the fake does not know: {sql}")
        return 0

    def _set_global(self, sql: str, params: tuple[Any, ...]) -> None:
        match = re.match(r"SET GLOBAL (\w+) = %s", sql)
        assert match, sql
        name, value = match.group(1).lower(), str(params[0]).upper()
        on = value in ("ON", "1")
        if name == "read_only":
            self.db.read_only = on
        elif name == "rpl_semi_sync_master_enabled":
            self.db.semi_master = on
        elif name == "rpl_semi_sync_slave_enabled":
            self.db.semi_slave = on
        elif name == "rpl_semi_sync_master_wait_point":
            self.db.wait_point = value
        else:
            raise AssertionError(f"the fake does not know variable {name}")

    def _change_master(self, sql: str, params: tuple[Any, ...]) -> None:
        names = re.findall(r"(MASTER_[A-Z_]+)=%s", sql)
        values = dict(zip(names, params, strict=True))
        db = self.db
        assert db.io == "No" and db.sql == "No", "CHANGE MASTER needs the threads stopped"
        db.source, db.relay = values["MASTER_HOST"], []   # relay logs are purged
        db.io_error = (0, "")
        if db.slave_pos_override is not None:
            db.local = set()
            db.slave_pos_override = None

    def _slave_status(self) -> None:
        db = self.db
        if not db.source:
            self._answer(SLAVE_COLUMNS, [])
            return
        row = {"Slave_IO_State": "Waiting for master to send event" if db.io == "Yes" else "",
               "Master_Host": db.source, "Master_User": "repl", "Master_Port": 3306,
               "Connect_Retry": 1, "Slave_IO_Running": db.io, "Slave_SQL_Running": db.sql,
               "Last_IO_Errno": 2003 if db.io == "Connecting" else db.io_error[0],
               "Last_IO_Error": "error reconnecting to master" if db.io == "Connecting"
               else db.io_error[1],
               "Last_SQL_Errno": db.sql_error[0], "Last_SQL_Error": db.sql_error[1],
               "Seconds_Behind_Master": 0, "Using_Gtid": "Slave_Pos",
               "Gtid_IO_Pos": db.io_pos(), "Slave_SQL_Running_State": ""}
        self._answer(SLAVE_COLUMNS, [tuple(row[c] for c in SLAVE_COLUMNS)])

    def fetchall(self) -> list[tuple[Any, ...]]:
        return list(self._rows)


class FakeConnection:
    def __init__(self, cluster: FakeCluster, db: FakeDB) -> None:
        self.cluster = cluster
        self.db = db

    def cursor(self) -> FakeCursor:
        return FakeCursor(self.cluster, self.db)

    def close(self) -> None:
        pass


def standard_cluster() -> FakeCluster:
    """db-1 master, db-2 candidate (semi-sync), db-3 slave candidate below db-2, db-4
    backup below db-1; 10 transactions everywhere."""
    cluster = FakeCluster()
    for i in range(1, 5):
        cluster.add(f"db-{i}", i, f"10.0.0.{i}")
    cluster.dbs["db-1"].read_only = False
    cluster.dbs["db-1"].semi_master = True
    cluster.link("db-2", "db-1", semi=True)
    cluster.link("db-3", "db-2")
    cluster.link("db-4", "db-1")
    cluster.write("db-1", 10)
    cluster.replicate()
    return cluster


DOC_SERVERS = {f"db-{i}": {"role": "db", "products": ["hello"], "az": "us-east-1a",
                           "address": f"10.0.0.{i}", "state": "in_service"} for i in range(1, 5)}


def document() -> dict[str, Any]:
    """A global config (version 2) with cluster hello serving product hello."""
    positions = {"master": "db-1", "candidate": "db-2", "slave_candidate": "db-3",
                 "backup": "db-4"}
    return {"epoch": 3, "updated_at": "2026-11-28T09:00:00Z", "updated_by": "test",
            "servers": {k: dict(v) for k, v in DOC_SERVERS.items()},
            "clusters": {"hello": {"db": dict(positions)}},
            "products": {"hello": {"cluster": "hello", "db": dict(positions),
                                   "memcached": [], "web": []}}}
