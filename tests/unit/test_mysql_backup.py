"""host_programs/backup/core.py: keys, GTID positions, mariabackup's position files,
manifests and the latest pointer, retention, binary log scanning, what to ship, where a
stream resumes, and the restore plan."""

from __future__ import annotations

import io
from datetime import datetime, timedelta

import pytest

from host_programs.backup import core as mb
from tests.unit.binlog_fixtures import binlog

UTC = mb.UTC
T0 = datetime(2026, 11, 28, 9, 0, 0, tzinfo=UTC)


def manifest(finished: datetime, gtid: str = "0-11-5", server: str = "db-4",
             cluster: str = "hello", seconds: int = 30) -> dict:
    keys = mb.snapshot_keys(cluster, server, finished - timedelta(seconds=seconds))
    return mb.make_manifest(cluster=cluster, server=server, keys=keys, size=1000,
                            sha256="a" * 64, started_at=finished - timedelta(seconds=seconds),
                            finished_at=finished,
                            position=mb.BinlogPosition("mariadb-bin.000001", 1251, gtid))


# ----------------------------------------------------------------------------- keys

def test_snapshot_keys_are_time_ordered_and_parse_back() -> None:
    keys = mb.snapshot_keys("hello", "hostkit-db-4", datetime(2026, 11, 28, 9, 18, 52,
                                                              tzinfo=UTC))
    assert keys.data == "hello/snapshots/20261128T091852Z-hostkit-db-4.xbstream.zst"
    assert keys.manifest == "hello/snapshots/20261128T091852Z-hostkit-db-4.json"
    info = mb.parse_snapshot_key(keys.data)
    assert (info.cluster, info.server, info.kind) == ("hello", "hostkit-db-4", "data")
    assert info.moment == datetime(2026, 11, 28, 9, 18, 52, tzinfo=UTC)
    assert mb.parse_snapshot_key(keys.manifest).kind == "manifest"
    assert mb.parse_snapshot_key("hello/snapshots/garbage.txt") is None
    later = mb.snapshot_keys("hello", "hostkit-db-4", datetime(2026, 11, 28, 9, 18, 53,
                                                               tzinfo=UTC))
    assert sorted([later.data, keys.data]) == [keys.data, later.data]


def test_keys_use_utc_whatever_the_zone_given() -> None:
    cet = mb.timezone(timedelta(hours=1))
    keys = mb.snapshot_keys("hello", "db", datetime(2026, 11, 28, 10, 0, 0, tzinfo=cet))
    assert keys.stamp == "20261128T090000Z"
    with pytest.raises(mb.BackupError, match="has no time zone"):
        mb.snapshot_keys("hello", "db", datetime(2026, 11, 28, 10, 0, 0))


@pytest.mark.parametrize(("cluster", "server", "message"), [
    ("Hello", "db", "cluster name 'Hello'"),
    ("hello/x", "db", "cluster name 'hello/x'"),
    ("hello", "db/4", "server name 'db/4'"),
    ("hello", "", "server name ''"),
])
def test_bad_names_are_named(cluster: str, server: str, message: str) -> None:
    with pytest.raises(mb.BackupError, match=message):
        mb.snapshot_keys(cluster, server, T0)


def test_binlog_keys_and_segments() -> None:
    series = mb.binlog_series("hostkit-db-1", 11)
    assert series == "hostkit-db-1-sid11"
    assert mb.binlog_key("hello", series, "mariadb-bin.000007") == \
        "hello/binlogs/hostkit-db-1-sid11/mariadb-bin.000007"
    seg = mb.segment_key("hello", series, "mariadb-bin.000007", 4096)
    assert seg == "hello/binlogs/hostkit-db-1-sid11/mariadb-bin.000007.seg-000000004096"
    assert mb.parse_binlog_key(seg) == mb.BinlogKeyInfo("hello", series, "mariadb-bin.000007",
                                                        4096)
    assert mb.parse_binlog_key(mb.binlog_key("hello", series, "mariadb-bin.000007")).offset \
        is None
    assert mb.parse_binlog_key("hello/binlogs/x/current.json") is None
    with pytest.raises(mb.BackupError, match="server_id 0"):
        mb.binlog_series("db", 0)
    with pytest.raises(mb.BackupError, match="not a binary log file name"):
        mb.binlog_key("hello", series, "../../etc/passwd")


