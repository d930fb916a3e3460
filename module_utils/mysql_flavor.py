"""Every difference between MariaDB and MySQL that replication code meets, in one place.

Statement syntax (SHOW SLAVE STATUS / SHOW REPLICA STATUS, CHANGE MASTER / CHANGE REPLICATION
SOURCE, MASTER_USE_GTID / SOURCE_AUTO_POSITION), status column names (Slave_IO_Running /
Replica_IO_Running, Seconds_Behind_Master / Seconds_Behind_Source), GTID formats (MariaDB
domain-server-seq lists, MySQL uuid:interval sets), semi-synchronous replication variable names
(rpl_semi_sync_master_* / rpl_semi_sync_source_*), privilege names and account host patterns.

Callers get normalised answers and never branch on the flavor themselves: the Ansible modules
in library/, the role's filters and the failover watcher import this file. No Ansible imports;
a "connection" is any DB-API connection (pymysql in practice) whose cursor() has execute(sql,
params), fetchall() and description. Secrets travel as statement parameters, never inside the
SQL text.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

MARIADB = "mariadb"
MYSQL = "mysql"

Statement = tuple[str, tuple[Any, ...]]


class Cursor(Protocol):
    description: Any

    def execute(self, query: str, args: Any = None) -> Any: ...

    def fetchall(self) -> Sequence[Sequence[Any]]: ...


class Connection(Protocol):
    def cursor(self) -> Cursor: ...


@dataclass(frozen=True)
class Flavor:
    """Which server this is: `name` is MARIADB or MYSQL, `version` (major, minor, patch)."""

    name: str
    version: tuple[int, int, int]

    @property
    def is_mariadb(self) -> bool:
        return self.name == MARIADB

    def at_least(self, *version: int) -> bool:
        return self.version >= tuple(version)

    def __str__(self) -> str:
        return f"{self.name} {'.'.join(str(v) for v in self.version)}"


# ---------------------------------------------------------------------------------------------
# Flavor detection and small query helpers


def parse_version(version: str) -> tuple[int, int, int]:
    """(major, minor, patch) of a server version string such as '10.11.6-MariaDB-0+deb12u1'
    or '8.0.36'. MariaDB's old '5.5.5-' replication prefix is skipped."""
    text = re.sub(r"^5\.5\.5-", "", str(version).strip())
    match = re.match(r"^(\d+)\.(\d+)(?:\.(\d+))?", text)
    if not match:
        raise ValueError(f"not a server version: {version!r}")
    return int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)


def detect_flavor(version: str, version_comment: str = "") -> Flavor:
    """The flavor of a server from SELECT VERSION() and @@version_comment."""
    text = f"{version} {version_comment}".lower()
    name = MARIADB if "mariadb" in text else MYSQL
    return Flavor(name, parse_version(version))


def query_rows(conn: Connection, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    """The rows of a query as dicts keyed by column name (whatever the cursor class)."""
    cursor = conn.cursor()
    cursor.execute(sql, tuple(params) or None)
    rows = cursor.fetchall() or []
    if rows and isinstance(rows[0], Mapping):
        return [dict(r) for r in rows]
    names = [d[0] for d in cursor.description or []]
    return [{name: row[i] for i, name in enumerate(names)} for row in rows]


def query_value(conn: Connection, sql: str, params: Sequence[Any] = ()) -> Any:
    """The first column of the first row, or None."""
    rows = query_rows(conn, sql, params)
    return next(iter(rows[0].values())) if rows else None


def execute(conn: Connection, statements: Sequence[Statement]) -> None:
    """Run statements built by this module, each with its parameters."""
    for sql, params in statements:
        conn.cursor().execute(sql, params or None)


def server_flavor(conn: Connection) -> Flavor:
    row = query_rows(conn, "SELECT VERSION() AS version, @@version_comment AS comment")[0]
    return detect_flavor(str(row["version"]), str(row.get("comment") or ""))


def _variables(conn: Connection, like: str, status: bool = False) -> dict[str, str]:
    kind = "STATUS" if status else "VARIABLES"
    rows = query_rows(conn, f"SHOW GLOBAL {kind} LIKE %s", (like,))
    return {str(r.get("Variable_name")).lower(): r.get("Value") for r in rows}


def global_variables(conn: Connection, names: Sequence[str]) -> dict[str, str]:
    """The current global value of each named variable, by lower-case name; a name the
    server does not know is left out."""
    if not names:
        return {}
    marks = ", ".join(["%s"] * len(names))
    rows = query_rows(conn, f"SHOW GLOBAL VARIABLES WHERE Variable_name IN ({marks})",
                      [str(n).lower() for n in names])
    return {str(r.get("Variable_name")).lower(): "" if r.get("Value") is None else str(r["Value"])
            for r in rows}


def account_hosts(conn: Connection, users: Sequence[str]) -> dict[str, list[str]]:
    """The host parts the server has for each account name (`''` is the anonymous user)."""
    if not users:
        return {}
    marks = ", ".join(["%s"] * len(users))
    rows = query_rows(conn, f"SELECT User AS user, Host AS host FROM mysql.user "
                            f"WHERE User IN ({marks})", [str(u) for u in users])
    found: dict[str, list[str]] = {str(u): [] for u in users}
    for row in rows:
        found.setdefault(_text(row.get("user")), []).append(_text(row.get("host")))
    return {user: sorted(hosts) for user, hosts in found.items()}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, (bytes, bytearray)) else str(value or "")


