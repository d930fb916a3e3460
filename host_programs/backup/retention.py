"""The snapshots and binary logs in S3 (listed, manifests validated) and retention:
expired snapshots, orphan data, stale uploads and binary logs no snapshot needs."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from host_programs.backup.config import Config
from host_programs.backup.core import (
    BackupError,
    assemble_binlog_objects,
    binlogs_prefix,
    binlogs_to_delete,
    cluster_prefix,
    latest_key,
    orphan_snapshot_data,
    parse_binlog_key,
    parse_snapshot_key,
    select_retained,
    snapshots_prefix,
    validate_manifest,
)
from host_programs.backup.helpers import log, read_json
from host_programs.backup.s3 import S3Store
from host_programs.common.atomic_files import write_json_atomic

ORPHAN_GRACE = timedelta(hours=6)
STALE_UPLOAD = timedelta(days=1)


# --------------------------------------------------------------------------- retention

def list_manifests(store: S3Store, cluster: str) -> tuple[list[dict[str, Any]],
                                                          dict[str, tuple[int, datetime]]]:
    """(valid manifests, the whole snapshots/ listing). An unreadable manifest is skipped
    with a log line: it never counts as a snapshot."""
    listing = store.list(snapshots_prefix(cluster))
    manifests = []
    for key in sorted(listing):
        info = parse_snapshot_key(key)
        if info is None or info.kind != "manifest":
            continue
        try:
            doc = validate_manifest(store.get_json(key), where=key)
        except BackupError as exc:
            log(f"skipping snapshot manifest {key}: {exc}")
            continue
        if doc["data_key"] in listing:
            manifests.append(doc)
        else:
            log(f"skipping snapshot manifest {key}: its data {doc['data_key']} is missing")
    return manifests, listing


def apply_retention(config: Config, store: S3Store, now: datetime) -> dict[str, Any]:
    manifests, listing = list_manifests(store, config.cluster)
    latest = store.get_json(latest_key(config.cluster)) or {}
    kept, expired = select_retained(manifests, config.keep_recent, config.keep_daily,
                                    protect=[latest["data_key"]] if latest.get("data_key") else [])
    doomed = []
    for doc in expired:  # manifest first: a snapshot without one is never restored
        doomed += [doc["manifest_key"], doc["data_key"]]
    kinds = {k: parse_snapshot_key(k) for k in listing}
    data_keys = {k: listing[k][1] for k, info in kinds.items() if info and info.kind == "data"}
    manifest_keys = [k for k, info in kinds.items() if info and info.kind == "manifest"]
    orphans = orphan_snapshot_data(data_keys, manifest_keys, now, ORPHAN_GRACE)
    if doomed or orphans:
        store.delete_all_versions(doomed + orphans)
    aborted = store.abort_stale_uploads(cluster_prefix(config.cluster), now, STALE_UPLOAD)
    binlogs = list_binlog_objects(store, config.cluster, cache_path=str(
        Path(config.state_dir, "binlog-metadata-cache.json")))
    old_binlogs = binlogs_to_delete(binlogs, kept)
    if old_binlogs:
        store.delete_all_versions([k for o in old_binlogs for k in o.keys])
    return {"kept": len(kept), "expired": [d["data_key"] for d in expired],
            "orphans": orphans, "aborted_uploads": aborted,
            "binlogs_deleted": [f"{o.series}/{o.name}" for o in old_binlogs]}


def list_binlog_objects(store: S3Store, cluster: str, cache_path: str | None = None) -> list:
    """Binary log objects with their metadata. Metadata of closed files never changes, so it
    is cached locally by key and size; segments are read each time."""
    listing = {k: v[0] for k, v in store.list(binlogs_prefix(cluster)).items()}
    cache = (read_json(cache_path, {}) or {}) if cache_path else {}
    metadata: dict[str, dict[str, str]] = {}
    for key, size in listing.items():
        info = parse_binlog_key(key)
        if info is None:
            continue
        cached = cache.get(key)
        if info.offset is None and cached and cached.get("size") == size:
            metadata[key] = cached["meta"]
            continue
        metadata[key] = store.head_metadata(key)
        if info.offset is None:
            cache[key] = {"size": size, "meta": metadata[key]}
    if cache_path:
        write_json_atomic(cache_path, {k: v for k, v in cache.items() if k in listing})
    return assemble_binlog_objects(listing, metadata)