def test_binlog_names_sort_by_number() -> None:
    names = ["b.1000000", "b.000010", "b.000009"]
    assert sorted(names, key=mb.binlog_order) == ["b.000009", "b.000010", "b.1000000"]


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-11-28T09:18:52Z", datetime(2026, 11, 28, 9, 18, 52, tzinfo=UTC)),
    ("2026-11-28 09:18:52", datetime(2026, 11, 28, 9, 18, 52, tzinfo=UTC)),
    ("2026-11-28T10:18:52+01:00", datetime(2026, 11, 28, 9, 18, 52, tzinfo=UTC)),
])
def test_parse_time(text: str, expected: datetime) -> None:
    assert mb.parse_time(text) == expected


def test_parse_time_names_bad_input() -> None:
    with pytest.raises(mb.BackupError, match="'yesterday' is not an ISO 8601"):
        mb.parse_time("yesterday")


# ----------------------------------------------------------------------------- GTID

def test_gtid_lists() -> None:
    assert mb.parse_gtid_list("0-11-5,1-12-40") == {0: (11, 5), 1: (12, 40)}
    assert mb.parse_gtid_list("") == {}
    assert mb.parse_gtid_list("0-11-5,\n0-12-9") == {0: (12, 9)}  # a state: newest per domain
    assert mb.format_gtid_list({1: (12, 40), 0: (11, 5)}) == "0-11-5,1-12-40"
    with pytest.raises(mb.BackupError, match="GTID position '0-11'"):
        mb.parse_gtid_list("0-11")


def test_gtid_covers_compares_sequence_per_domain() -> None:
    pos = mb.parse_gtid_list("0-12-100,1-3-7")
    assert mb.gtid_covers(pos, mb.parse_gtid_list("0-11-90"))  # another server, same domain
    assert mb.gtid_covers(pos, {})
    assert not mb.gtid_covers(pos, mb.parse_gtid_list("0-12-101"))
    assert not mb.gtid_covers(pos, mb.parse_gtid_list("2-1-1"))
    assert mb.gtid_merge(pos, mb.parse_gtid_list("0-13-101,2-1-1")) == {
        0: (13, 101), 1: (3, 7), 2: (1, 1)}


XTRABACKUP_INFO = """uuid = ba261c67-eb0c-11f1-a193-0242ac1e0006
tool_name = mariabackup
tool_version = 10.11.18-MariaDB
binlog_pos = filename 'mariadb-bin.000001', position '1251', GTID of the last change '0-11-5'
innodb_from_lsn = 0
"""


@pytest.mark.parametrize(("text", "expected"), [
    (XTRABACKUP_INFO, mb.BinlogPosition("mariadb-bin.000001", 1251, "0-11-5")),
    ("mariadb-bin.000001\t1251\t0-11-5\n", mb.BinlogPosition("mariadb-bin.000001", 1251,
                                                              "0-11-5")),
    ("mariadb-bin.000003\t385\t0-11-5,1-2-9\n",
     mb.BinlogPosition("mariadb-bin.000003", 385, "0-11-5,1-2-9")),
    ("binlog_pos = filename 'b.000002', position '4'\n", mb.BinlogPosition("b.000002", 4, "")),
])
def test_backup_position_from_either_file(text: str, expected: mb.BinlogPosition) -> None:
    assert mb.parse_backup_binlog_info(text) == expected


def test_backup_without_binlog_position_is_an_error() -> None:
    with pytest.raises(mb.BackupError, match="no binary log position"):
        mb.parse_backup_binlog_info("uuid = x\ntool_name = mariabackup\n")


# ----------------------------------------------------------------------------- manifests

