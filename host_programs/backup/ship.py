"""`ship-binlogs`: upload closed binary logs whole and the growing one in segments."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from host_programs.backup.config import Config
from host_programs.backup.core import (
    BinlogScan,
    binlog_key,
    format_gtid_list,
    is_binlog_name,
    iso,
    local_files_to_remove,
    parse_gtid_list,
    plan_shipping,
    scan_binlog,
    segment_key,
)
from host_programs.backup.helpers import log, now_utc, read_json
from host_programs.backup.s3 import S3Store
from host_programs.backup.stream import current_series_path
from host_programs.common.atomic_files import write_json_atomic

# --------------------------------------------------------------------------- binlog shipping


def scan_to_dict(scan: BinlogScan) -> dict[str, Any]:
    doc = asdict(scan)
    doc["gtid_start"] = format_gtid_list(scan.gtid_start)
    doc["gtid_end"] = format_gtid_list(scan.gtid_end)
    return doc


def scan_from_dict(doc: Mapping[str, Any]) -> BinlogScan:
    return BinlogScan(int(doc["end"]), parse_gtid_list(doc["gtid_start"]),
                      parse_gtid_list(doc["gtid_end"]), int(doc["first_ts"]),
                      int(doc["last_ts"]), int(doc["events"]), bool(doc["closed"]))


def _metadata(scan: BinlogScan, series: str, **extra: Any) -> dict[str, str]:
    meta = {"gtid-start": format_gtid_list(scan.gtid_start),
            "gtid-end": format_gtid_list(scan.gtid_end),
            "first-ts": str(scan.first_ts), "last-ts": str(scan.last_ts), "series": series}
    meta.update({k: str(v) for k, v in extra.items()})
    return meta


class Shipper:
    """One pass at a time: what plan_shipping says, then local clean-up. The state file
    (shipped files, offsets, last error) is written after every upload."""

    def __init__(self, config: Config, store: S3Store) -> None:
        self.config = config
        self.store = store
        self.state_path = str(Path(config.state_dir, "binlog-state.json"))
        self.state = read_json(self.state_path, {}) or {}
        self.state.setdefault("shipped", {})

    def local_files(self) -> dict[str, dict[str, int]]:
        found: dict[str, dict[str, int]] = {}
        root = Path(self.config.binlog_dir)
        if not root.is_dir():
            return found
        for directory in root.iterdir():
            if directory.is_dir():
                found[directory.name] = {p.name: p.stat().st_size for p in directory.iterdir()
                                         if is_binlog_name(p.name)}
        return found

    def current_series(self) -> str | None:
        doc = read_json(current_series_path(self.config), {}) or {}
        return doc.get("series")

    def save(self, **values: Any) -> None:
        self.state.update(values)
        write_json_atomic(self.state_path, self.state)

    def ship_once(self) -> list[str]:
        current = self.current_series()
        local = self.local_files()
        done = []
        for action in plan_shipping(local, self.state["shipped"], current):
            path = str(Path(self.config.binlog_dir, action.series, action.name))
            if action.kind == "final":
                self._ship_final(action.series, action.name, path)
            else:
                if not self._ship_segment(action.series, action.name, path):
                    continue
            done.append(f"{action.kind}:{action.series}/{action.name}")
        for series, name in local_files_to_remove(
                {s: list(files) for s, files in local.items()}, self.state["shipped"], current):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(Path(self.config.binlog_dir, series, name))
        self.save(last_pass_at=iso(now_utc()), last_pass_uploads=done)
        return done

    def _ship_final(self, series: str, name: str, path: str) -> None:
        with open(path, "rb") as handle:
            scan = scan_binlog(handle)
        key = binlog_key(self.config.cluster, series, name)
        if scan.end > 0:
            self.store.upload_file_range(key, path, 0, scan.end,
                                         _metadata(scan, series, size=scan.end),
                                         self.config.part_size)
        segments = [k for k in self.store.list(key + ".seg-")]
        if segments:
            self.store.delete_all_versions(segments)
        self.state["shipped"].setdefault(series, {})[name] = {
            "final": True, "offset": scan.end, "scan": scan_to_dict(scan)}
        self.save()

    def _ship_segment(self, series: str, name: str, path: str) -> bool:
        record = self.state["shipped"].setdefault(series, {}).setdefault(
            name, {"final": False, "offset": 0, "segments": 0})
        previous = scan_from_dict(record["scan"]) if record.get("scan") else None
        with open(path, "rb") as handle:
            scan = scan_binlog(handle, previous=previous)
        start = previous.end if previous else 0
        if scan.end <= start:
            return False
        meta = _metadata(scan, series, offset=start, end=scan.end)
        self.store.upload_file_range(segment_key(self.config.cluster, series, name, start), path,
                                     start, scan.end, meta, self.config.part_size)
        record.update(offset=scan.end, scan=scan_to_dict(scan),
                      segments=int(record.get("segments", 0)) + 1)
        self.save()
        if record["segments"] >= self.config.compact_segments:
            self._compact(series, name, path, scan)
        return True

    def _compact(self, series: str, name: str, path: str, scan: BinlogScan) -> None:
        """Many small segments -> one from the start of the file: the restore reads one
        object, and the chain rule (longest run from offset 0) prefers it at once."""
        first = segment_key(self.config.cluster, series, name, 0)
        self.store.upload_file_range(first, path, 0, scan.end,
                                     _metadata(scan, series, offset=0, end=scan.end),
                                     self.config.part_size)
        stale = [k for k in self.store.list(binlog_key(self.config.cluster, series, name) + ".seg-")
                 if k != first]
        if stale:
            self.store.delete_all_versions(stale)
        self.state["shipped"][series][name]["segments"] = 1
        self.save()

    def run_forever(self, interval: float, stop: Callable[[], bool]) -> None:
        while not stop():
            began = time.monotonic()
            try:
                self.ship_once()
                if self.state.get("last_error"):
                    log("shipping works again")
                    self.save(last_error=None)
            except Exception as exc:  # keep the service up; the state file says it failed
                message = f"ship-binlogs pass failed: {exc}"
                log(message)
                self.save(last_error={"at": iso(now_utc()), "message": message})
            time.sleep(max(0.0, interval - (time.monotonic() - began)))