_TRUE = ("ON", "1", "YES", "TRUE")
_FALSE = ("OFF", "0", "NO", "FALSE")


def setting_matches(wanted: Any, current: str | None) -> bool:
    """Whether a global variable already has the wanted value: the same text ignoring case,
    both the same boolean (ON/1/YES/TRUE, OFF/0/NO/FALSE), or the same number (7 and
    7.000000). Anything else (a size with a suffix, a variable the server did not report)
    does not match, and is set."""
    if current is None:
        return False
    want, have = str(wanted).strip().upper(), str(current).strip().upper()
    if want == have:
        return True
    if (want in _TRUE and have in _TRUE) or (want in _FALSE and have in _FALSE):
        return True
    try:  # expire_logs_days reads back as 7.000000
        return float(want) == float(have)
    except ValueError:
        return False


def settings_to_change(wanted: Mapping[str, Any], current: Mapping[str, str]
                       ) -> dict[str, Any]:
    """The wanted settings whose current global value differs (names compared lower-case)."""
    have = {str(k).lower(): v for k, v in current.items()}
    return {name: value for name, value in wanted.items()
            if not setting_matches(value, have.get(str(name).lower()))}


def _on(value: Any) -> bool:
    return str(value).strip().upper() in ("ON", "1", "YES", "TRUE")


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


# ---------------------------------------------------------------------------------------------
# Statements


def _new_mysql_syntax(flavor: Flavor) -> bool:
    """MySQL 8.0.22+ names: SHOW REPLICA STATUS, START/STOP REPLICA, Replica_* columns."""
    return not flavor.is_mariadb and flavor.at_least(8, 0, 22)


def replica_status_statement(flavor: Flavor) -> str:
    return "SHOW REPLICA STATUS" if _new_mysql_syntax(flavor) else "SHOW SLAVE STATUS"


def start_replica_statement(flavor: Flavor, thread: str | None = None) -> str:
    """START SLAVE / START REPLICA, optionally of one thread ('io' or 'sql')."""
    return _replica_statement("START", flavor, thread)


def stop_replica_statement(flavor: Flavor, thread: str | None = None) -> str:
    return _replica_statement("STOP", flavor, thread)


def _replica_statement(verb: str, flavor: Flavor, thread: str | None) -> str:
    word = "REPLICA" if _new_mysql_syntax(flavor) else "SLAVE"
    threads = {None: "", "io": " IO_THREAD", "sql": " SQL_THREAD"}
    if thread not in threads:
        raise ValueError(f"thread must be 'io', 'sql' or None, got {thread!r}")
    return f"{verb} {word}{threads[thread]}"


def reset_replica_statement(flavor: Flavor) -> str:
    """Forget the replication source entirely (used when a replica is promoted)."""
    return "RESET REPLICA ALL" if _new_mysql_syntax(flavor) else "RESET SLAVE ALL"


GTID_MODES = ("slave_pos", "current_pos")


