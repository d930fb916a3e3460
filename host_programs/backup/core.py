"""Backups of a MariaDB database cluster (and so of every product on it) to S3: the pure parts.

Everything here is plain Python (no Ansible, no boto3, no subprocess), so the backup
program on the database servers (host_programs/backup/program.py), the restore playbook and
the unit tests share one definition of:

- the S3 layout (keys of snapshots, manifests, the "latest" pointer, binary logs);
- GTID positions (MariaDB's "domain-server-seq" lists) and the position mariabackup records;
- the manifest written after a verified upload and the "latest" pointer derived from it;
- retention (the newest N snapshots plus the newest of each of the last D days);
- reading MariaDB binary log files (event boundaries, GTIDs, timestamps);
- which binary logs to ship, where a restarted stream resumes, and the restore plan
  (which snapshot, which binary log files from which GTID, up to which time).

Layout under the bucket, for database cluster C (see roles/mysql_backup/README.md):

    C/latest.json                                   pointer to the newest verified snapshot
    C/snapshots/<stamp>-<server>.xbstream.zst       mariabackup stream, zstd-compressed
    C/snapshots/<stamp>-<server>.json               its manifest (GTID, sha256, size, ...)
    C/binlogs/<series>/<file>                       a closed binary log file
    C/binlogs/<series>/<file>.seg-<offset>          the growing file, shipped in segments

The code runs on EL 9 (Python 3.9) as well as Debian 12 (3.11): no 3.10+ syntax at run time.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any, BinaryIO

from module_utils.mysql_flavor import parse_mariadb_gtids

UTC = timezone.utc  # noqa: UP017 (datetime.UTC needs Python 3.11; EL 9 has 3.9)
FORMAT_VERSION = 1
STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
SNAPSHOT_SUFFIX = ".xbstream.zst"
MANIFEST_SUFFIX = ".json"
SEGMENT_MARK = ".seg-"
SEGMENT_DIGITS = 12

_CLUSTER_RE = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_SERVER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_BINLOG_RE = re.compile(r"^(?P<base>[A-Za-z0-9_.-]+)\.(?P<num>[0-9]{6,})$")
_STAMP_RE = r"[0-9]{8}T[0-9]{6}Z"
_SNAPSHOT_KEY_RE = re.compile(
    r"^(?P<cluster>[^/]+)/snapshots/(?P<stamp>" + _STAMP_RE + r")-(?P<server>[^/]+?)"
    r"(?P<suffix>" + re.escape(SNAPSHOT_SUFFIX) + "|" + re.escape(MANIFEST_SUFFIX) + r")$")
_BINLOG_KEY_RE = re.compile(
    r"^(?P<cluster>[^/]+)/binlogs/(?P<series>[^/]+)/(?P<name>[A-Za-z0-9_.-]+?\.[0-9]{6,})"
    r"(?:" + re.escape(SEGMENT_MARK) + r"(?P<offset>[0-9]{" + str(SEGMENT_DIGITS) + r"}))?$")


class BackupError(RuntimeError):
    """A backup, shipping or restore step failed; the message says which and why."""


# --------------------------------------------------------------------------- names and keys

def check_cluster(cluster: str) -> str:
    if not isinstance(cluster, str) or not _CLUSTER_RE.match(cluster):
        raise BackupError(f"cluster name {cluster!r} is not a lower-case id "
                          "(letters, digits, '_' or '-', starting with a letter)")
    return cluster


def check_server(server: str, what: str = "server") -> str:
    if not isinstance(server, str) or not _SERVER_RE.match(server):
        raise BackupError(f"{what} name {server!r} is not a host name "
                          "(letters, digits, '.', '_' or '-')")
    return server


def stamp(moment: datetime) -> str:
    """The UTC second of `moment` as used in keys: 20261128T091852Z."""
    return to_utc(moment).strftime(STAMP_FORMAT)


def parse_stamp(text: str) -> datetime:
    return datetime.strptime(text, STAMP_FORMAT).replace(tzinfo=UTC)


def to_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise BackupError(f"time {moment.isoformat()} has no time zone")
    return moment.astimezone(UTC)


def parse_time(text: str) -> datetime:
    """A point in time given by a person: ISO 8601 with or without 'T', with an offset or
    'Z'; without one it is UTC ('2026-11-28 09:18:52' is 09:18:52Z)."""
    value = str(text).strip()
    if not value:
        raise BackupError("restore time is empty")
    try:
        moment = datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith(("Z", "z"))
                                        else value)
    except ValueError:
        raise BackupError(f"restore time {text!r} is not an ISO 8601 date and time "
                          "(e.g. 2026-11-28T09:18:52Z)") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def cluster_prefix(cluster: str) -> str:
    return f"{check_cluster(cluster)}/"


def latest_key(cluster: str) -> str:
    return f"{check_cluster(cluster)}/latest.json"


def snapshots_prefix(cluster: str) -> str:
    return f"{check_cluster(cluster)}/snapshots/"


def binlogs_prefix(cluster: str, series: str | None = None) -> str:
    base = f"{check_cluster(cluster)}/binlogs/"
    return base if series is None else f"{base}{check_server(series, 'binlog series')}/"


@dataclass(frozen=True)
class SnapshotKeys:
    stamp: str
    data: str
    manifest: str


def snapshot_keys(cluster: str, server: str, moment: datetime) -> SnapshotKeys:
    """Unique, time-ordered keys of one snapshot and its manifest."""
    label = stamp(moment)
    base = f"{snapshots_prefix(cluster)}{label}-{check_server(server)}"
    return SnapshotKeys(label, base + SNAPSHOT_SUFFIX, base + MANIFEST_SUFFIX)


@dataclass(frozen=True)
class SnapshotKeyInfo:
    cluster: str
    stamp: str
    server: str
    kind: str  # "data" or "manifest"

    @property
    def moment(self) -> datetime:
        return parse_stamp(self.stamp)

    @property
    def base(self) -> str:
        return f"{self.cluster}/snapshots/{self.stamp}-{self.server}"


def parse_snapshot_key(key: str) -> SnapshotKeyInfo | None:
    """What a key under snapshots/ names, or None for a key that is not ours."""
    match = _SNAPSHOT_KEY_RE.match(key)
    if not match:
        return None
    kind = "data" if match["suffix"] == SNAPSHOT_SUFFIX else "manifest"
    return SnapshotKeyInfo(match["cluster"], match["stamp"], match["server"], kind)


def binlog_series(master_host: str, server_id: int) -> str:
    """The name of one master's stream of binary logs: its host and server_id, so that
    a failover (a new master) or a rebuilt master (a new server_id) starts a new series
    instead of overwriting files of the same name."""
    check_server(master_host, "master")
    if not isinstance(server_id, int) or server_id < 1:
        raise BackupError(f"master {master_host}: server_id {server_id!r} is not a positive "
                          "integer")
    return f"{master_host}-sid{server_id}"


def is_series_of(series: str | None, base: str) -> bool:
    """Whether `series` is one of the series of the master whose binlog_series is `base`:
    `base` itself, or a later stint `base-<stamp>` (see stream_series)."""
    if not series:
        return False
    return series == base or bool(re.fullmatch(re.escape(base) + "-" + _STAMP_RE, series))


def stream_series(base: str, current: str | None, known: Iterable[str],
                  moment: datetime) -> tuple[str, str]:
    """(series to stream the master `base` into, why). The series being streamed
    (`current`) when it is this master's: a restarted stream resumes there. Otherwise the
    stream switches to this master (a failover, a switchover back, a new backup host): the
    plain `base` the first time, a new stint `base-<stamp>` when `base` already has files
    (`known`: series with files in S3, in the shipping state or here). A master followed
    again, or rebuilt with the same server_id (its binary logs numbered from 1 again), so
    never writes into names shipped before; each stint starts where the shipped binary logs
    end (stream_start_file), and the restore chains the series by GTID."""
    if current and is_series_of(current, base):
        return current, f"resuming series {current}"
    if base not in set(known):
        return base, f"new series {base}"
    series = f"{base}-{stamp(moment)}"
    check_server(series, "binlog series")
    return series, f"new series {series} (the master is followed again: {base} has files)"


def binlog_key(cluster: str, series: str, name: str) -> str:
    check_binlog_name(name)
    return f"{binlogs_prefix(cluster, series)}{name}"


def segment_key(cluster: str, series: str, name: str, offset: int) -> str:
    return f"{binlog_key(cluster, series, name)}{SEGMENT_MARK}{offset:0{SEGMENT_DIGITS}d}"


@dataclass(frozen=True)
class BinlogKeyInfo:
    cluster: str
    series: str
    name: str
    offset: int | None  # None: the closed file; an int: a segment starting there


def parse_binlog_key(key: str) -> BinlogKeyInfo | None:
    match = _BINLOG_KEY_RE.match(key)
    if not match:
        return None
    offset = match["offset"]
    return BinlogKeyInfo(match["cluster"], match["series"], match["name"],
                         None if offset is None else int(offset))


def check_binlog_name(name: str) -> str:
    if not isinstance(name, str) or not _BINLOG_RE.match(name):
        raise BackupError(f"{name!r} is not a binary log file name (base.NNNNNN)")
    return name


def binlog_order(name: str) -> tuple[str, int]:
    """Sort key of binary log file names: numeric on the suffix (000999 < 1000000)."""
    match = _BINLOG_RE.match(name)
    if not match:
        raise BackupError(f"{name!r} is not a binary log file name (base.NNNNNN)")
    return match["base"], int(match["num"])


def is_binlog_name(name: str) -> bool:
    return bool(_BINLOG_RE.match(name))


# --------------------------------------------------------------------------- GTID positions

def parse_gtid_list(text: str | None) -> dict[int, tuple[int, int]]:
    """A MariaDB GTID position as {domain: (server, seq)}: '0-11-5,1-12-40' ->
    {0: (11, 5), 1: (12, 40)}; '' -> {}. A binlog *state* (several servers of one domain)
    collapses to the newest GTID of each domain: under gtid_strict_mode sequence numbers
    only grow within a domain, so positions compare per domain."""
    try:
        exact = parse_mariadb_gtids(text)
    except ValueError as exc:
        raise BackupError(f"GTID position {text!r}: {exc}") from None
    result: dict[int, tuple[int, int]] = {}
    for (domain, server), seq in exact.items():
        if domain not in result or seq > result[domain][1]:
            result[domain] = (server, seq)
    return result


def format_gtid_list(gtid: Mapping[int, tuple[int, int]]) -> str:
    return ",".join(f"{d}-{gtid[d][0]}-{gtid[d][1]}" for d in sorted(gtid))


def gtid_covers(position: Mapping[int, tuple[int, int]],
                other: Mapping[int, tuple[int, int]]) -> bool:
    """True when every transaction up to `other` is also in `position` (per domain the
    sequence number of `other` is not beyond that of `position`; gtid_strict_mode keeps
    sequence numbers increasing within a domain)."""
    return all(seq <= position.get(domain, (0, 0))[1] for domain, (_, seq) in other.items())


def gtid_merge(a: Mapping[int, tuple[int, int]],
               b: Mapping[int, tuple[int, int]]) -> dict[int, tuple[int, int]]:
    merged = dict(a)
    for domain, value in b.items():
        if domain not in merged or value[1] > merged[domain][1]:
            merged[domain] = value
    return merged


# --------------------------------------------------------------------------- mariabackup output

@dataclass(frozen=True)
class BinlogPosition:
    file: str
    position: int
    gtid: str


_INFO_LINE_RE = re.compile(
    r"^binlog_pos\s*=\s*filename\s+'(?P<file>[^']*)',\s*position\s+'(?P<pos>[0-9]+)'"
    r"(?:,\s*GTID of the last change\s+'(?P<gtid>[^']*)')?", re.M)


def parse_backup_binlog_info(text: str) -> BinlogPosition:
    """The binary log position of a backup, from either file mariabackup writes:
    `xtrabackup_info` / `mariadb_backup_info` (binlog_pos = filename '...', position '...',
    GTID of the last change '...') or `xtrabackup_binlog_info` /
    `mariadb_backup_binlog_info` (file <TAB> position <TAB> GTID)."""
    match = _INFO_LINE_RE.search(text)
    if match:
        gtid = match["gtid"] or ""
        parse_gtid_list(gtid)
        return BinlogPosition(match["file"], int(match["pos"]), gtid)
    for line in text.splitlines():
        fields = line.strip().split("\t") if "\t" in line else line.split()
        if len(fields) >= 2 and fields[1].isdigit() and is_binlog_name(fields[0]):
            gtid = fields[2].strip() if len(fields) > 2 else ""
            parse_gtid_list(gtid)
            return BinlogPosition(fields[0], int(fields[1]), gtid)
    raise BackupError("mariabackup recorded no binary log position (is log_bin on?): "
                      + (text.strip().splitlines() or ["empty file"])[0][:200])


# --------------------------------------------------------------------------- manifests, latest

MANIFEST_FIELDS = ("format", "cluster", "server", "data_key", "manifest_key", "size", "sha256",
                   "started_at", "finished_at", "gtid", "binlog_file", "binlog_position")


def iso(moment: datetime) -> str:
    return to_utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def make_manifest(*, cluster: str, server: str, keys: SnapshotKeys, size: int, sha256: str,
                  started_at: datetime, finished_at: datetime, position: BinlogPosition,
                  extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "format": FORMAT_VERSION,
        "cluster": check_cluster(cluster),
        "server": check_server(server),
        "data_key": keys.data,
        "manifest_key": keys.manifest,
        "size": int(size),
        "sha256": sha256,
        "compression": "zstd",
        "stream": "xbstream",
        "started_at": iso(started_at),
        "finished_at": iso(finished_at),
        "gtid": position.gtid,
        "binlog_file": position.file,
        "binlog_position": position.position,
    }
    doc.update(extra or {})
    return validate_manifest(doc)


def with_legacy_cluster(doc: Mapping[str, Any]) -> dict[str, Any]:
    """`doc` (a manifest, a "latest" pointer) with `cluster`: one written by the previous
    version of the program has `product` instead, which named the same S3 prefix."""
    out = dict(doc)
    if "cluster" not in out and "product" in out:
        out["cluster"] = out.pop("product")
    return out


def validate_manifest(doc: Any, where: str = "manifest") -> dict[str, Any]:
    """The manifest, checked: every field there with the right type, or BackupError. A
    manifest written before backups were per cluster names its `product` instead: the
    cluster of that name (the same prefix in S3)."""
    if not isinstance(doc, Mapping):
        raise BackupError(f"{where} is not a JSON object")
    doc = with_legacy_cluster(doc)
    missing = [f for f in MANIFEST_FIELDS if f not in doc]
    if missing:
        raise BackupError(f"{where} lacks {', '.join(missing)}")
    if doc["format"] != FORMAT_VERSION:
        raise BackupError(f"{where} has format {doc['format']!r}, this program reads "
                          f"{FORMAT_VERSION}")
    if not isinstance(doc["size"], int) or doc["size"] <= 0:
        raise BackupError(f"{where}: size {doc['size']!r} is not a positive integer")
    if not re.fullmatch(r"[0-9a-f]{64}", str(doc["sha256"])):
        raise BackupError(f"{where}: sha256 {doc['sha256']!r} is not a SHA-256 hex digest")
    info = parse_snapshot_key(str(doc["data_key"]))
    if info is None or info.kind != "data" or info.cluster != doc["cluster"]:
        raise BackupError(f"{where}: data_key {doc['data_key']!r} is not a snapshot key of "
                          f"cluster {doc['cluster']!r}")
    parse_gtid_list(doc["gtid"])
    for name in ("started_at", "finished_at"):
        parse_time(str(doc[name]))
    return dict(doc)


def manifest_finished(doc: Mapping[str, Any]) -> datetime:
    return parse_time(str(doc["finished_at"]))


def latest_document(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The small "latest" pointer: enough to restore without listing the bucket."""
    keep = ("format", "cluster", "server", "data_key", "manifest_key", "size", "sha256",
            "finished_at", "gtid", "binlog_file", "binlog_position")
    return {k: manifest[k] for k in keep}