def test_manifest_and_latest_pointer() -> None:
    doc = manifest(T0)
    assert doc["gtid"] == "0-11-5" and doc["size"] == 1000
    assert doc["finished_at"] == "2026-11-28T09:00:00Z"
    latest = mb.latest_document(doc)
    assert latest["data_key"] == doc["data_key"] and latest["sha256"] == doc["sha256"]
    assert doc["cluster"] == latest["cluster"] == "hello" and "product" not in doc
    assert set(latest) < set(doc)


def test_a_legacy_manifest_with_product_is_read_as_the_cluster() -> None:
    """Written before backups were per cluster: `product` instead of `cluster`, the same
    prefix in S3. It is read as the cluster of that name, and checked against its key."""
    legacy = manifest(T0)
    legacy["product"] = legacy.pop("cluster")
    doc = mb.validate_manifest(legacy, where="m.json")
    assert doc["cluster"] == "hello" and "product" not in doc
    assert mb.latest_document(doc)["cluster"] == "hello"
    with pytest.raises(mb.BackupError, match="not a snapshot key of cluster 'other'"):
        mb.validate_manifest(dict(legacy, product="other"), where="m.json")


@pytest.mark.parametrize(("change", "message"), [
    ({"sha256": "xyz"}, "sha256 'xyz'"),
    ({"size": 0}, "size 0"),
    ({"format": 2}, "format 2"),
    ({"data_key": "other/snapshots/20261128T090000Z-db.xbstream.zst"},
     "data_key .* is not a snapshot key of cluster 'hello'"),
    ({"gtid": "zero"}, "GTID position 'zero'"),
])
def test_bad_manifests_are_named(change: dict, message: str) -> None:
    doc = dict(manifest(T0), **change)
    with pytest.raises(mb.BackupError, match=message):
        mb.validate_manifest(doc, where="m.json")


def test_manifest_missing_fields_listed() -> None:
    with pytest.raises(mb.BackupError, match="m.json lacks sha256, gtid"):
        mb.validate_manifest({k: v for k, v in manifest(T0).items()
                              if k not in ("sha256", "gtid")}, where="m.json")


def test_latest_only_moves_forward() -> None:
    old, new = manifest(T0), manifest(T0 + timedelta(minutes=15))
    assert mb.should_replace_latest(None, old)
    assert mb.should_replace_latest(mb.latest_document(old), new)
    assert not mb.should_replace_latest(mb.latest_document(new), old)
    assert mb.should_replace_latest({"finished_at": "garbage"}, old)


# ----------------------------------------------------------------------------- retention

def every_15_minutes(days: int) -> list[dict]:
    return [manifest(T0 - timedelta(minutes=15 * i), gtid=f"0-11-{10000 - i}")
            for i in range(days * 96)]


def test_retention_keeps_recent_and_daily() -> None:
    snaps = every_15_minutes(40)
    kept, expired = mb.select_retained(snaps, keep_recent=96, keep_daily=30)
    # 96 recent (today 09:00 back to yesterday 09:15) + the newest of each older day.
    days = {mb.manifest_finished(m).date() for m in kept}
    assert len(days) == 30
    assert len(kept) == 96 + 28  # today and yesterday's newest are among the recent ones
    assert len(kept) + len(expired) == len(snaps)
    newest_per_day = {}
    for m in snaps:
        day = mb.manifest_finished(m).date()
        newest_per_day.setdefault(day, m["data_key"])
    kept_keys = {m["data_key"] for m in kept}
    assert all(newest_per_day[d] in kept_keys for d in sorted(newest_per_day)[-30:])
    assert kept[0]["finished_at"] == "2026-11-28T09:00:00Z"


def test_retention_protects_latest_and_checks_numbers() -> None:
    snaps = [manifest(T0 - timedelta(minutes=15 * i)) for i in range(5)]
    protect = snaps[-1]["data_key"]
    kept, expired = mb.select_retained(snaps, keep_recent=1, keep_daily=0, protect=[protect])
    assert [m["data_key"] for m in kept] == [snaps[0]["data_key"], protect]
    assert len(expired) == 3
    with pytest.raises(mb.BackupError, match="keep_recent must be at least 1"):
        mb.select_retained(snaps, keep_recent=0, keep_daily=1)