def change_source_statements(flavor: Flavor, host: str, port: int, user: str, password: str,
                             *, use_gtid: str = "slave_pos", connect_retry: int | None = None,
                             heartbeat_period: float | None = None,
                             gtid_slave_pos: str | None = None,
                             start: bool = True) -> list[Statement]:
    """Statements that point this server at a new source with GTID auto-positioning: stop the
    replica threads, (MariaDB: set gtid_slave_pos when given, e.g. after seeding from a dump),
    change the source, start. Every value is a parameter; nothing is put into the SQL text
    except keywords chosen from fixed lists and validated numbers."""
    if not host or not isinstance(host, str):
        raise ValueError("the source host must be a non-empty string")
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise ValueError(f"the source port must be 1-65535, got {port!r}")
    statements: list[Statement] = [(stop_replica_statement(flavor), ())]
    if flavor.is_mariadb:
        if use_gtid not in GTID_MODES:
            raise ValueError(f"use_gtid must be one of {', '.join(GTID_MODES)}, got {use_gtid!r}")
        if gtid_slave_pos is not None:
            parse_mariadb_gtids(gtid_slave_pos)  # refuses anything that is not a GTID list
            statements.append(("SET GLOBAL gtid_slave_pos = %s", (gtid_slave_pos,)))
        head, prefix, gtid = "CHANGE MASTER TO", "MASTER", f"MASTER_USE_GTID={use_gtid}"
    else:
        if gtid_slave_pos is not None:
            raise ValueError("gtid_slave_pos is MariaDB only (MySQL: RESET MASTER and "
                             "SET GLOBAL gtid_purged before CHANGE REPLICATION SOURCE)")
        if flavor.at_least(8, 0, 23):
            head, prefix, gtid = "CHANGE REPLICATION SOURCE TO", "SOURCE", "SOURCE_AUTO_POSITION=1"
        else:
            head, prefix, gtid = "CHANGE MASTER TO", "MASTER", "MASTER_AUTO_POSITION=1"
    parts = [f"{prefix}_HOST=%s", f"{prefix}_PORT=%s", f"{prefix}_USER=%s", f"{prefix}_PASSWORD=%s"]
    params: list[Any] = [host, port, user, password]
    if connect_retry is not None:
        parts.append(f"{prefix}_CONNECT_RETRY=%s")
        params.append(int(connect_retry))
    if heartbeat_period is not None:
        parts.append(f"{prefix}_HEARTBEAT_PERIOD=%s")
        params.append(float(heartbeat_period))
    parts.append(gtid)
    statements.append((f"{head} {', '.join(parts)}", tuple(params)))
    if start:
        statements.append((start_replica_statement(flavor), ()))
    return statements


# ---------------------------------------------------------------------------------------------
# Replica status, normalised

# normalised key -> (MariaDB and MySQL < 8.0.22 column, MySQL >= 8.0.22 column)
STATUS_COLUMNS: dict[str, tuple[str, str]] = {
    "source_host": ("Master_Host", "Source_Host"),
    "source_port": ("Master_Port", "Source_Port"),
    "source_user": ("Master_User", "Source_User"),
    "io_state": ("Slave_IO_State", "Replica_IO_State"),
    "io_running": ("Slave_IO_Running", "Replica_IO_Running"),
    "sql_running": ("Slave_SQL_Running", "Replica_SQL_Running"),
    "sql_state": ("Slave_SQL_Running_State", "Replica_SQL_Running_State"),
    "seconds_behind": ("Seconds_Behind_Master", "Seconds_Behind_Source"),
    "last_io_errno": ("Last_IO_Errno", "Last_IO_Errno"),
    "last_io_error": ("Last_IO_Error", "Last_IO_Error"),
    "last_sql_errno": ("Last_SQL_Errno", "Last_SQL_Errno"),
    "last_sql_error": ("Last_SQL_Error", "Last_SQL_Error"),
    "connect_retry": ("Connect_Retry", "Connect_Retry"),
}