def should_replace_latest(current: Mapping[str, Any] | None,
                          candidate: Mapping[str, Any]) -> bool:
    """Latest only moves forward: a snapshot that finished earlier than the one the pointer
    names (a slow run overtaken by a newer one) does not replace it."""
    if not current:
        return True
    try:
        return manifest_finished(candidate) >= manifest_finished(current)
    except (KeyError, BackupError):
        return True  # an unreadable pointer is replaced by a good one


# --------------------------------------------------------------------------- retention

def select_retained(manifests: Sequence[Mapping[str, Any]], keep_recent: int, keep_daily: int,
                    protect: Iterable[str] = ()) -> tuple[list[dict[str, Any]],
                                                          list[dict[str, Any]]]:
    """(kept, expired) snapshots: the `keep_recent` newest, plus the newest snapshot of each
    of the `keep_daily` most recent UTC days that have one, plus every snapshot whose data
    key is in `protect` (what "latest" names). Both lists newest first."""
    if keep_recent < 1:
        raise BackupError(f"keep_recent must be at least 1, got {keep_recent}")
    if keep_daily < 0:
        raise BackupError(f"keep_daily must not be negative, got {keep_daily}")
    ordered = sorted((dict(m) for m in manifests), key=lambda m: (m["finished_at"],
                                                                  m["data_key"]), reverse=True)
    protected = set(protect)
    kept_keys = {m["data_key"] for m in ordered[:keep_recent]} | protected
    days: list[str] = []
    for doc in ordered:
        day = manifest_finished(doc).date().isoformat()
        if day not in days:
            if len(days) >= keep_daily:
                break
            days.append(day)
            kept_keys.add(doc["data_key"])
    kept = [m for m in ordered if m["data_key"] in kept_keys]
    expired = [m for m in ordered if m["data_key"] not in kept_keys]
    return kept, expired