def test_orphan_data_objects() -> None:
    a = mb.snapshot_keys("hello", "db", T0 - timedelta(hours=8))
    b = mb.snapshot_keys("hello", "db", T0 - timedelta(hours=7))
    c = mb.snapshot_keys("hello", "db", T0 - timedelta(minutes=10))
    data = {a.data: T0 - timedelta(hours=8), b.data: T0 - timedelta(hours=7),
            c.data: T0 - timedelta(minutes=10)}
    # a has its manifest; b has none and is old; c has none but may still be in progress.
    assert mb.orphan_snapshot_data(data, [a.manifest], T0, timedelta(hours=6)) == [b.data]


def test_binlogs_to_delete_only_what_every_kept_snapshot_holds() -> None:
    kept = [manifest(T0, gtid="0-11-500"), manifest(T0 - timedelta(hours=1), gtid="0-11-300")]
    oldest_finish = int((T0 - timedelta(hours=1)).timestamp())

    def obj(name: str, end: int, last_ts: int, final: bool = True) -> mb.BinlogObject:
        return mb.BinlogObject("s", name, (name,), final, 10, {}, {0: (11, end)}, 0, last_ts)

    old = obj("b.000001", 250, oldest_finish - 600)
    straddles = obj("b.000002", 350, oldest_finish - 60)
    growing = obj("b.000003", 100, oldest_finish - 900, final=False)
    assert mb.binlogs_to_delete([old, straddles, growing], kept) == [old]
    assert mb.binlogs_to_delete([old], []) == []


# ----------------------------------------------------------------------------- binlog scanning

def test_scan_reads_gtids_timestamps_and_boundaries() -> None:
    data = binlog([(1000, 0, 11, 6), (1002, 0, 11, 7)], {0: (11, 5)}, created=999,
                  rotate_to="mariadb-bin.000002")
    scan = mb.scan_binlog(io.BytesIO(data))
    assert scan.end == len(data)
    assert scan.gtid_start == {0: (11, 5)}
    assert scan.gtid_end == {0: (11, 7)}
    assert (scan.first_ts, scan.last_ts) == (999, 1002)
    assert scan.closed


def test_scan_of_a_file_that_began_with_an_empty_binlog_state() -> None:
    """A re-seeded server's first binary log lists no GTIDs at its top, yet holds only the
    transactions it replicated after the seed: it starts before its first GTID, not at
    the beginning of time (else a restore would replay it over the transactions between)."""
    data = binlog([(100, 0, 12, 151), (101, 0, 12, 152), (102, 1, 12, 1)], {}, 99)
    scan = mb.scan_binlog(io.BytesIO(data))
    assert scan.gtid_start == {0: (12, 150)}  # domain 1 began here: from its first
    assert scan.gtid_end == {0: (12, 152), 1: (12, 1)}
    assert not mb.gtid_covers({0: (11, 120)}, scan.gtid_start)
    # A file whose list names the domain keeps that list as its start.
    listed = mb.scan_binlog(io.BytesIO(binlog([(100, 0, 12, 151)], {0: (11, 140)}, 99)))
    assert listed.gtid_start == {0: (11, 140)}


def test_scan_stops_before_an_incomplete_event_and_resumes() -> None:
    data = binlog([(1000, 0, 11, 6), (1002, 0, 11, 7), (1003, 1, 12, 1)], {0: (11, 5)},
                  created=999)
    cut = len(data) - 10
    partial = mb.scan_binlog(io.BytesIO(data[:cut]))
    assert partial.end < cut and not partial.closed
    assert partial.gtid_end == {0: (11, 7), 1: (12, 1)} or partial.gtid_end == {0: (11, 7)}
    resumed = mb.scan_binlog(io.BytesIO(data), previous=partial)
    whole = mb.scan_binlog(io.BytesIO(data))
    assert resumed == whole
    assert whole.gtid_end == {0: (11, 7), 1: (12, 1)}
    assert mb.scan_binlog(io.BytesIO(data), limit=cut).end == partial.end


