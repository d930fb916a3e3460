"""The day-two machinery shared by tests/platform/test_day_two.py and
tests/bench/bench_day_two.py: both demo products (hello and notes, on one database cluster)
served and written through the edge, an incident (kill -9 of the master while both write),
`make up` with its recap, and the cluster's positions all held and replicating."""

from __future__ import annotations

import subprocess
import time
import urllib.error
import urllib.request
from typing import Any

from scripts.ci_checks import play_recap as recap
from tests.platform import failover_site as fs

EDGE = "http://127.0.0.1:8080"
PRODUCTS = {"hello": "hello.sandbox.test", "notes": "notes.sandbox.test"}
# Where each product's numbered writes land (table, column).
WRITES = {"hello": "hello.writes", "notes": "notes.notes WHERE seq IS NOT NULL"}
WRITE_COLUMN = {"hello": "n", "notes": "seq"}


def get(path: str, host: str) -> tuple[int, str]:
    request = urllib.request.Request(EDGE + path, headers={"Host": host})
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, reply.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
    except OSError as exc:
        return 0, repr(exc)


def both_serve(step: str) -> None:
    """Every product answers through the edge with a page naming a web server."""
    for product, host in PRODUCTS.items():
        status, body = fs.wait_for(
            lambda h=host: (lambda r: r if r[0] == 200 else None)(get("/", h)), 60,
            f"{product} to serve through the edge after {step}", 1.0)
        assert "served-by" in body, f"{product} after {step}: {body[:300]}"




def run(site: fs.Site, *args: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    started = time.monotonic()
    result = fs.playbook(site, *args, timeout=timeout)
    seconds = time.monotonic() - started
    print(f"{' '.join(args)}: rc {result.returncode} in {seconds:.1f} s")
    assert result.returncode == 0, f"{args}:\n{result.stdout[-6000:]}\n{result.stderr[-2000:]}"
    return result


def make_up(site: fs.Site, step: str, changed_allowed: bool = False) -> dict[str, Any]:
    result = run(site, "playbooks/sandbox_up.yml")
    counts = recap(result.stdout)
    assert not any(c.get("failed") or c.get("unreachable") for c in counts.values()), counts
    changed = {host: c["changed"] for host, c in counts.items() if c.get("changed")}
    if not changed_allowed:
        assert changed == {}, f"make up after {step} changed: {changed}\n{result.stdout[-5000:]}"
    both_serve(f"make up after {step}")
    return {"changed": changed, "output": result.stdout}


def writers(site: fs.Site, via: str = "edge") -> dict[str, fs.Writer]:
    """One writer per product: through the edge (what users see; its health checks take the
    web servers out while the master is gone), or to the web servers directly (`via='web'`:
    the failover itself, as the benchmarks measure it)."""
    url = f"{EDGE}/write" if via == "edge" else site.web_write_urls()
    out = {}
    for product, host in PRODUCTS.items():
        target = fs.Site(**{**site.__dict__, "write_url": url, "host_header": host})
        out[product] = fs.Writer(target, fs.first_write_number(site) + len(out) * 10_000_000,
                                 clients=2)
    return out


def incident(site: fs.Site, via: str = "edge") -> dict[str, Any]:
    """kill -9 of the master while both products write; the failover, and every
    acknowledged write of both products on the new master."""
    old = str(site.positions()["master"])
    site.wait_watcher_on(old)
    running = writers(site, via)
    for writer in running.values():
        writer.start()
    fs.wait_for(lambda: all(len(w.acked()) >= 10 for w in running.values()), 60,
                "10 acknowledged writes of each product")
    fault_at = time.time()
    fs.fault_kill9(site, old)
    new = fs.wait_for(lambda: (lambda m: m if m != old else None)(site.positions()["master"]),
                      90, "a new master", 0.25)
    firsts = {}
    for product, writer in running.items():
        firsts[product] = fs.wait_for(
            lambda w=writer: min((x.done for x in w.acked() if x.server == new
                                  and x.sent > fault_at), default=None), 60,
            f"a write of {product} acknowledged by {new}") - fault_at
    time.sleep(1)
    for writer in running.values():
        writer.finish()
    doc = site.doc()
    # one failover moved both products, in one epoch
    assert doc["products"]["hello"]["db"] == doc["products"]["notes"]["db"] == \
        doc["clusters"]["hello"]["db"]
    assert doc["servers"][old]["state"] == "fenced"
    lost = {}
    for product, writer in running.items():
        table, column = WRITES[product], WRITE_COLUMN[product]
        present = {int(x) for x in site.sql(new, f"SELECT {column} FROM {table}").split()}
        lost[product] = sorted(w.n for w in writer.acked() if w.n not in present)
    assert lost == {"hello": [], "notes": []}, lost
    print(f"incident: {old} -> {new}; first write per product (s) {firsts}")
    return {"old": old, "new": new, "fault_at": fault_at,
            "first_write_s": {p: round(s, 2) for p, s in firsts.items()}}


def full(site: fs.Site) -> dict[str, str | None]:
    positions = site.positions()
    assert all(positions.values()), f"a position is empty: {positions}"
    for position, source in (("candidate", "master"), ("backup", "master"),
                             ("slave_candidate", "candidate")):
        server, upstream = str(positions[position]), str(positions[source])
        fs.wait_for(lambda s=server, u=upstream: fs.replicating_from(site, s, site.address(u)),
                    60, f"{server} ({position}) replicating from {upstream}")
    return positions