def orphan_snapshot_data(data_keys: Mapping[str, datetime], manifest_keys: Iterable[str],
                         now: datetime, grace: timedelta) -> list[str]:
    """Data objects without a manifest, older than `grace`: left by a run that died between
    completing the upload and writing the manifest (never named by "latest")."""
    bases_with_manifest = set()
    for key in manifest_keys:
        info = parse_snapshot_key(key)
        if info:
            bases_with_manifest.add(info.base)
    orphans = []
    for key, modified in data_keys.items():
        info = parse_snapshot_key(key)
        if info and info.base not in bases_with_manifest and now - modified > grace:
            orphans.append(key)
    return sorted(orphans)


@dataclass(frozen=True)
class BinlogObject:
    """One binary log object in S3 as the restore plan and retention see it: a closed file,
    or the growing one assembled from a chain of segments."""
    series: str
    name: str
    keys: tuple[str, ...]              # the object, or the segments in order
    final: bool
    size: int
    gtid_start: dict[int, tuple[int, int]] = field(default_factory=dict)
    gtid_end: dict[int, tuple[int, int]] = field(default_factory=dict)
    first_ts: int = 0                  # timestamp of the file's first event (its creation)
    last_ts: int = 0                   # timestamp of the last complete event shipped
    sha256: tuple[str, ...] = ()       # per key, "" when unknown