def not_a_replica() -> dict[str, Any]:
    """The normalised status of a server that has no replication source."""
    return {
        "configured": False, "source_host": None, "source_port": None, "source_user": None,
        "io_state": "", "io_running": False, "io_thread": "No", "sql_running": False,
        "sql_thread": "No", "sql_state": "", "seconds_behind": None, "using_gtid": "no",
        "gtid_io_pos": "", "last_io_errno": 0, "last_io_error": "", "last_sql_errno": 0,
        "last_sql_error": "", "connect_retry": None,
    }


def normalise_replica_status(row: Mapping[str, Any] | None, flavor: Flavor) -> dict[str, Any]:
    """One row of SHOW SLAVE/REPLICA STATUS as flavor-free keys:
    configured, source_host, source_port, source_user, io_running / sql_running (bool),
    io_thread / sql_thread ('Yes', 'No', 'Connecting'), io_state, sql_state, seconds_behind
    (int or None), using_gtid ('slave_pos', 'current_pos', 'auto_position' or 'no'),
    gtid_io_pos (MariaDB Gtid_IO_Pos, MySQL Retrieved_Gtid_Set), last_io_errno,
    last_io_error, last_sql_errno, last_sql_error, connect_retry."""
    if not row or not (row.get("Master_Host") or row.get("Source_Host")):
        return not_a_replica()
    column = 1 if _new_mysql_syntax(flavor) else 0
    out: dict[str, Any] = {key: row.get(cols[column]) for key, cols in STATUS_COLUMNS.items()}
    out["configured"] = True
    out["io_thread"] = str(out["io_running"] or "No")
    out["sql_thread"] = str(out["sql_running"] or "No")
    out["io_running"] = out["io_thread"] == "Yes"
    out["sql_running"] = out["sql_thread"] == "Yes"
    for key in ("source_port", "seconds_behind", "last_io_errno", "last_sql_errno",
                "connect_retry"):
        out[key] = _int(out[key])
    out["last_io_errno"] = out["last_io_errno"] or 0
    out["last_sql_errno"] = out["last_sql_errno"] or 0
    for key in ("io_state", "sql_state", "last_io_error", "last_sql_error"):
        out[key] = str(out[key] or "")
    if flavor.is_mariadb:
        out["using_gtid"] = str(row.get("Using_Gtid") or "No").lower()
        out["gtid_io_pos"] = str(row.get("Gtid_IO_Pos") or "")
    else:
        out["using_gtid"] = "auto_position" if _on(row.get("Auto_Position")) else "no"
        out["gtid_io_pos"] = _squash(row.get("Retrieved_Gtid_Set"))
    return out


def replication_status(conn: Connection, flavor: Flavor | None = None) -> dict[str, Any]:
    """This server's replication status (see normalise_replica_status)."""
    flavor = flavor or server_flavor(conn)
    rows = query_rows(conn, replica_status_statement(flavor))
    return normalise_replica_status(rows[0] if rows else None, flavor)


# ---------------------------------------------------------------------------------------------
# GTID positions and their arithmetic


def _squash(value: Any) -> str:
    """A GTID list without the line breaks and spaces servers put into long values."""
    return re.sub(r"\s+", "", str(value or ""))


def gtid_position(conn: Connection, flavor: Flavor | None = None) -> dict[str, str]:
    """MariaDB: current (gtid_current_pos), slave (gtid_slave_pos), binlog (gtid_binlog_pos)
    and binlog_state (gtid_binlog_state, one entry per domain and server: the input for an
    exact is_errant). MySQL: executed (gtid_executed) and purged (gtid_purged)."""
    flavor = flavor or server_flavor(conn)
    if flavor.is_mariadb:
        row = query_rows(conn, "SELECT @@GLOBAL.gtid_current_pos AS current, "
                               "@@GLOBAL.gtid_slave_pos AS slave, "
                               "@@GLOBAL.gtid_binlog_pos AS `binlog`, "
                               "@@GLOBAL.gtid_binlog_state AS binlog_state")[0]
    else:
        row = query_rows(conn, "SELECT @@GLOBAL.gtid_executed AS executed, "
                               "@@GLOBAL.gtid_purged AS purged")[0]
    return {k: _squash(v) for k, v in row.items()}


MARIADB_GTID_RE = re.compile(r"^(\d+)-(\d+)-(\d+)$")


