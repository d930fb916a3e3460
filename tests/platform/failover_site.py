"""The failover fault matrix's machinery, shared by tests/platform/test_failover.py and
tests/bench/bench_failover.py.

A `Site` is a running database cluster of product `hello` with its failover watcher (on a
monitor container) and a web tier that writes through the demo product's `/write?n=N`
endpoint. Two kinds:

- the sandbox that `make up` (playbooks/sandbox_up.yml) brings up: hostkit-db-1..4,
  hostkit-monitor, writes through the edge on 127.0.0.1:8080;
- an own cluster (`own_site()`, containers hkfo-<run>-*, not managed by the sandbox
  inventory, global config under its own key): 4 db servers, a monitor and a web server,
  configured by the same playbooks (db, global_config, failover_watcher, web) through an
  inventory narrowed to them; writes go to the web server directly.

During a fault a `Writer` sends numbered writes and records which were acknowledged, and a
`Sampler` on the monitor host reads @@read_only of every db server every 50 ms. `run_fault`
injects a fault, waits for the new master and returns the figures. `restore()` puts the
cluster back in its initial positions (re-seeding a fenced old master from a replica, then
planned switchovers) so that the next fault starts clean.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from module_utils.global_config import GlobalConfig, set_product_db, set_server  # noqa: E402
from scripts.sandbox import AWS_HOST_URL, ensure_bucket, ensure_network, s3_client  # noqa: E402

PRODUCT = "hello"
# The database cluster of hello (products.yml: a cluster of its own name, which notes shares).
CLUSTER = "hello"
WATCHER = ["runuser", "-u", "hostkit-failover", "--", "/usr/bin/python3",
           "/opt/hostkit/failover/hostkit-failover", "--config",
           "/etc/hostkit-failover/config.json"]
STATE_DIR = "/var/lib/hostkit-failover"
SYSTEMD_FLAGS = [
    "--cap-add", "SYS_ADMIN", "--cap-add", "NET_ADMIN",
    "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
    "--cgroupns=host", "--tmpfs", "/run", "--tmpfs", "/run/lock",
    "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "--stop-signal", "SIGRTMIN+3",
]


def sh(*args: str, check: bool = True, timeout: float = 120,
       **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), text=True, capture_output=True, check=check,
                          timeout=timeout, **kw)


def now() -> float:
    return time.time()


def stamp_seconds(stamp: str | None) -> float | None:
    """Seconds since 1970 of a watcher timestamp (2026-11-28T09:00:00.123Z)."""
    if not stamp:
        return None
    from datetime import datetime, timezone
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=timezone.utc).timestamp()  # noqa: UP017


# --------------------------------------------------------------------------- the site


@dataclass
class Site:
    dbs: list[str]                      # db containers, in canonical position order
    monitor: str
    write_url: str                      # .../write (several: space-separated, round robin)
    host_header: str
    bucket: str
    key: str
    inventory: list[str] = field(default_factory=list)
    own: bool = False
    run: str = ""
    work: Path | None = None
    timings: dict[str, float] = field(default_factory=dict)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps({**self.__dict__, "work": str(self.work or "")}))

    @classmethod
    def load(cls, path: Path) -> Site:
        data = json.loads(path.read_text())
        return cls(**{**data, "work": Path(data["work"]) if data.get("work") else None})

    @property
    def canonical(self) -> dict[str, str]:
        return dict(zip(("master", "candidate", "slave_candidate", "backup"), self.dbs,
                        strict=True))

    # -- the global config
    def store(self) -> GlobalConfig:
        return GlobalConfig(s3_client(AWS_HOST_URL), self.bucket, self.key)

    def doc(self) -> dict[str, Any]:
        return self.store().read()[0]

    def positions(self) -> dict[str, str | None]:
        return dict(self.doc()["products"][PRODUCT]["db"])

    def address(self, server: str) -> str:
        return str(self.doc()["servers"][server]["address"])

    def web_write_urls(self) -> str:
        """/write on each web server of the product directly (not through the edge)."""
        doc = self.doc()
        return " ".join(f"http://{doc['servers'][w]['address']}/write"
                        for w in doc["products"][PRODUCT]["web"])

    # -- containers
    def sql(self, container: str, query: str, check: bool = True, timeout: float = 30) -> str:
        return sh("docker", "exec", container, "mariadb", "-N", "-B", "-e", query,
                  check=check, timeout=timeout).stdout.strip()

    def running(self, container: str) -> bool:
        out = sh("docker", "inspect", "-f", "{{.State.Running}} {{.State.Paused}}", container,
                 check=False).stdout.split()
        return out == ["true", "false"]

    def networks(self, container: str) -> list[str]:
        out = sh("docker", "inspect", "-f", "{{json .NetworkSettings.Networks}}", container,
                 check=False).stdout.strip()
        return sorted(json.loads(out or "{}") or {})

    # -- the watcher
    def watcher(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return sh("docker", "exec", self.monitor, *WATCHER, *args, check=check, timeout=120)

    def watcher_state(self) -> dict[str, Any]:
        out = sh("docker", "exec", self.monitor, "cat", f"{STATE_DIR}/state.json",
                 check=False).stdout
        return json.loads(out) if out.strip() else {}

    def journals(self) -> list[dict[str, Any]]:
        script = ("import glob,json;print(json.dumps([json.load(open(f)) for f in "
                  f"sorted(glob.glob('{STATE_DIR}/journals/*.json'))]))")
        out = sh("docker", "exec", self.monitor, "python3", "-c", script).stdout
        return sorted(json.loads(out), key=lambda j: j["started_at"])

    def watcher_log(self, since: float) -> str:
        since_text = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(since - 1))
        return sh("docker", "exec", self.monitor, "journalctl", "-u", "hostkit-failover",
                  "--utc", "--since", since_text, "--no-pager", "-o", "cat",
                  check=False).stdout

    def wait_watcher_on(self, master: str, timeout: float = 60) -> None:
        """Until the watcher watches `master` and finds it alive."""
        deadline = time.monotonic() + timeout
        info: dict[str, Any] = {}
        while time.monotonic() < deadline:
            info = self.watcher_state().get("clusters", {}).get(CLUSTER, {})
            if info.get("master") == master and info.get("verdict") == "alive":
                return
            time.sleep(0.5)
        raise AssertionError(f"the watcher does not watch {master} as an alive master: {info}")


# --------------------------------------------------------------------------- writes


@dataclass
class Write:
    n: int
    sent: float
    done: float
    ok: bool
    server: str = ""
    error: str = ""


class Writer:
    """Numbered writes through the web tier from `clients` concurrent clients (each one
    write after another, as users would), until stopped (bounded)."""

    def __init__(self, site: Site, start: int, limit: int = 40000, timeout: float = 4.0,
                 clients: int = 4) -> None:
        self.site, self.next_n, self.limit, self.timeout = site, start, limit, timeout
        self.writes: list[Write] = []
        self.halt = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._client, daemon=True)
                        for _ in range(clients)]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def _take(self) -> int | None:
        with self.lock:
            if self.halt.is_set() or len(self.writes) >= self.limit:
                return None
            n, self.next_n = self.next_n, self.next_n + 1
            return n

    def _client(self) -> None:
        urls = self.site.write_url.split()
        while (n := self._take()) is not None:
            sent = now()
            request = urllib.request.Request(f"{urls[n % len(urls)]}?n={n}",
                                             headers={"Host": self.site.host_header})
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as reply:
                    body = reply.read().decode(errors="replace").split()
                ok = len(body) == 3 and body[0] == "ok" and body[1] == str(n)
                write = Write(n, sent, now(), ok, body[2] if ok else "",
                              "" if ok else " ".join(body)[:200])
            except (urllib.error.URLError, OSError) as exc:
                detail = exc.read().decode(errors="replace")[:200] \
                    if isinstance(exc, urllib.error.HTTPError) else repr(exc)[:200]
                write = Write(n, sent, now(), False, error=detail)
            with self.lock:
                self.writes.append(write)
            if not write.ok:
                time.sleep(0.02)

    def finish(self) -> Writer:
        self.halt.set()
        for thread in self.threads:
            thread.join(timeout=30)
        return self

    def acked(self) -> list[Write]:
        with self.lock:
            return [w for w in self.writes if w.ok]


# --------------------------------------------------------------------------- read_only


SAMPLER = r"""
import json, sys, threading, time
import pymysql
cfg = json.load(open("/etc/hostkit-failover/config.json"))
servers = json.loads(sys.argv[1])
lock = threading.Lock()
def watch(name, address):
    conn = None
    while True:
        start = time.time()
        try:
            if conn is None:
                conn = pymysql.connect(host=address, user=cfg["mysql_user"],
                                       password=cfg["mysql_password"], connect_timeout=0.3,
                                       read_timeout=0.3, autocommit=True)
            cur = conn.cursor()
            cur.execute("SELECT @@read_only")
            value = int(cur.fetchone()[0])
        except Exception:
            conn, value = None, None
        with lock:
            print(json.dumps({"t": start, "s": name, "ro": value}), flush=True)
        time.sleep(max(0.0, 0.05 - (time.time() - start)))