def binlogs_to_delete(objects: Sequence[BinlogObject],
                      kept: Sequence[Mapping[str, Any]]) -> list[BinlogObject]:
    """Closed binary log files every kept snapshot already contains: all their transactions
    are at or before the oldest kept snapshot's GTID position and they ended before it
    finished. Nothing is deleted when no snapshot is kept."""
    if not kept:
        return []
    oldest = min(kept, key=lambda m: m["finished_at"])
    position = parse_gtid_list(oldest["gtid"])
    finished = int(manifest_finished(oldest).timestamp())
    return [o for o in objects
            if o.final and o.gtid_end and gtid_covers(position, o.gtid_end)
            and o.last_ts < finished]


# --------------------------------------------------------------------------- binary log files

BINLOG_MAGIC = b"\xfebin"
HEADER_LEN = 19
_HEADER = struct.Struct("<IBIIIH")
ROTATE_EVENT = 4
STOP_EVENT = 3
FORMAT_DESCRIPTION_EVENT = 15
GTID_EVENT = 162
GTID_LIST_EVENT = 163
START_ENCRYPTION_EVENT = 164


@dataclass(frozen=True)
class BinlogScan:
    """What a pass over (part of) a binary log file found. `end` is the offset just after
    the last complete event: bytes [0, end) are whole events, safe to ship."""
    end: int
    gtid_start: dict[int, tuple[int, int]]
    gtid_end: dict[int, tuple[int, int]]
    first_ts: int
    last_ts: int
    events: int
    closed: bool  # the file ends with a rotate or stop event: the server moved on


