"""A DB-API connection that answers from a script, for tests of code that talks to MariaDB.

`FakeServer` holds the answers a MariaDB 10.11 server would give (variables, status, replica
status, binary logs) and records every statement executed with its parameters. The state
changes the tests care about (STOP/START SLAVE, CHANGE MASTER, SET GLOBAL) are applied to it,
so a module can be run twice and shown to change nothing the second time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

SLAVE_COLUMNS = [
    "Slave_IO_State", "Master_Host", "Master_User", "Master_Port", "Connect_Retry",
    "Slave_IO_Running", "Slave_SQL_Running", "Last_IO_Errno", "Last_IO_Error",
    "Last_SQL_Errno", "Last_SQL_Error", "Seconds_Behind_Master", "Using_Gtid", "Gtid_IO_Pos",
    "Slave_SQL_Running_State",
]


@dataclass
class FakeServer:
    version: str = "10.11.6-MariaDB-0+deb12u1-log"
    comment: str = "Debian 12"
    variables: dict[str, Any] = field(default_factory=lambda: {
        "read_only": "ON", "log_bin": "ON", "server_id": 11,
        "gtid_current_pos": "0-1-5", "gtid_slave_pos": "0-1-5", "gtid_binlog_pos": "0-1-5",
        "gtid_binlog_state": "0-1-5",
        "rpl_semi_sync_master_enabled": "OFF", "rpl_semi_sync_slave_enabled": "ON",
        "rpl_semi_sync_master_wait_point": "AFTER_SYNC", "rpl_semi_sync_master_timeout": 10000,
    })
    status: dict[str, Any] = field(default_factory=lambda: {
        "Rpl_semi_sync_master_status": "OFF", "Rpl_semi_sync_master_clients": 0,
        "Rpl_semi_sync_master_yes_tx": 0, "Rpl_semi_sync_master_no_tx": 0,
        "Rpl_semi_sync_slave_status": "ON",
    })
    replica: dict[str, Any] | None = None
    binary_logs: list[str] = field(default_factory=lambda: ["mariadb-bin.000001"])
    binlog_start: dict[str, str] = field(default_factory=lambda: {"mariadb-bin.000001": ""})
    executed: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)
    # What START SLAVE leads to: the IO thread state and errors it reports.
    start_io: str = "Yes"
    start_io_error: str = ""
    fail_on: dict[str, Exception] = field(default_factory=dict)
    closed: bool = False
    # mysql.user: (User, Host) rows
    users: list[tuple[str, str]] = field(default_factory=lambda: [
        ("root", "localhost"), ("mariadb.sys", "localhost")])

    def replicate_from(self, host: str, port: int = 3306, user: str = "repl",
                       using_gtid: str = "Slave_Pos", io: str = "Yes", sql: str = "Yes") -> None:
        self.replica = {
            "Slave_IO_State": "Waiting for master to send event" if io == "Yes" else "",
            "Master_Host": host, "Master_User": user, "Master_Port": port,
            "Connect_Retry": 5, "Slave_IO_Running": io, "Slave_SQL_Running": sql,
            "Last_IO_Errno": 0, "Last_IO_Error": "", "Last_SQL_Errno": 0,
            "Last_SQL_Error": "", "Seconds_Behind_Master": 0 if io == "Yes" else None,
            "Using_Gtid": using_gtid, "Gtid_IO_Pos": self.variables["gtid_slave_pos"],
            "Slave_SQL_Running_State": "Slave has read all relay log; waiting for more updates",
        }

    def connect(self, **_: Any) -> FakeConnection:
        return FakeConnection(self)

    def statements(self) -> list[str]:
        return [sql for sql, _ in self.executed]


class FakeCursor:
    def __init__(self, server: FakeServer) -> None:
        self.server = server
        self.description: list[tuple[str]] | None = None
        self._rows: list[tuple[Any, ...]] = []

    def _answer(self, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
        self.description = [(c,) for c in columns]
        self._rows = rows

    def execute(self, query: str, args: Any = None) -> int:
        sql = " ".join(query.split())
        params = tuple(args or ())
        self.server.executed.append((sql, params))
        for pattern, exc in self.server.fail_on.items():
            if re.search(pattern, sql):
                raise exc
        self._answer([], [])
        upper = sql.upper()
        if upper.startswith("SELECT VERSION()"):
            self._answer(["version", "comment"], [(self.server.version, self.server.comment)])
        elif upper.startswith("SELECT @@GLOBAL.GTID_CURRENT_POS"):
            v = self.server.variables
            self._answer(["current", "slave", "binlog", "binlog_state"],
                         [(v["gtid_current_pos"], v["gtid_slave_pos"], v["gtid_binlog_pos"],
                           v["gtid_binlog_state"])])
        elif upper.startswith("SELECT @@GLOBAL."):
            name = sql.split("@@GLOBAL.", 1)[1].split()[0].lower()
            self._answer([name], [(self.server.variables.get(name),)])
        elif upper.startswith("SHOW GLOBAL VARIABLES LIKE") or upper.startswith(
                "SHOW GLOBAL STATUS LIKE"):
            source = self.server.status if "STATUS" in upper else self.server.variables
            prefix = str(params[0]).rstrip("%").lower()
            self._answer(["Variable_name", "Value"],
                         [(k, v) for k, v in source.items() if k.lower().startswith(prefix)])
        elif upper.startswith("SHOW GLOBAL VARIABLES WHERE VARIABLE_NAME IN"):
            wanted = {str(p).lower() for p in params}
            self._answer(["Variable_name", "Value"],
                         [(k, v) for k, v in self.server.variables.items() if k in wanted])
        elif upper.startswith("SELECT USER AS USER, HOST AS HOST FROM MYSQL.USER WHERE USER IN"):
            self._answer(["user", "host"],
                         [(u, h) for u, h in self.server.users if u in params])
        elif upper in ("SHOW SLAVE STATUS", "SHOW REPLICA STATUS"):
            if self.server.replica:
                self._answer(SLAVE_COLUMNS, [tuple(self.server.replica[c] for c in SLAVE_COLUMNS)])
            else:
                self._answer(SLAVE_COLUMNS, [])
        elif upper == "SHOW BINARY LOGS":
            self._answer(["Log_name", "File_size"], [(n, 1000) for n in self.server.binary_logs])
        elif upper.startswith("SELECT BINLOG_GTID_POS"):
            self._answer(["pos"], [(self.server.binlog_start.get(params[0], ""),)])
        elif upper.startswith("STOP SLAVE"):
            if self.server.replica and "SQL_THREAD" not in upper:
                self.server.replica["Slave_IO_Running"] = "No"
            if self.server.replica and "IO_THREAD" not in upper:
                self.server.replica["Slave_SQL_Running"] = "No"
        elif upper.startswith("START SLAVE"):
            self._start(upper)
        elif upper.startswith("SET GLOBAL GTID_SLAVE_POS"):
            self.server.variables["gtid_slave_pos"] = params[0]
        elif upper.startswith("CHANGE MASTER TO"):
            self._change_master(sql, params)
        elif upper.startswith("RESET SLAVE ALL"):
            self.server.replica = None
        return 0

    def _start(self, upper: str) -> None:
        replica = self.server.replica
        if not replica:
            return
        if "SQL_THREAD" not in upper:
            replica["Slave_IO_Running"] = self.server.start_io
            replica["Last_IO_Error"] = self.server.start_io_error
            replica["Last_IO_Errno"] = 1045 if self.server.start_io_error else 0
        if "IO_THREAD" not in upper:
            replica["Slave_SQL_Running"] = "Yes"

    def _change_master(self, sql: str, params: tuple[Any, ...]) -> None:
        names = re.findall(r"(MASTER_[A-Z_]+)=%s", sql)
        values = dict(zip(names, params, strict=True))
        gtid = re.search(r"MASTER_USE_GTID=(\w+)", sql)
        self.server.replicate_from(
            values["MASTER_HOST"], values["MASTER_PORT"], values["MASTER_USER"],
            using_gtid={"slave_pos": "Slave_Pos", "current_pos": "Current_Pos"}.get(
                gtid.group(1) if gtid else "", "No"),
            io="No", sql="No")

    def fetchall(self) -> list[tuple[Any, ...]]:
        return list(self._rows)

    def close(self) -> None:
        pass


class FakeConnection:
    def __init__(self, server: FakeServer) -> None:
        self.server = server

    def cursor(self) -> FakeCursor:
        return FakeCursor(self.server)

    def close(self) -> None:
        self.server.closed = True