def test_scan_of_empty_and_foreign_files() -> None:
    assert mb.scan_binlog(io.BytesIO(b"")).end == 0
    with pytest.raises(mb.BackupError, match="bad magic"):
        mb.scan_binlog(io.BytesIO(b"GIF89a" + bytes(40)))


# ----------------------------------------------------------------------------- shipping

def test_plan_shipping_closed_files_whole_growing_one_in_segments() -> None:
    local = {"m1-sid11": {"b.000001": 500, "b.000002": 700, "b.000003": 90},
             "m0-sid10": {"b.000009": 300}}
    shipped = {"m1-sid11": {"b.000001": {"final": True, "offset": 500},
                            "b.000003": {"final": False, "offset": 40}}}
    actions = mb.plan_shipping(local, shipped, current_series="m1-sid11")
    assert actions == [
        mb.ShipAction("m0-sid10", "b.000009", "final"),     # an older series: closed
        mb.ShipAction("m1-sid11", "b.000002", "final"),
        mb.ShipAction("m1-sid11", "b.000003", "segment", 40),
    ]
    shipped["m1-sid11"]["b.000003"]["offset"] = 90
    assert mb.ShipAction("m1-sid11", "b.000003", "segment", 90) not in mb.plan_shipping(
        local, shipped, "m1-sid11")


def test_growing_file_shorter_than_shipped_waits() -> None:
    # A restarted stream rewrites the newest file from its start: nothing to do until it
    # has grown past what was shipped.
    shipped = {"s": {"b.000003": {"final": False, "offset": 900}}}
    assert mb.plan_shipping({"s": {"b.000003": 100}}, shipped, "s") == []


def test_local_clean_up_keeps_what_the_stream_resumes_from() -> None:
    local = {"s": ["b.000001", "b.000002", "b.000003", "b.000004"], "old": ["b.000007"]}
    shipped = {"s": {n: {"final": True} for n in ["b.000001", "b.000002", "b.000003"]},
               "old": {"b.000007": {"final": True}}}
    assert mb.local_files_to_remove(local, shipped, "s") == [
        ("old", "b.000007"), ("s", "b.000001"), ("s", "b.000002")]


@pytest.mark.parametrize(("local", "remote", "master", "start", "why"), [
    ([], [], ["b.000003", "b.000004"], "b.000003", "first start"),
    (["b.000003", "b.000004"], [], ["b.000003", "b.000004"], "b.000004", "newest local copy"),
    ([], ["b.000003", "b.000004"], ["b.000004", "b.000005"], "b.000004", "newest S3"),
    (["b.000001"], [], ["b.000004", "b.000005"], "b.000004", "GAP: b.000001"),
])
def test_stream_start_file(local: list, remote: list, master: list, start: str,
                           why: str) -> None:
    chosen, reason = mb.stream_start_file(local, remote, master)
    assert chosen == start and why in reason


NEW_MASTER_STARTS = {"c.000001": {}, "c.000002": {0: (11, 40)}, "c.000003": {0: (11, 75)},
                     "c.000004": {0: (12, 95)}}


@pytest.mark.parametrize(("streamed", "start", "why"), [
    # the old master's series reached 0-11-78: the new master's c.000003 starts at 0-11-75
    ({0: (11, 78)}, "c.000003", "new series: from c.000003"),
    ({0: (11, 75)}, "c.000003", "starts at or before GTID 0-11-75"),
    ({0: (11, 50)}, "c.000002", "new series: from c.000002"),
    ({0: (12, 99)}, "c.000004", "new series: from c.000004"),
    ({}, "c.000001", "first start"),
])
def test_a_new_series_starts_at_the_newest_file_the_old_one_covers(
        streamed: dict, start: str, why: str) -> None:
    chosen, reason = mb.stream_start_file([], [], list(NEW_MASTER_STARTS), streamed,
                                          NEW_MASTER_STARTS.get)
    assert chosen == start and why in reason