def scan_binlog(stream: BinaryIO, start: int = 0, previous: BinlogScan | None = None,
                limit: int | None = None) -> BinlogScan:
    """Walk the events of a binary log from `start` (0, or the `end` of `previous`) up to
    `limit` bytes (default: the end of the file), reading only headers and the bodies of
    GTID and GTID list events. A trailing incomplete event (the file is still being
    written) is left out. MariaDB's GTID list event at the top of each file gives the
    position before the file (for a domain it does not name, the GTID before the file's
    first one of that domain); each GTID event moves it on."""
    if previous is not None:
        start = previous.end
        gtid_start, gtid_end = dict(previous.gtid_start), dict(previous.gtid_end)
        first_ts, last_ts, events = previous.first_ts, previous.last_ts, previous.events
    else:
        gtid_start, gtid_end, first_ts, last_ts, events = {}, {}, 0, 0, 0
    if limit is None:
        stream.seek(0, 2)
        limit = stream.tell()
    offset, closed = start, False
    if offset == 0:
        stream.seek(0)
        magic = stream.read(4)
        if len(magic) < 4 or limit < 4:
            return BinlogScan(0, gtid_start, gtid_end, first_ts, last_ts, 0, False)
        if magic != BINLOG_MAGIC:
            raise BackupError("not a binary log file (bad magic number)")
        offset = 4
    while offset + HEADER_LEN <= limit:
        stream.seek(offset)
        header = stream.read(HEADER_LEN)
        if len(header) < HEADER_LEN:
            break
        timestamp, kind, server_id, length, _next, _flags = _HEADER.unpack(header)
        if length < HEADER_LEN:
            raise BackupError(f"binary log event at offset {offset} has length {length}")
        if offset + length > limit:
            break
        if kind == START_ENCRYPTION_EVENT:
            raise BackupError("encrypted binary logs cannot be scanned for GTIDs")
        if kind == GTID_EVENT:
            body = stream.read(12)
            if len(body) < 12:
                break
            seq, domain = struct.unpack("<QI", body)
            if domain not in gtid_start and domain not in gtid_end and seq > 1:
                # A domain the list at the top does not name, first met after its first
                # transaction (a server whose binary log began empty, e.g. re-seeded from a
                # backup): the file holds its transactions from this one on only.
                gtid_start[domain] = (server_id, seq - 1)
            gtid_end[domain] = (server_id, seq)
        elif kind == GTID_LIST_EVENT:
            listed = _read_gtid_list(stream, length - HEADER_LEN)
            if events < 3:  # the list at the top of the file: the position before it
                gtid_start = dict(listed)
            gtid_end = gtid_merge(listed, gtid_end)
        offset += length
        events += 1
        first_ts = first_ts or timestamp
        last_ts = max(last_ts, timestamp)
        closed = kind in (ROTATE_EVENT, STOP_EVENT)
    return BinlogScan(offset, gtid_start, gtid_end, first_ts, last_ts, events, closed)