for name, address in servers.items():
    threading.Thread(target=watch, args=(name, address), daemon=True).start()
for _ in sys.stdin:  # until the test closes stdin (or its docker exec goes away)
    pass
"""


class Sampler:
    """@@read_only of every db server, each read over the network from the monitor host
    every 50 ms by its own thread. A server counts as writable from a sample that says
    read_only=0 until its next sample (a server nobody can reach takes no writes); two
    writable servers at once is any overlap of two servers' writable intervals."""

    def __init__(self, site: Site, servers: dict[str, str]) -> None:
        self.site = site
        self.marker = f"hostkit-sampler-{uuid.uuid4().hex[:8]}"
        self.proc = subprocess.Popen(
            ["docker", "exec", "-i", site.monitor, "python3", "-c", SAMPLER, json.dumps(servers),
             self.marker],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.samples: list[dict[str, Any]] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self.samples.append(json.loads(line))
            except ValueError:
                continue

    def finish(self) -> Sampler:
        """Stop sampling: stdin closed (the script ends at its EOF), and the process in the
        container killed by its marker as well: killing the local `docker exec` alone
        would leave it querying every server 20 times a second until the container ends."""
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        sh("docker", "exec", self.site.monitor, "pkill", "-f", self.marker, check=False)
        self.reader.join(timeout=10)
        return self

    def writable_intervals(self) -> dict[str, list[tuple[float, float]]]:
        by_server: dict[str, list[dict[str, Any]]] = {}
        for sample in sorted(self.samples, key=lambda x: x["t"]):
            by_server.setdefault(sample["s"], []).append(sample)
        out: dict[str, list[tuple[float, float]]] = {}
        for server, samples in by_server.items():
            out[server] = [(a["t"], b["t"]) for a, b in zip(samples, samples[1:], strict=False)
                           if a["ro"] == 0]
        return out

    def two_writable(self) -> list[dict[str, Any]]:
        """Every overlap of two servers' writable intervals: {servers, start, seconds}."""
        intervals = self.writable_intervals()
        names = sorted(intervals)
        overlaps = []
        for i, first in enumerate(names):
            for second in names[i + 1:]:
                for a0, a1 in intervals[first]:
                    for b0, b1 in intervals[second]:
                        start, end = max(a0, b0), min(a1, b1)
                        if start < end:
                            overlaps.append({"servers": [first, second], "start": start,
                                             "seconds": round(end - start, 3)})
        return overlaps

    @property
    def rounds(self) -> list[dict[str, Any]]:
        return self.samples


# --------------------------------------------------------------------------- faults


def master_pid(site: Site, master: str) -> str:
    return sh("docker", "exec", master, "pidof", "mariadbd").stdout.strip()


def fault_kill9(site: Site, master: str) -> None:
    sh("docker", "exec", master, "sh", "-c", "kill -9 $(pidof mariadbd)")


def fault_stop(site: Site, master: str) -> None:
    sh("docker", "stop", "-t", "10", master, timeout=60)


def fault_freeze(site: Site, master: str) -> None:
    sh("docker", "exec", master, "sh", "-c", "kill -STOP $(pidof mariadbd)")


def fault_netcut(site: Site, master: str) -> None:
    sh("docker", "network", "disconnect", "hostkit", master)


FAULTS: dict[str, Callable[[Site, str], None]] = {
    "kill9": fault_kill9, "stop": fault_stop, "freeze": fault_freeze, "netcut": fault_netcut,
}


def kill_watcher_when_journal_appears(site: Site) -> subprocess.Popen[str]:
    """In the monitor container: as soon as a new failover journal is written, kill -9 the
    watcher (it is in the middle of the failover); prints the journal's next step."""
    script = (
        f"before=$(ls {STATE_DIR}/journals 2>/dev/null | grep -c failover); "
        "end=$(( $(date +%s) + 60 )); "
        f"while [ $(ls {STATE_DIR}/journals | grep -c failover) -le $before ]; do "
        "  [ $(date +%s) -gt $end ] && exit 1; sleep 0.005; done; "
        "kill -9 $(systemctl show -p MainPID --value hostkit-failover); date +%s.%N")
    return subprocess.Popen(["docker", "exec", site.monitor, "sh", "-c", script],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@dataclass
class Outcome:
    fault: str
    old_master: str
    new_master: str | None = None
    fault_at: float = 0.0
    figures: dict[str, Any] = field(default_factory=dict)
    writes: list[Write] = field(default_factory=list)
    journal: dict[str, Any] | None = None
    journals_after: int = 0
    lost: list[int] = field(default_factory=list)
    two_writable: list[dict[str, Any]] = field(default_factory=list)
    log: str = ""


def wait_for(predicate: Callable[[], Any], timeout: float, what: str,
             every: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def first_write_number(site: Site) -> int:
    """Numbers never used before on this site (a run's writes stay in the table)."""
    return int(time.time() * 1000) * 100


def run_fault(site: Site, fault: str, *, prepare: Callable[[Site, dict[str, str]], None]
              | None = None, during: Callable[[Site, str], Any] | None = None,
              settle: float = 3.0, expect_failover: bool = True) -> Outcome:
    """Writes and read_only samples before, during and after `fault` on the current master;
    returns the figures. `prepare` runs before the fault (writes already flowing), `during`
    right after it."""
    positions = {k: v for k, v in site.positions().items() if v}
    master = str(positions["master"])
    addresses = {s: site.address(s) for s in positions.values()}
    site.wait_watcher_on(master)
    journals_before = {j["id"] for j in site.journals()}
    sampler = Sampler(site, addresses)
    writer = Writer(site, first_write_number(site))
    writer.start()
    outcome = Outcome(fault, master)
    try:
        wait_for(lambda: len(writer.acked()) >= 20, 60, "20 acknowledged writes before the fault")
        if prepare is not None:
            prepare(site, positions)
        outcome.fault_at = now()
        FAULTS[fault](site, master)
        extra = during(site, master) if during is not None else None
        if expect_failover:
            def moved() -> str | None:
                new = site.positions()["master"]
                return new if new != master else None
            outcome.new_master = wait_for(moved, 90, f"a new master after {fault}", 0.25)
            try:
                wait_for(lambda: any(w.ok and w.server == outcome.new_master and w.sent >
                                     outcome.fault_at for w in writer.writes), 60,
                         "a write acknowledged by the new master")
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{diagnose(site, writer, outcome)}") from None
        time.sleep(settle)
        if callable(extra):
            extra()
    finally:
        writer.finish()
        sampler.finish()
    outcome.writes = writer.writes
    outcome.two_writable = sampler.two_writable()
    new_journals = [j for j in site.journals() if j["id"] not in journals_before]
    failovers = [j for j in new_journals if j["kind"] == "failover"]
    outcome.journals_after = len(failovers)
    outcome.journal = failovers[0] if failovers else None
    outcome.log = site.watcher_log(outcome.fault_at - 5)
    final = site.positions()["master"]
    present = set(int(x) for x in site.sql(final, "SELECT n FROM hello.writes").split())
    outcome.lost = sorted(w.n for w in writer.acked() if w.n not in present)
    outcome.figures = figures(outcome, len(sampler.rounds))
    return outcome


def diagnose(site: Site, writer: Writer, outcome: Outcome) -> str:
    """What the writes after the fault saw, and what each web server and the watcher say:
    the message of a failover that moved the master but not the web tier's writes."""
    after = [w for w in list(writer.writes) if w.sent > (outcome.fault_at or 0)]
    servers: dict[str, int] = {}
    errors: dict[str, int] = {}
    for w in after:
        if w.ok:
            servers[w.server] = servers.get(w.server, 0) + 1
        else:
            errors[w.error[:160]] = errors.get(w.error[:160], 0) + 1
    lines = [f"new master {outcome.new_master}; writes after the fault: {len(after)}, "
             f"acknowledged by {servers}", "errors (count: message):"]
    lines += [f"  {n}: {e}" for e, n in sorted(errors.items(), key=lambda i: -i[1])[:8]]
    doc = site.doc()
    for web in doc["products"][PRODUCT].get("web", []):
        out = sh("docker", "exec", web, "sh", "-c",
                 f"cat /srv/www/{PRODUCT}/shared/config/runtime.json /var/lib/hostkit-config-agent/"
                 "state.json 2>&1; journalctl -u hostkit-config-agent --no-pager -n 5 -o cat",
                 check=False, timeout=30)
        lines.append(f"{web}: {(out.stdout + out.stderr)[-1500:]}")
    lines.append("watcher log:\n" + site.watcher_log(outcome.fault_at - 5)[-3000:])
    return "\n".join(lines)


def figures(o: Outcome, rounds: int) -> dict[str, Any]:
    acked = [w for w in o.writes if w.ok]
    after = [w for w in acked if o.new_master and w.server == o.new_master and w.sent > o.fault_at]
    last_old = max((w.done for w in acked if w.server == o.old_master), default=None)
    first_new = min((w.done for w in after), default=None)
    journal = o.journal or {}
    steps = {s["name"]: s for s in journal.get("steps", [])}
    detected = stamp_seconds(journal.get("detected_at"))
    published = stamp_seconds((steps.get("publish") or {}).get("finished_at"))
    return {
        "writes_sent": len(o.writes), "writes_acknowledged": len(acked),
        "acknowledged_lost": len(o.lost), "two_writable_samples": len(o.two_writable),
        "read_only_samples": rounds,
        "detection_s": round(detected - o.fault_at, 2) if detected else None,
        "fault_to_published_s": round(published - o.fault_at, 2) if published else None,
        "fault_to_first_write_s": round(first_new - o.fault_at, 2) if first_new else None,
        "refused_window_s": round(first_new - last_old, 2) if first_new and last_old else None,
        "failovers": o.journals_after,
        "new_master": o.new_master,
    }


# --------------------------------------------------------------------------- restore


def credential(site: Site, name: str) -> str:
    return (ROOT / "credentials" / "sandbox" / name).read_text().split()[0]


def set_doc(site: Site, change: Callable[[dict[str, Any]], tuple[dict[str, Any], bool]]
            ) -> int:
    return site.store().update(change, "test_failover").epoch


def wait_watcher_epoch(site: Site, epoch: int, timeout: float = 30) -> None:
    wait_for(lambda: (site.watcher_state().get("epoch") or 0) >= epoch, timeout,
             f"the watcher to read epoch {epoch}", 0.3)


def bring_back(site: Site, server: str) -> None:
    """Start a fenced container again and put it back on the network with its address."""
    address = site.address(server)
    if not site.running(server):
        if sh("docker", "inspect", "-f", "{{.State.Paused}}", server).stdout.strip() == "true":
            sh("docker", "unpause", server)
        else:
            sh("docker", "start", server)
    if "hostkit" not in site.networks(server):
        sh("docker", "network", "connect", "--ip", address, "hostkit", server)
    wait_for(lambda: sh("docker", "exec", server, "systemctl", "is-system-running",
                        check=False).stdout.strip() in ("running", "degraded"), 120,
             f"{server} to boot")
    sh("docker", "exec", server, "sh", "-c",
       "pidof mariadbd >/dev/null || systemctl start mariadb")
    # a process stopped with SIGSTOP (the freeze fault) gets SIGCONT; harmless otherwise
    sh("docker", "exec", server, "sh", "-c", "kill -CONT $(pidof mariadbd)", check=False)
    wait_for(lambda: site.sql(server, "SELECT 1", check=False) == "1", 60,
             f"MariaDB on {server}")


def reseed(site: Site, server: str, source: str, semi_sync: bool) -> None:
    """Make `server` a fresh replica of `source`: its old data and binary logs thrown away,
    the products' databases copied from `source` (consistent, with its GTID position), then
    replication from `source` with GTID."""
    # every database of the cluster's products (hello and notes share the cluster)
    databases = site.sql(source, "SELECT schema_name FROM information_schema.schemata WHERE "
                                 "schema_name NOT IN ('mysql', 'information_schema', "
                                 "'performance_schema', 'sys')").split()
    drops = "; ".join(f"DROP DATABASE IF EXISTS `{name}`" for name in databases)
    site.sql(server, "SET GLOBAL read_only = ON; STOP SLAVE; RESET SLAVE ALL; RESET MASTER; "
                     f"SET SESSION sql_log_bin = 0; {drops}")
    dump = sh("docker", "exec", source, "mariadb-dump", "--single-transaction", "--master-data=2",
              "--gtid", "--routines", "--events", "--triggers", "--databases", *databases,
              timeout=900).stdout
    position = re.search(r"^-- SET GLOBAL gtid_slave_pos='([0-9,-]*)';$", dump, re.M)
    assert position, f"the copy from {source} names no GTID position"
    sh("docker", "exec", "-i", server, "mariadb", "--init-command=SET SESSION sql_log_bin=0",
       input=dump, timeout=900)
    password = credential(site, "mysql-replication").replace("'", "''")
    # The binary log (empty after RESET MASTER) starts at the copy's position, so that a
    # replica of this server that is there already can go on from it.
    site.sql(server, f"SET GLOBAL gtid_binlog_state = '{position.group(1)}'; "
                     f"SET GLOBAL gtid_slave_pos = '{position.group(1)}'; "
                     f"SET GLOBAL rpl_semi_sync_master_enabled = OFF; "
                     f"SET GLOBAL rpl_semi_sync_slave_enabled = {'ON' if semi_sync else 'OFF'}; "
                     f"CHANGE MASTER TO MASTER_HOST='{site.address(source)}', MASTER_PORT=3306, "
                     f"MASTER_USER='hostkit_repl', MASTER_PASSWORD='{password}', "
                     "MASTER_CONNECT_RETRY=5, MASTER_HEARTBEAT_PERIOD=0.5, "
                     "MASTER_USE_GTID=slave_pos; START SLAVE")
    wait_for(lambda: replicating(site, server), 60, f"{server} replicating from {source}")


def replicating(site: Site, server: str) -> bool:
    out = sh("docker", "exec", server, "mariadb", "-e", "SHOW SLAVE STATUS\\G",
             check=False).stdout
    return "Slave_IO_Running: Yes" in out and "Slave_SQL_Running: Yes" in out


def replicating_from(site: Site, server: str, address: str) -> bool:
    out = sh("docker", "exec", server, "mariadb", "-e", "SHOW SLAVE STATUS\\G",
             check=False).stdout
    return replicating(site, server) and f"Master_Host: {address}\n" in out


def rejoin(site: Site, server: str) -> None:
    """An operator brings a fenced (or lost) db server back as a replica: out of the fenced
    state first (the watcher would cut it off again), started, re-seeded, then given the
    first empty eligible position in the global config."""
    epoch = set_doc(site, lambda d: set_server(d, server, state="provisioning"))
    wait_watcher_epoch(site, epoch)
    bring_back(site, server)
    positions = site.positions()
    position = "candidate" if not positions["candidate"] else "slave_candidate"
    source = positions["master"] if position == "candidate" else positions["candidate"]
    reseed(site, server, str(source), semi_sync=True)
    set_doc(site, lambda d: set_server(set_product_db(d, PRODUCT, **{position: server})[0],
                                       server, state="in_service"))


def restore(site: Site) -> dict[str, float]:
    """Back to the initial positions: every db server replicating in its canonical place,
    the canonical master writable, the watcher watching it, its last failover acknowledged."""
    start = time.monotonic()
    timings: dict[str, float] = {}
    doc = site.doc()
    placed = set(filter(None, doc["products"][PRODUCT]["db"].values()))
    for server in site.dbs:
        if server not in placed or doc["servers"][server]["state"] == "fenced":
            rejoin(site, server)
            timings[f"rejoin {server}"] = round(time.monotonic() - start, 1)
    for _ in range(4):
        positions = site.positions()
        if positions == site.canonical:
            break
        target = site.canonical["master"] if positions["master"] != site.canonical["master"] \
            else site.canonical["candidate"]
        if positions["master"] == site.canonical["master"]:
            # the right master, the others misplaced: away and back again
            out = site.watcher("switchover", "--product", PRODUCT, "--new-master",
                               str(positions["candidate"]), check=False)
            assert out.returncode == 0, out.stderr[-2000:]
            target = site.canonical["master"]
        site.wait_watcher_on(str(site.positions()["master"]))
        out = site.watcher("switchover", "--product", PRODUCT, "--new-master", target,
                           check=False)
        assert out.returncode == 0, out.stderr[-2000:]
    assert site.positions() == site.canonical, site.positions()
    sources = {"candidate": "master", "backup": "master", "slave_candidate": "candidate"}
    for _ in range(3):
        time.sleep(1.0)  # an IO thread that cannot go on says so within a second
        broken = [p for p, src in sources.items() if not replicating_from(
            site, site.canonical[p], site.address(site.canonical[src]))]
        if not broken:
            break
        for position in broken:
            server, source = site.canonical[position], site.canonical[sources[position]]
            reseed(site, server, source, semi_sync=position != "backup")
            timings[f"reseed {server}"] = round(time.monotonic() - start, 1)
    site.watcher("ack", "--product", PRODUCT)
    site.wait_watcher_on(site.canonical["master"])
    timings["restore"] = round(time.monotonic() - start, 1)
    return timings


# --------------------------------------------------------------------------- sites


def playbook(site: Site, *args: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.default",
           "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}
    sources = [a for inv in site.inventory for a in ("-i", inv)]
    return subprocess.run([str(BIN / "ansible-playbook"), *sources, *args], text=True,
                          capture_output=True, cwd=ROOT, env=env, timeout=timeout)


def sandbox_site() -> Site:
    return Site(dbs=[f"hostkit-db-{i}" for i in range(1, 5)], monitor="hostkit-monitor",
                write_url="http://127.0.0.1:8080/write", host_header="hello.sandbox.test",
                bucket="hostkit-sandbox-config", key="global-config.json",
                inventory=[str(ROOT / "inventory/sandbox")])


OWN_ROLES = [("db-1", "db", "master", "us-east-1a"),
             ("db-2", "db", "candidate", "us-east-1b"),
             ("db-3", "db", "slave_candidate", "us-east-1c"),
             ("db-4", "db", "backup", "us-east-1c"),
             ("mon", "monitor", "", "us-east-1b"),
             ("mc", "memcached", "", "us-east-1a"),
             ("web", "web", "", "us-east-1a")]
OWN_IMAGES = {"db": "hostkit/db:latest", "monitor": "hostkit/monitor:latest",
              "memcached": "hostkit/memcached:latest", "web": "hostkit/web:latest"}


def own_site(work: Path) -> Site:
    """Containers hkfo-<run>-* (db x4, monitor, memcached, web) on the sandbox network, not in the
    sandbox inventory (no io.hostkit.managed label), configured by the site's playbooks
    through an inventory of their own; the global config under key hkfo-<run>.json."""
    ensure_network()
    ensure_bucket("hostkit-sandbox-config")
    run = f"hkfo-{uuid.uuid4().hex[:6]}"
    names = {short: f"{run}-{short}" for short, *_ in OWN_ROLES}
    # Fixed addresses outside the engine's automatic range (172.30.0.0/20): a fenced
    # container is disconnected, and its address must still be free when it rejoins (the
    # grants and firewalls of the cluster name the servers' addresses).
    base = 40 + uuid.uuid4().int % 200
    for index, (short, role, db_role, az) in enumerate(OWN_ROLES):
        labels = {"io.hostkit.test": run, "io.hostkit.role": role, "io.hostkit.az": az,
                  "io.hostkit.products": "hello" if role != "monitor" else "",
                  "io.hostkit.db_role": db_role}
        extra = ["-v", "/var/run/docker.sock:/var/run/docker.sock"] if role == "monitor" else []
        # web servers are admitted by the web tier's range (us-east-1c: 172.30.18.0/24)
        extra += ["--ip", f"172.30.18.{200 + base % 50}" if role == "web"
                  else f"172.30.{base}.{10 + index}"]
        sh("docker", "run", "-d", "--name", names[short], "--hostname", names[short],
           "--network", "hostkit", *[a for k, v in labels.items() for a in ("--label", f"{k}={v}")],
           *extra, *SYSTEMD_FLAGS, OWN_IMAGES[role], "/lib/systemd/systemd")
    inventory = yaml.safe_load((ROOT / "inventory/sandbox/docker.yml").read_text())
    inventory["filters"] = [
        {"include": "docker_state.Running | default(false) and (docker_config.Labels | "
                    f"default({{}}, true)).get('io.hostkit.test', '') == '{run}'"},
        {"exclude": True}]
    (work / "hkfo.docker.yml").write_text(yaml.safe_dump(inventory))
    group_vars = work / "group_vars" / "all"
    group_vars.mkdir(parents=True)
    for source in (ROOT / "inventory/sandbox/group_vars/all").glob("*.yml"):
        (group_vars / source.name).symlink_to(source)
    (group_vars / "zz_hkfo.yml").write_text(yaml.safe_dump({
        "hostkit_global_config_key": f"{run}.json",
        "sandbox_fleet": [],
    }))
    for name in names.values():
        wait_for(lambda n=name: sh("docker", "exec", n, "systemctl", "is-system-running",
                                   check=False).stdout.strip() in ("running", "degraded"),
                 180, f"{name} to boot", 1.0)
    site = Site(dbs=[names[f"db-{i}"] for i in range(1, 5)], monitor=names["mon"],
                write_url="", host_header="hello.sandbox.test",
                bucket="hostkit-sandbox-config", key=f"{run}.json",
                inventory=[str(work / "hkfo.docker.yml")], own=True, run=run, work=work)
    web_ip = sh("docker", "inspect", "-f", "{{(index .NetworkSettings.Networks \"hostkit\")"
                ".IPAddress}}", names["web"]).stdout.strip()
    site.write_url = f"http://{web_ip}/write"
    return site


def converge_own_site(site: Site) -> None:
    # failover_and_backups.yml for the monitor only: this site's clusters get no backups
    # (the sandbox's bucket holds the sandbox's)
    for book, *extra in (["playbooks/db.yml"], ["playbooks/memcached.yml"],
                         ["playbooks/global_config.yml"],
                         ["playbooks/failover_and_backups.yml", "--limit",
                          "localhost:role_monitor"],
                         ["playbooks/web.yml"]):
        start = time.monotonic()
        result = playbook(site, book, *extra)
        (site.work or Path("/tmp")).joinpath(Path(book).stem + ".log").write_text(
            result.stdout + result.stderr)
        site.timings[book] = round(time.monotonic() - start, 1)
        assert result.returncode == 0, f"{book}:\n{result.stdout[-5000:]}\n{result.stderr[-2000:]}"


def remove_own_site(site: Site) -> None:
    names = sh("docker", "ps", "-aq", "--filter", f"label=io.hostkit.test={site.run}",
               check=False).stdout.split()
    for container in names:
        sh("docker", "rm", "-f", container, check=False)
    try:
        s3_client(AWS_HOST_URL).delete_object(Bucket=site.bucket, Key=site.key)
    except Exception as exc:  # the endpoint may be gone already; say so, nothing else to do
        print(f"could not delete s3://{site.bucket}/{site.key}: {exc}")


@contextmanager
def module_site(work: Callable[[str], Path], sandbox_up: Callable[[], Any],
                label: str) -> Iterator[Site]:
    """The site a test module works on: an own cluster of hkfo-* containers under
    `work(label)` (HOSTKIT_FAILOVER_SITE=own, removed at the end), else the shared sandbox
    (`sandbox_up()` brings it up once per session), in its initial positions before and
    after the module."""
    if os.environ.get("HOSTKIT_FAILOVER_SITE", "sandbox") == "own":
        own = own_site(work(label))
        try:
            converge_own_site(own)
            yield own
        finally:
            remove_own_site(own)
    else:
        sandbox = sandbox_site()
        sandbox_up()
        restore(sandbox)
        yield sandbox
        restore(sandbox)
