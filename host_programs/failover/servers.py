"""The database servers, probed with the watcher's account."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from host_programs.failover import decide as fo
from host_programs.failover.config import WatcherConfig
from host_programs.failover.steps import failed_observation, observe

# --------------------------------------------------------------------------- servers


class Servers:
    """Connections to the database servers of the global config with the watcher's account.
    `probe` keeps one connection per server between rounds (a dropped one is reopened the
    next round); `connect` opens a fresh one for the steps of a journal."""

    def __init__(self, config: WatcherConfig, addresses: Callable[[], Mapping[str, str]],
                 driver: Any = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.addresses = addresses
        self.clock = clock
        self._driver = driver
        self._conns: dict[str, Any] = {}
        self._flavors: dict[str, Any] = {}
        self._lock = threading.Lock()

    @property
    def driver(self) -> Any:
        if self._driver is None:
            import pymysql  # on the monitor host only; tests pass a fake driver
            self._driver = pymysql
        return self._driver

    def connect(self, server: str) -> Any:
        address = self.addresses().get(server, server)
        return self.driver.connect(host=address, port=self.config.mysql_port,
                                   user=self.config.mysql_user,
                                   password=self.config.mysql_password,
                                   connect_timeout=self.config.connect_timeout,
                                   read_timeout=max(self.config.read_timeout, 5.0),
                                   write_timeout=max(self.config.read_timeout, 5.0),
                                   autocommit=True, charset="utf8mb4")

    def _quick(self, server: str) -> Any:
        address = self.addresses().get(server, server)
        return self.driver.connect(host=address, port=self.config.mysql_port,
                                   user=self.config.mysql_user,
                                   password=self.config.mysql_password,
                                   connect_timeout=self.config.connect_timeout,
                                   read_timeout=self.config.read_timeout,
                                   write_timeout=self.config.read_timeout,
                                   autocommit=True, charset="utf8mb4")

    def probe(self, server: str) -> fo.Observation:
        with self._lock:
            conn = self._conns.pop(server, None)
        try:
            if conn is None:
                conn = self._quick(server)
            obs = observe(conn, server, self.clock(), self._flavors.get(server))
        except Exception as exc:  # any driver error is a failed check of that server
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()
            self._flavors.pop(server, None)
            return failed_observation(server, self.clock(), exc)
        self._flavors[server] = obs.flavor
        with self._lock:
            self._conns[server] = conn
        return obs

    def probe_all(self, servers: Sequence[str]) -> dict[str, fo.Observation]:
        servers = list(dict.fromkeys(servers))
        if not servers:
            return {}
        with ThreadPoolExecutor(max_workers=min(8, len(servers))) as pool:
            return dict(zip(servers, pool.map(self.probe, servers)))  # noqa: B905

    def forget(self, server: str) -> None:
        with self._lock:
            conn = self._conns.pop(server, None)
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()