def _read_gtid_list(stream: BinaryIO, body_len: int) -> dict[int, tuple[int, int]]:
    """The body of a GTID list event: a count, then (domain, server, seq) per entry; a
    state may list several servers per domain, the highest sequence number counts."""
    body = stream.read(body_len)
    listed: dict[int, tuple[int, int]] = {}
    if len(body) < 4:
        return listed
    count = struct.unpack_from("<I", body)[0] & 0x0FFFFFFF
    for i in range(count):
        if 4 + 16 * (i + 1) > len(body):
            break
        domain, server, seq = struct.unpack_from("<IIQ", body, 4 + 16 * i)
        listed = gtid_merge(listed, {domain: (server, seq)})
    return listed


# --------------------------------------------------------------------------- shipping

@dataclass(frozen=True)
class ShipAction:
    series: str
    name: str
    kind: str      # "final": upload the closed file whole; "segment": bytes from `offset`
    offset: int = 0


def plan_shipping(local: Mapping[str, Mapping[str, int]], shipped: Mapping[str, Any],
                  current_series: str | None) -> list[ShipAction]:
    """What to upload now. `local`: series -> {file name: size}; `shipped`: series ->
    {file name: {"final": bool, "offset": bytes shipped}} (the shipper's state).

    In the series being streamed (`current_series`) the newest file is the one growing:
    it is shipped as a segment when it has grown past what was shipped. Every other file
    there, and every file of an older series, is closed: shipped whole once."""
    actions: list[ShipAction] = []
    for series in sorted(local):
        files = sorted((n for n in local[series] if is_binlog_name(n)), key=binlog_order)
        done = shipped.get(series, {})
        for index, name in enumerate(files):
            record = done.get(name, {})
            growing = series == current_series and index == len(files) - 1
            if growing:
                if local[series][name] > int(record.get("offset", 0)) and not record.get("final"):
                    actions.append(ShipAction(series, name, "segment",
                                              int(record.get("offset", 0))))
            elif not record.get("final"):
                actions.append(ShipAction(series, name, "final"))
    return actions


def local_files_to_remove(local: Mapping[str, Iterable[str]], shipped: Mapping[str, Any],
                          current_series: str | None) -> list[tuple[str, str]]:
    """Local files already shipped whole that the stream no longer needs: in the current
    series all but the newest two (the newest is where a restarted stream resumes), in
    other series all of them."""
    remove = []
    for series, names in local.items():
        files = sorted((n for n in names if is_binlog_name(n)), key=binlog_order)
        keep = set(files[-2:]) if series == current_series else set()
        done = shipped.get(series, {})
        remove += [(series, n) for n in files
                   if n not in keep and done.get(n, {}).get("final")]
    return sorted(remove)


def stream_start_file(local: Iterable[str], remote: Iterable[str],
                      master: Sequence[str],
                      streamed: Mapping[int, tuple[int, int]] | None = None,
                      start_of: Callable[[str], dict[int, tuple[int, int]] | None] | None = None
                      ) -> tuple[str, str]:
    """(file to start streaming from, why). Resume from the newest file this series has
    locally, else the newest one already in S3 (a new backup host). A resume point the
    master no longer has falls back to its oldest file, and says there is a gap.

    A new series (a new master after a failover: nothing of it here or in S3) starts from
    the newest file of the master whose starting GTID position (`start_of(name)`: the GTID
    list at the top of the file, None when unknown) is already covered by `streamed`, the
    position the earlier series reached: that file and those after it hold every
    transaction after it (the new master logged what it replicated, log_slave_updates), so
    the restore chains the two series by GTID without re-shipping the new master's whole
    history. When no file starts early enough, the oldest one, and the reason says GAP.
    Without a position (the very first start) or `start_of`: the oldest file."""
    if not master:
        raise BackupError("the master lists no binary logs (is log_bin on?)")
    on_master = set(master)
    ordered_master = sorted(master, key=binlog_order)
    oldest = ordered_master[0]
    for source, names in (("local copy", local), ("S3", remote)):
        ordered = sorted((n for n in names if is_binlog_name(n)), key=binlog_order)
        if ordered:
            newest = ordered[-1]
            if newest in on_master:
                return newest, f"resuming at {newest} (newest {source})"
            return oldest, (f"GAP: {newest} (newest {source}) is no longer on the master; "
                            f"starting at its oldest binary log {oldest}")
    if not streamed or start_of is None:
        return oldest, f"first start: from the master's oldest binary log {oldest}"
    reached = format_gtid_list(streamed)
    starts: dict[str, dict[int, tuple[int, int]] | None] = {}
    for name in reversed(ordered_master):
        starts[name] = start_of(name)
        if starts[name] is not None and gtid_covers(streamed, starts[name] or {}):
            return name, (f"new series: from {name}, the master's newest binary log that "
                          f"starts at or before GTID {reached} (streamed before) "
                          f"[starts at {format_gtid_list(starts[name] or {})}]")
    first = starts.get(oldest)
    if first is None:
        return oldest, (f"new series: from the master's oldest binary log {oldest} (where "
                        f"its binary logs start is unknown; streamed before: {reached})")
    return oldest, (f"GAP: the master's oldest binary log {oldest} starts at GTID "
                    f"{format_gtid_list(first)}, after GTID {reached} streamed before: the "
                    "transactions between are in no binary log of this master; starting at "
                    f"{oldest}")