def test_a_new_series_that_starts_too_late_says_gap() -> None:
    starts = {"c.000007": {0: (11, 90)}, "c.000008": {0: (12, 95)}}
    chosen, reason = mb.stream_start_file([], [], list(starts), {0: (11, 78)}, starts.get)
    assert chosen == "c.000007"
    assert reason.startswith("GAP: the master's oldest binary log c.000007 starts at GTID "
                             "0-11-90, after GTID 0-11-78")
    # Where the files start cannot be told: the oldest, without a claim either way.
    chosen, reason = mb.stream_start_file([], [], list(starts), {0: (11, 78)},
                                          lambda _name: None)
    assert chosen == "c.000007" and "unknown" in reason
    # A series that exists already resumes, whatever the position.
    chosen, reason = mb.stream_start_file(["c.000008"], [], list(starts), {0: (11, 78)},
                                          starts.get)
    assert chosen == "c.000008" and "newest local copy" in reason


def test_stream_series_resumes_or_starts_a_new_stint() -> None:
    moment = datetime(2026, 11, 28, 9, 18, 52, tzinfo=mb.UTC)
    stint = "db-1-sid11-20261128T091852Z"
    # a restart: the series being streamed, plain or a stint
    assert mb.stream_series("db-1-sid11", "db-1-sid11", ["db-1-sid11"], moment)[0] == \
        "db-1-sid11"
    assert mb.stream_series("db-1-sid11", stint, ["db-1-sid11", stint], moment)[0] == stint
    # a switch to a master streamed for the first time, then to one followed again
    assert mb.stream_series("db-1-sid11", "db-2-sid12", ["db-2-sid12"], moment)[0] == \
        "db-1-sid11"
    series, why = mb.stream_series("db-1-sid11", "db-2-sid12", ["db-1-sid11"], moment)
    assert series == stint and "followed again" in why
    # another master whose name starts alike is not this one
    assert not mb.is_series_of("db-1-sid11-x", "db-1-sid11")
    assert not mb.is_series_of("db-1-sid111", "db-1-sid11")
    assert not mb.is_series_of(None, "db-1-sid11")


def test_stream_start_needs_binlogs_on_the_master() -> None:
    with pytest.raises(mb.BackupError, match="lists no binary logs"):
        mb.stream_start_file([], [], [])


def test_segment_chain_prefers_the_longest_contiguous_run() -> None:
    assert mb.segment_chain({0: 100, 100: 150, 250: 30}) == [(0, 100), (100, 250), (250, 280)]
    # A compacted prefix [0, 250) beside the pieces it replaced: fewer objects, same reach.
    assert mb.segment_chain({0: 250, 100: 150, 250: 30}) == [(0, 250), (250, 280)]
    assert mb.segment_chain({0: 100, 150: 30}) == [(0, 100)]  # a gap ends the chain
    assert mb.segment_chain({100: 10}) == []


# ----------------------------------------------------------------------------- restore plan

def bl(series: str, name: str, start: str, end: str, first_ts: int, final: bool = True,
       size: int = 100) -> mb.BinlogObject:
    return mb.BinlogObject(series, name, (f"k/{series}/{name}",), final, size,
                           mb.parse_gtid_list(start), mb.parse_gtid_list(end), first_ts,
                           first_ts + 100, ("",))


def ts(minutes: float) -> int:
    return int((T0 + timedelta(minutes=minutes)).timestamp())


