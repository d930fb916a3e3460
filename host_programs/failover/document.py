"""The global config as the watcher reads and publishes it, and the clusters it names."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from host_programs.failover import decide as fo
from host_programs.failover.config import WatcherConfig, WatcherError
from host_programs.failover.logs import log_event
from module_utils.global_config import (
    EpochGuard,
    GlobalConfig,
    GlobalConfigError,
    Reader,
    cluster_of_server,
    set_cluster,
    set_server,
)

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