def segment_chain(segments: Mapping[int, int]) -> list[tuple[int, int]]:
    """From segments {offset: size}, the chain [(offset, end), ...] that starts at 0, joins
    end to start, and reaches furthest. Overlapping leftovers (a compacted prefix, a
    re-shipped file) are tolerated; a gap ends the chain."""
    ends: dict[int, list[int]] = {}
    for offset, size in segments.items():
        if size > 0:
            ends.setdefault(offset, []).append(offset + size)
    best: dict[int, list[tuple[int, int]]] = {0: []}
    frontier = [0]
    while frontier:
        start = frontier.pop()
        for end in ends.get(start, []):
            chain = best[start] + [(start, end)]
            if end not in best or len(chain) < len(best[end]):
                best[end] = chain
                frontier.append(end)
    furthest = max(best)
    return best[furthest]


# --------------------------------------------------------------------------- restore plan

@dataclass(frozen=True)
class ReplayStep:
    """Replay `files` of one series (in order) from GTID position `start_gtid`."""
    series: str
    start_gtid: str
    files: tuple[BinlogObject, ...]


@dataclass(frozen=True)
class RestorePlan:
    snapshot: dict[str, Any]
    steps: tuple[ReplayStep, ...]
    stop_at: datetime | None           # replay events stamped before this (None: all)
    reaches: str                       # GTID position the replay reaches (as far as known)
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "snapshot": self.snapshot,
            "stop_datetime": None if self.stop_at is None
            else self.stop_at.strftime("%Y-%m-%d %H:%M:%S"),
            "reaches_gtid": self.reaches,
            "notes": list(self.notes),
            "steps": [{"series": s.series, "start_gtid": s.start_gtid,
                       "files": [{"name": f.name, "keys": list(f.keys), "final": f.final,
                                  "size": f.size, "sha256": list(f.sha256),
                                  "first_ts": f.first_ts, "last_ts": f.last_ts}
                                 for f in s.files]}
                      for s in self.steps],
        }


def choose_snapshot(manifests: Sequence[Mapping[str, Any]],
                    restore_time: datetime | None) -> dict[str, Any]:
    """The newest snapshot that finished at or before `restore_time` (any snapshot when
    None). A snapshot is consistent at a moment before it finished, so one that finished
    after the restore time may hold later writes and is never chosen."""
    usable = [dict(m) for m in manifests
              if restore_time is None or manifest_finished(m) <= restore_time]
    if not usable:
        when = "" if restore_time is None else f" finished at or before {iso(restore_time)}"
        raise BackupError(f"no snapshot{when} (there are {len(manifests)} in all)")
    return max(usable, key=lambda m: (m["finished_at"], m["data_key"]))


def plan_restore(manifests: Sequence[Mapping[str, Any]], binlogs: Sequence[BinlogObject],
                 restore_time: datetime | None = None) -> RestorePlan:
    """Which snapshot, then which binary log files to replay from its GTID position, up to
    `restore_time` (inclusive, to the second; None: everything shipped).

    A series is one master's files (a failover starts a new one, whose files repeat the
    history it replicated). Step by step, among the series that hold transactions beyond the
    position reached, the replay takes one that can start there (a file whose starting
    position is already reached) and reaches furthest, from that file on as far as its files
    join by GTID (a series left and entered again has a hole: its later files wait for
    another series to reach them), leaving out files that begin after the restore time. A
    hole between the snapshot and the binary logs is an error, not a silently shorter
    restore."""
    snapshot = choose_snapshot(manifests, restore_time)
    position = parse_gtid_list(snapshot["gtid"])
    stop_at = None if restore_time is None else (
        restore_time.replace(microsecond=0) + timedelta(seconds=1))
    limit_ts = None if stop_at is None else int(stop_at.timestamp())
    remaining: dict[str, list[BinlogObject]] = {}
    for obj in binlogs:
        if limit_ts is None or obj.first_ts < limit_ts:
            remaining.setdefault(obj.series, []).append(obj)
    for files in remaining.values():
        files.sort(key=lambda o: binlog_order(o.name))
    steps: list[ReplayStep] = []
    notes: list[str] = []
    while True:
        options, blocked = [], []
        for series, files in sorted(remaining.items()):
            if not files[-1].gtid_end or gtid_covers(position, files[-1].gtid_end):
                continue  # nothing in this series beyond the position reached
            found = _series_run(series, files, position)
            if found is None:
                blocked.append((series, files[0]))
                continue
            run, rest, reach = found
            options.append((-sum(seq for _, seq in reach.values()), files[0].first_ts, series,
                            run, rest, reach))
        if not options:
            break
        _, _, series, run, rest, reach = min(options, key=lambda o: o[:3])
        if not run[-1].final:
            notes.append(f"{series}/{run[-1].name} is still growing: replaying the "
                         f"{run[-1].size} bytes shipped so far")
        if rest:
            notes.append(f"{series}/{rest[0].name} starts at GTID "
                         f"{format_gtid_list(rest[0].gtid_start)}, after the end of "
                         f"{run[-1].name} ({format_gtid_list(run[-1].gtid_end)}): the series "
                         "was left and entered again; its later files wait for another series "
                         "to reach their start")
        steps.append(ReplayStep(series, format_gtid_list(position), tuple(run)))
        position = reach
        if rest:
            remaining[series] = rest
        else:
            del remaining[series]
    for series, first in blocked:
        if not gtid_covers(position, remaining[series][-1].gtid_end):
            raise BackupError(
                f"binary logs of {series} start at GTID {format_gtid_list(first.gtid_start)}"
                f" ({first.name}), after the position {format_gtid_list(position)} the "
                "restore has reached: the transactions between are in no shipped file")
    return RestorePlan(snapshot, tuple(steps), stop_at, format_gtid_list(position),
                       tuple(notes))