def test_plan_latest_snapshot_then_binlogs_from_its_gtid() -> None:
    snaps = [manifest(T0, gtid="0-11-50"), manifest(T0 + timedelta(minutes=15), gtid="0-11-80")]
    logs = [bl("m-sid11", "b.000001", "", "0-11-40", ts(-30)),
            bl("m-sid11", "b.000002", "0-11-40", "0-11-70", ts(-10)),
            bl("m-sid11", "b.000003", "0-11-70", "0-11-95", ts(10)),
            bl("m-sid11", "b.000004", "0-11-95", "0-11-99", ts(20), final=False)]
    plan = mb.plan_restore(snaps, logs)
    assert plan.snapshot["gtid"] == "0-11-80"
    assert [f.name for s in plan.steps for f in s.files] == ["b.000003", "b.000004"]
    assert plan.steps[0].start_gtid == "0-11-80"
    assert plan.stop_at is None and plan.reaches == "0-11-99"
    assert "still growing" in plan.notes[0]


def test_plan_to_a_point_in_time() -> None:
    snaps = [manifest(T0, gtid="0-11-50"), manifest(T0 + timedelta(minutes=15), gtid="0-11-80")]
    logs = [bl("m-sid11", "b.000002", "0-11-40", "0-11-70", ts(-10)),
            bl("m-sid11", "b.000003", "0-11-70", "0-11-95", ts(10)),
            bl("m-sid11", "b.000004", "0-11-95", "0-11-99", ts(20))]
    moment = T0 + timedelta(minutes=12, seconds=30, microseconds=400)
    plan = mb.plan_restore(snaps, logs, moment)
    # The 09:15 snapshot finished after 09:12:30: the 09:00 one, then files up to the one
    # that begins after the restore time.
    assert plan.snapshot["finished_at"] == "2026-11-28T09:00:00Z"
    assert [f.name for s in plan.steps for f in s.files] == ["b.000002", "b.000003"]
    assert plan.steps[0].start_gtid == "0-11-50"
    assert plan.as_dict()["stop_datetime"] == "2026-11-28 09:12:31"


def test_plan_before_every_snapshot_is_refused() -> None:
    with pytest.raises(mb.BackupError, match="no snapshot finished at or before "
                                             "2026-11-28T08:00:00Z"):
        mb.plan_restore([manifest(T0)], [], T0 - timedelta(hours=1))


def test_plan_refuses_a_hole_between_snapshot_and_binlogs() -> None:
    logs = [bl("m-sid11", "b.000007", "0-11-90", "0-11-99", ts(5))]
    with pytest.raises(mb.BackupError, match="start at GTID 0-11-90 .*position 0-11-50"):
        mb.plan_restore([manifest(T0, gtid="0-11-50")], logs)
    gap = [bl("m-sid11", "b.000001", "0-11-40", "0-11-60", ts(-5)),
           bl("m-sid11", "b.000003", "0-11-70", "0-11-80", ts(5))]
    with pytest.raises(mb.BackupError, match="b.000001 is followed by b.000003"):
        mb.plan_restore([manifest(T0, gtid="0-11-50")], gap)


def test_plan_across_a_failover_prefers_the_series_that_reaches_furthest() -> None:
    snaps = [manifest(T0, gtid="0-11-50")]
    logs = [bl("db1-sid11", "b.000001", "0-11-40", "0-11-60", ts(-5)),
            bl("db1-sid11", "b.000002", "0-11-60", "0-11-75", ts(3)),
            # the new master's own files repeat the history it replicated, then go on
            bl("db2-sid12", "c.000001", "", "0-11-30", ts(-60)),
            bl("db2-sid12", "c.000002", "0-11-30", "0-11-70", ts(4)),
            bl("db2-sid12", "c.000003", "0-11-70", "0-12-90", ts(6))]
    plan = mb.plan_restore(snaps, logs)
    assert [(s.series, s.start_gtid, [f.name for f in s.files]) for s in plan.steps] == [
        ("db2-sid12", "0-11-50", ["c.000002", "c.000003"])]
    assert plan.reaches == "0-12-90"