def parse_mariadb_gtids(text: str | None) -> dict[tuple[int, int], int]:
    """'0-1-5,1-2-7' -> {(domain, server): seq}; the highest seq wins for a repeated pair.
    An empty string is the empty position."""
    out: dict[tuple[int, int], int] = {}
    for item in _squash(text).split(","):
        if not item:
            continue
        match = MARIADB_GTID_RE.match(item)
        if not match:
            raise ValueError(f"not a MariaDB GTID (domain-server-seq): {item!r}")
        domain, server, seq = (int(g) for g in match.groups())
        out[(domain, server)] = max(seq, out.get((domain, server), 0))
    return out


MYSQL_UUID_RE = re.compile(r"^[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}(:[A-Za-z0-9_]+)?$")


def parse_mysql_gtid_set(text: str | None) -> dict[str, list[tuple[int, int]]]:
    """'uuid:1-5:7,uuid2:3' -> {uuid: [(1, 5), (7, 7)], uuid2: [(3, 3)]}, intervals merged."""
    out: dict[str, list[tuple[int, int]]] = {}
    for item in _squash(text).split(","):
        if not item:
            continue
        parts = item.split(":")
        source, ranges = parts[0].lower(), parts[1:]
        while ranges and not ranges[0][:1].isdigit():  # tagged GTIDs: uuid:tag:1-5
            source = f"{source}:{ranges.pop(0)}"
        if not MYSQL_UUID_RE.match(source) or not ranges:
            raise ValueError(f"not a MySQL GTID set item (uuid:interval...): {item!r}")
        for interval in ranges:
            match = re.match(r"^(\d+)(?:-(\d+))?$", interval)
            if not match:
                raise ValueError(f"not a GTID interval: {interval!r} in {item!r}")
            start, end = int(match.group(1)), int(match.group(2) or match.group(1))
            if end < start:
                raise ValueError(f"GTID interval ends before it starts: {interval!r}")
            out.setdefault(source, []).append((start, end))
    return {k: _merge(v) for k, v in out.items()}