def _series_run(series: str, files: Sequence[BinlogObject],
                position: Mapping[int, tuple[int, int]]
                ) -> tuple[list[BinlogObject], list[BinlogObject],
                           dict[int, tuple[int, int]]] | None:
    """The files of one series to replay from `position`: from the newest file whose start
    the position covers, as far as the files join by GTID (each file starts where the ones
    before it ended); None when no file starts early enough. Returns (run, the files after
    a GTID hole, the position the run reaches).

    A hole inside a series is a master that was left and followed again later (a failover
    back to it under the same name and server_id): the file streamed last before the
    failover stops where the stream stopped, while the master wrote on into it (what it
    replicated from the other master, whose own series has those transactions). The files
    after the hole are replayed only once another series has reached their start."""
    start = None
    for index, obj in enumerate(files):
        if gtid_covers(position, obj.gtid_start):
            start = index
    if start is None:
        return None
    run = list(files[start:])
    reach = dict(position)
    for index, obj in enumerate(run):
        if index:
            before = run[index - 1]
            if binlog_order(obj.name)[1] != binlog_order(before.name)[1] + 1:
                raise BackupError(f"binary logs of {series}: {before.name} is followed by "
                                  f"{obj.name}; the files between were never shipped")
            if not gtid_covers(reach, obj.gtid_start):
                return run[:index], run[index:], reach
        reach = gtid_merge(reach, obj.gtid_end)
    return run, [], reach


def assemble_binlog_objects(listing: Mapping[str, int], metadata: Mapping[str, Mapping[str, str]]
                            ) -> list[BinlogObject]:
    """Binary log objects from a bucket listing ({key: size}) and the metadata of the keys
    that matter ({key: x-amz-meta-* without the prefix}): closed files as they are; for a
    file that has no closed object yet, its segments joined into the longest chain."""
    finals: dict[tuple[str, str], str] = {}
    segments: dict[tuple[str, str], dict[int, str]] = {}
    for key in listing:
        info = parse_binlog_key(key)
        if info is None:
            continue
        if info.offset is None:
            finals[(info.series, info.name)] = key
        else:
            segments.setdefault((info.series, info.name), {})[info.offset] = key
    objects = []
    for (series, name), key in finals.items():
        meta = metadata.get(key, {})
        objects.append(_binlog_object(series, name, (key,), True, listing[key], meta, meta))
    for (series, name), by_offset in segments.items():
        if (series, name) in finals:
            continue
        chain = segment_chain({off: listing[k] for off, k in by_offset.items()})
        if not chain:
            continue
        keys = tuple(by_offset[start] for start, _ in chain)
        # Each segment's metadata describes the file from its start up to the segment's end.
        last_meta = metadata.get(keys[-1], {})
        obj = _binlog_object(series, name, keys, False, chain[-1][1], last_meta, last_meta)
        objects.append(replace(obj, sha256=tuple(metadata.get(k, {}).get("sha256", "")
                                                 for k in keys)))
    return sorted(objects, key=lambda o: (o.series, binlog_order(o.name)))


def _binlog_object(series: str, name: str, keys: tuple[str, ...], final: bool, size: int,
                   first: Mapping[str, str], last: Mapping[str, str]) -> BinlogObject:
    try:
        return BinlogObject(
            series=series, name=name, keys=keys, final=final, size=size,
            gtid_start=parse_gtid_list(first.get("gtid-start", "")),
            gtid_end=parse_gtid_list(last.get("gtid-end", "")),
            first_ts=int(first.get("first-ts", "0") or 0),
            last_ts=int(last.get("last-ts", "0") or 0),
            sha256=(last.get("sha256", ""),) if final else (),
        )
    except ValueError:
        raise BackupError(f"binary log object {keys[0]} has unreadable metadata: "
                          f"{dict(first)}") from None