def test_plan_across_a_failover_chains_series_when_the_new_one_starts_later() -> None:
    snaps = [manifest(T0, gtid="0-11-50")]
    logs = [bl("db1-sid11", "b.000001", "0-11-40", "0-11-60", ts(-5)),
            bl("db1-sid11", "b.000002", "0-11-60", "0-11-75", ts(3)),
            bl("db1-sid11", "b.000003", "0-11-75", "0-11-78", ts(4)),
            # the new master kept no files from before the failover (it had 0-11-78 when
            # promoted and went on with 0-12-79)
            bl("db2-sid12", "c.000009", "0-11-72", "0-12-90", ts(6))]
    plan = mb.plan_restore(snaps, logs)
    assert [(s.series, s.start_gtid, [f.name for f in s.files]) for s in plan.steps] == [
        ("db1-sid11", "0-11-50", ["b.000001", "b.000002", "b.000003"]),
        ("db2-sid12", "0-11-78", ["c.000009"])]
    assert plan.reaches == "0-12-90"


def test_plan_across_a_failover_and_back_fills_the_hole_from_the_other_series() -> None:
    """db1 -> db2 (failover) -> db1 (switchover back, same name and server_id: the same
    series). b.000009 was shipped as far as the stream got before the first failover
    (0-11-78); db1 then wrote on into it what it replicated from db2, which only db2's
    series holds. By file number db1's files join; by GTID they do not: the replay takes
    db1 to 0-11-78, db2 to 0-12-120, then db1 again from b.000010."""
    snaps = [manifest(T0, gtid="0-11-50")]
    logs = [bl("db1-sid11", "b.000008", "0-11-40", "0-11-70", ts(-5)),
            bl("db1-sid11", "b.000009", "0-11-70", "0-11-78", ts(3)),
            bl("db1-sid11", "b.000010", "0-12-110", "0-11-150", ts(30)),
            bl("db2-sid12", "c.000004", "0-11-75", "0-12-120", ts(4))]
    plan = mb.plan_restore(snaps, logs)
    assert [(s.series, s.start_gtid, [f.name for f in s.files]) for s in plan.steps] == [
        ("db1-sid11", "0-11-50", ["b.000008", "b.000009"]),
        ("db2-sid12", "0-11-78", ["c.000004"]),
        ("db1-sid11", "0-12-120", ["b.000010"])]
    assert plan.reaches == "0-11-150"
    assert any("b.000010 starts at GTID 0-12-110, after the end of b.000009" in n
               for n in plan.notes)
    # Without db2's files the hole is refused, not replayed over.
    with pytest.raises(mb.BackupError, match=r"\(b.000010\), after the position 0-11-78"):
        mb.plan_restore(snaps, logs[:3])


def test_assemble_objects_from_listing_and_metadata() -> None:
    p = "hello/binlogs/m-sid11/"
    listing = {p + "b.000001": 500, p + "b.000002.seg-000000000000": 120,
               p + "b.000002.seg-000000000120": 80, p + "b.000001.seg-000000000000": 50,
               "hello/binlogs/m-sid11/junk": 1}
    meta = {p + "b.000001": {"gtid-start": "", "gtid-end": "0-11-9", "first-ts": "10",
                             "last-ts": "20", "sha256": "f" * 64},
            p + "b.000002.seg-000000000000": {"gtid-start": "", "gtid-end": "0-11-12",
                                              "first-ts": "21", "last-ts": "22",
                                              "sha256": "1" * 64},
            p + "b.000002.seg-000000000120": {"gtid-start": "0-11-9", "gtid-end": "0-11-15",
                                              "first-ts": "21", "last-ts": "25",
                                              "sha256": "2" * 64}}
    objects = mb.assemble_binlog_objects(listing, meta)
    assert [(o.name, o.final, o.size, len(o.keys)) for o in objects] == [
        ("b.000001", True, 500, 1), ("b.000002", False, 200, 2)]
    growing = objects[1]
    assert growing.gtid_start == {0: (11, 9)} and growing.gtid_end == {0: (11, 15)}
    assert (growing.first_ts, growing.last_ts) == (21, 25)
    assert growing.sha256 == ("1" * 64, "2" * 64)