def _merge(intervals: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _covered(interval: tuple[int, int], intervals: list[tuple[int, int]]) -> bool:
    return any(s <= interval[0] and interval[1] <= e for s, e in intervals)


def gtid_subset(part: str | None, whole: str | None, flavor: Flavor) -> bool:
    """Whether every transaction of `part` is in `whole`.

    MariaDB: lists of domain-server-seq. Within a domain and originating server sequence
    numbers only grow, so (d, s, n) is in `whole` when `whole` has (d, s, m) with m >= n.
    Compare gtid_binlog_state values (one entry per domain AND server) for an exact answer;
    gtid_current_pos keeps only the last GTID per domain, so a replica that once replicated
    from an earlier master would look errant against it.
    MySQL: GTID sets (uuid:intervals)."""
    if flavor.is_mariadb:
        have = parse_mariadb_gtids(whole)
        return all(have.get(key, -1) >= seq for key, seq in parse_mariadb_gtids(part).items())
    have_set = parse_mysql_gtid_set(whole)
    return all(_covered(iv, have_set.get(src, []))
               for src, ivs in parse_mysql_gtid_set(part).items() for iv in ivs)


def is_errant(replica_gtids: str | None, source_gtids: str | None, flavor: Flavor) -> bool:
    """Whether the replica has transactions its source does not (errant transactions): then
    pointing it at that source would diverge. See gtid_subset for which values to pass."""
    return not gtid_subset(replica_gtids, source_gtids, flavor)


def errant_gtids(replica_gtids: str | None, source_gtids: str | None, flavor: Flavor) -> str:
    """The part of the replica's GTIDs the source lacks, in the flavor's notation ('' if none)."""
    if flavor.is_mariadb:
        have = parse_mariadb_gtids(source_gtids)
        return ",".join(f"{d}-{s}-{n}" for (d, s), n in parse_mariadb_gtids(replica_gtids).items()
                        if have.get((d, s), -1) < n)
    have_set = parse_mysql_gtid_set(source_gtids)
    items = []
    for src, ivs in parse_mysql_gtid_set(replica_gtids).items():
        missing = [iv for iv in ivs if not _covered(iv, have_set.get(src, []))]
        if missing:
            items.append(src + "".join(f":{a}" if a == b else f":{a}-{b}" for a, b in missing))
    return ",".join(items)


def oldest_binlog_gtid_pos(conn: Connection, flavor: Flavor | None = None) -> str | None:
    """MariaDB: the GTID position at the start of the oldest binary log still on the server:
    '' when the binary logs hold the whole history (an empty replica can replay them from the
    start), else the position a new replica must already have (seed it first). None when the
    binary log is off. MySQL: gtid_purged ('' = nothing purged)."""
    flavor = flavor or server_flavor(conn)
    if not _on(query_value(conn, "SELECT @@GLOBAL.log_bin")):
        return None
    if not flavor.is_mariadb:
        return _squash(query_value(conn, "SELECT @@GLOBAL.gtid_purged"))
    logs = query_rows(conn, "SHOW BINARY LOGS")
    if not logs:
        return None
    first = str(logs[0].get("Log_name"))
    return _squash(query_value(conn, "SELECT BINLOG_GTID_POS(%s, 4)", (first,)))


def binlogs_beyond(conn: Connection, position: str, flavor: Flavor | None = None) -> list[str]:
    """The binary log files (full paths, oldest first) that hold every transaction past
    `position` (another server's GTIDs, such as a new master's): what to save before a
    diverged server's data is thrown away. MariaDB: from the newest file back to the first
    whose starting GTID position `position` already covers. MySQL: every file (its starting
    GTID sets are not read here). [] when the binary log is off."""
    flavor = flavor or server_flavor(conn)
    if not _on(query_value(conn, "SELECT @@GLOBAL.log_bin")):
        return []
    names = [str(row.get("Log_name")) for row in query_rows(conn, "SHOW BINARY LOGS")]
    base = str(query_value(conn, "SELECT @@GLOBAL.log_bin_basename") or "")
    folder = base.rsplit("/", 1)[0] if "/" in base else ""
    chosen: list[str] = []
    for name in reversed(names):
        chosen.insert(0, name)
        if flavor.is_mariadb:
            start = _squash(query_value(conn, "SELECT BINLOG_GTID_POS(%s, 4)", (name,)))
            if not errant_gtids(start, position, flavor):
                break
    return [f"{folder}/{name}" if folder and not name.startswith("/") else name
            for name in chosen]


# ---------------------------------------------------------------------------------------------
# Semi-synchronous replication

SEMI_SYNC_KEYS = ("master_enabled", "slave_enabled", "wait_point", "timeout", "master_status",
                  "master_clients", "master_yes_tx", "master_no_tx", "slave_status")


def semi_sync_names(flavor: Flavor) -> dict[str, str]:
    """Variable (lower case) and status (capitalised) names of semi-synchronous replication.
    MariaDB has it built in (10.3+); MySQL needs its plugin and renamed everything in 8.0.26."""
    if not flavor.is_mariadb and flavor.at_least(8, 0, 26):
        master, slave = "source", "replica"
    else:
        master, slave = "master", "slave"
    return {
        "master_enabled": f"rpl_semi_sync_{master}_enabled",
        "slave_enabled": f"rpl_semi_sync_{slave}_enabled",
        "wait_point": f"rpl_semi_sync_{master}_wait_point",
        "timeout": f"rpl_semi_sync_{master}_timeout",
        "master_status": f"Rpl_semi_sync_{master}_status",
        "master_clients": f"Rpl_semi_sync_{master}_clients",
        "master_yes_tx": f"Rpl_semi_sync_{master}_yes_tx",
        "master_no_tx": f"Rpl_semi_sync_{master}_no_tx",
        "slave_status": f"Rpl_semi_sync_{slave}_status",
    }


def semi_sync_status(conn: Connection, flavor: Flavor | None = None) -> dict[str, Any]:
    """Normalised: master_enabled, slave_enabled, master_status, slave_status (bool);
    wait_point (e.g. 'AFTER_SYNC' or None); timeout (ms or None); master_clients,
    master_yes_tx, master_no_tx (int). Missing variables (MySQL without the plugin) read as
    off and zero."""
    flavor = flavor or server_flavor(conn)
    names = semi_sync_names(flavor)
    variables = _variables(conn, "rpl_semi_sync%")
    status = _variables(conn, "Rpl_semi_sync%", status=True)
    value = {key: (status if name[0].isupper() else variables).get(name.lower())
             for key, name in names.items()}
    return {
        "master_enabled": _on(value["master_enabled"]),
        "slave_enabled": _on(value["slave_enabled"]),
        "wait_point": str(value["wait_point"]) if value["wait_point"] is not None else None,
        "timeout": _int(value["timeout"]),
        "master_status": _on(value["master_status"]),
        "master_clients": _int(value["master_clients"]) or 0,
        "master_yes_tx": _int(value["master_yes_tx"]) or 0,
        "master_no_tx": _int(value["master_no_tx"]) or 0,
        "slave_status": _on(value["slave_status"]),
    }


def read_only_state(conn: Connection, flavor: Flavor | None = None) -> dict[str, bool]:
    """read_only, and super_read_only where the server has it (MySQL; MariaDB instead lets
    only accounts with READ_ONLY ADMIN write when read_only is on)."""
    flavor = flavor or server_flavor(conn)
    out = {"read_only": _on(query_value(conn, "SELECT @@GLOBAL.read_only"))}
    if not flavor.is_mariadb:
        out["super_read_only"] = _on(query_value(conn, "SELECT @@GLOBAL.super_read_only"))
    return out


# ---------------------------------------------------------------------------------------------
# Accounts


def monitor_privileges(flavor: Flavor) -> list[str]:
    """Global privileges of a monitoring account that reads replica status, the binary log
    position and the process list, in the names SHOW GRANTS prints (so that comparing grants
    is exact). MariaDB 10.5.9+ split REPLICATION CLIENT into BINLOG MONITOR and SLAVE MONITOR
    (its alias REPLICA MONITOR)."""
    if flavor.is_mariadb and flavor.at_least(10, 5, 9):
        return ["PROCESS", "BINLOG MONITOR", "SLAVE MONITOR"]
    return ["PROCESS", "REPLICATION CLIENT"]


def replication_privileges(flavor: Flavor) -> list[str]:
    """Global privileges of the replication account: reading the binary log, and what a
    consistent logical copy of a server needs (mariadb-dump --single-transaction
    --master-data --gtid, used to seed a new replica). REPLICATION SLAVE already streams every
    row change, so the read privileges add no data the account could not see."""
    binlog_status = "BINLOG MONITOR" if flavor.is_mariadb and flavor.at_least(10, 5, 2) \
        else "REPLICATION CLIENT"
    return ["SELECT", "REPLICATION SLAVE", binlog_status, "SHOW VIEW", "EVENT", "TRIGGER"]


def failover_privileges(flavor: Flavor) -> list[str]:
    """Global privileges of the failover watcher's account: read replica status and GTIDs
    (as the monitoring account), make a server read-only or writable, turn semi-sync on or
    off, stop, point and reset replication (RESET SLAVE needs RELOAD), and still log in when
    max_connections is reached. No data privileges. In SHOW GRANTS order and names (MariaDB
    10.11's SUPER no longer covers READ_ONLY ADMIN)."""
    if flavor.is_mariadb and flavor.at_least(10, 5, 9):
        return ["RELOAD", "PROCESS", "BINLOG MONITOR", "CONNECTION ADMIN", "READ_ONLY ADMIN",
                "REPLICATION SLAVE ADMIN", "REPLICATION MASTER ADMIN", "SLAVE MONITOR"]
    if not flavor.is_mariadb and flavor.at_least(8, 0, 0):
        return ["RELOAD", "PROCESS", "REPLICATION CLIENT", "CONNECTION_ADMIN",
                "REPLICATION_SLAVE_ADMIN", "SYSTEM_VARIABLES_ADMIN"]
    return ["RELOAD", "PROCESS", "SUPER", "REPLICATION CLIENT"]


def host_pattern(pattern: str, flavor: Flavor) -> str:
    """An account host part for an address pattern: an IPv4/IPv6 address as is, 'localhost',
    or a network. MariaDB takes networks as address/netmask (192.0.2.0/255.255.255.0), MySQL
    8.0.23+ also as CIDR; a CIDR given for MariaDB is turned into address/netmask."""
    text = str(pattern).strip()
    if text == "localhost":
        return text
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    if "/" not in text:
        raise ValueError(f"account host {pattern!r} is neither an address, a network "
                         "(address/netmask or CIDR) nor localhost")
    address, mask = text.split("/", 1)
    try:
        if "." in mask:
            network = ipaddress.ip_network(f"{address}/{mask}", strict=True)
        else:
            network = ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        raise ValueError(f"account host {pattern!r} is not a valid network: {exc}") from None
    cidr_ok = not flavor.is_mariadb and flavor.at_least(8, 0, 23)
    if network.version == 6 and not cidr_ok:
        raise ValueError(f"account host {pattern!r}: {flavor} has no IPv6 network patterns")
    if cidr_ok:
        return str(network)
    return f"{network.network_address}/{network.netmask}"


# ---------------------------------------------------------------------------------------------
# What the failover watcher asks every round


def gtid_origin(conn: Connection, flavor: Flavor | None = None) -> str:
    """The id this server writes into the GTIDs of its own transactions: MariaDB's
    server_id, MySQL's server_uuid (lower case)."""
    flavor = flavor or server_flavor(conn)
    name = "server_id" if flavor.is_mariadb else "server_uuid"
    return str(query_value(conn, f"SELECT @@GLOBAL.{name}")).lower()


def liveness(conn: Connection, flavor: Flavor | None = None) -> dict[str, Any]:
    """uptime (seconds since the server started), heartbeats (heartbeats received from the
    replication source so far, None when unknown) and heartbeat_period (seconds, 0 when
    off). MariaDB keeps the heartbeat counters in global status (default connection);
    MySQL in performance_schema, per channel."""
    flavor = flavor or server_flavor(conn)
    uptime = _int(_variables(conn, "Uptime", status=True).get("uptime"))
    heartbeats: int | None = None
    period: float | None = None
    if flavor.is_mariadb:
        status = _variables(conn, "Slave_%heartbeat%", status=True)
        heartbeats = _int(status.get("slave_received_heartbeats"))
        period = _float(status.get("slave_heartbeat_period"))
    else:
        rows = query_rows(conn, "SELECT c.COUNT_RECEIVED_HEARTBEATS AS received, "
                                "f.HEARTBEAT_INTERVAL AS period "
                                "FROM performance_schema.replication_connection_status c "
                                "JOIN performance_schema.replication_connection_configuration f "
                                "USING (CHANNEL_NAME) WHERE CHANNEL_NAME = ''")
        if rows:
            heartbeats, period = _int(rows[0].get("received")), _float(rows[0].get("period"))
    return {"uptime": uptime, "heartbeats": heartbeats, "heartbeat_period": period}


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def read_only_statements(flavor: Flavor, on: bool) -> list[Statement]:
    """Statements that make a server read-only (on) or writable. MySQL also sets
    super_read_only (on: it implies read_only; off: it must go first). MariaDB has no
    super_read_only: accounts with READ_ONLY ADMIN (or SUPER before 10.11) can still write,
    which application accounts never have."""
    if flavor.is_mariadb:
        return [("SET GLOBAL read_only = %s", ("ON" if on else "OFF",))]
    if on:
        return [("SET GLOBAL super_read_only = ON", ())]
    return [("SET GLOBAL super_read_only = OFF", ()), ("SET GLOBAL read_only = OFF", ())]


def semi_sync_statements(flavor: Flavor, *, master: bool | None = None,
                         slave: bool | None = None,
                         wait_point: str | None = None) -> list[Statement]:
    """SET GLOBAL statements for the semi-synchronous sides given (None leaves one alone);
    wait_point AFTER_SYNC or AFTER_COMMIT."""
    names = semi_sync_names(flavor)
    statements: list[Statement] = []
    if wait_point is not None:
        if wait_point.upper() not in ("AFTER_SYNC", "AFTER_COMMIT"):
            raise ValueError(f"wait_point must be AFTER_SYNC or AFTER_COMMIT, got {wait_point!r}")
        statements.append((f"SET GLOBAL {names['wait_point']} = %s", (wait_point.upper(),)))
    for key, value in (("master_enabled", master), ("slave_enabled", slave)):
        if value is not None:
            statements.append((f"SET GLOBAL {names[key]} = %s", ("ON" if value else "OFF",)))
    return statements
