"""Benchmark: day two with two products on one database cluster (the sandbox's hello and
notes), with a dataset of a given size in the cluster.

Each run, from the initial positions:
1. kill -9 of the master while both products write (to the web servers directly): seconds
   from the fault to the first write of each product acknowledged by the new master
   (target: under 6 s with two products on one cluster);
2. `make up` after the failover (playbooks/sandbox_up.yml): seconds, and what it changed;
3. the one command that restores full redundancy, playbooks/rejoin.yml of the fenced old
   master (a physical copy of the dataset): seconds, and seconds from the fault until all
   four positions are held and replicating (target: under 3 minutes with 1 GB).

Prints a table (median, min, max); asserts nothing about time. The cluster is put back in its
initial positions between runs.

  .venv/bin/python tests/bench/bench_day_two.py [--runs 3] [--dataset-mb 1024]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.platform import failover_site as fs  # noqa: E402
from tests.platform.day_two_site import full, incident, make_up, run  # noqa: E402

CHUNK_MB = 64


def dataset_mb(site: fs.Site, master: str) -> float:
    out = site.sql(master, "SELECT COALESCE(SUM(data_length + index_length), 0) / 1048576 "
                           "FROM information_schema.tables WHERE table_schema IN "
                           "('hello', 'notes')")
    return float(out or 0)


def load_dataset(site: fs.Site, megabytes: int) -> float:
    """Grow hello.bench_blob until the products' databases hold `megabytes` MB (rows of 8 KB
    of random text, written on the master; the replicas get them through replication)."""
    master = str(site.positions()["master"])
    site.sql(master, "CREATE TABLE IF NOT EXISTS hello.bench_blob (id BIGINT AUTO_INCREMENT "
                     "PRIMARY KEY, body MEDIUMTEXT NOT NULL) ENGINE=InnoDB")
    rows = CHUNK_MB * 128  # 8 KB each
    while (size := dataset_mb(site, master)) < megabytes:
        site.sql(master, "INSERT INTO hello.bench_blob (body) SELECT REPEAT(MD5(RAND()), 256) "
                         f"FROM hello.seq_1_to_{rows}", timeout=600)
        print(f"dataset: {size:.0f} MB", flush=True)
    fs.wait_for(lambda: all(fs.replicating(site, s) and site.sql(
        s, "SELECT COUNT(*) FROM hello.bench_blob") == site.sql(
        master, "SELECT COUNT(*) FROM hello.bench_blob")
        for s in site.positions().values() if s and s != master), 900,
        "the replicas to hold the dataset", 2.0)
    return dataset_mb(site, master)


def one_run(site: fs.Site) -> dict[str, Any]:
    first = incident(site, via="web")
    started = time.monotonic()
    after = make_up(site, "the failover", changed_allowed=True)
    up_s = time.monotonic() - started
    started = time.monotonic()
    run(site, "playbooks/rejoin.yml", "-e", f"host={first['old']}")
    rejoin_s = time.monotonic() - started
    full(site)
    return {"first_write_hello_s": first["first_write_s"]["hello"],
            "first_write_notes_s": first["first_write_s"]["notes"],
            "make_up_after_failover_s": round(up_s, 1),
            "make_up_changed": after["changed"],
            "rejoin_s": round(rejoin_s, 1),
            "fault_to_full_redundancy_s": round(time.time() - first["fault_at"], 1)}


def table(runs: list[dict[str, Any]]) -> str:
    lines = [f"{'figure':<30} {'median':>8} {'min':>8} {'max':>8}"]
    for key in ("first_write_hello_s", "first_write_notes_s", "make_up_after_failover_s",
                "rejoin_s", "fault_to_full_redundancy_s"):
        values = [r[key] for r in runs]
        lines.append(f"{key:<30} {statistics.median(values):>8.2f} {min(values):>8.2f} "
                     f"{max(values):>8.2f}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dataset-mb", type=int, default=1024)
    args = parser.parse_args()
    site = fs.sandbox_site()
    up = fs.playbook(site, "playbooks/sandbox_up.yml")
    if up.returncode != 0:
        print(up.stdout[-3000:], file=sys.stderr)
        return 1
    fs.restore(site)
    size = load_dataset(site, args.dataset_mb)
    print(f"dataset in the cluster: {size:.0f} MB", flush=True)
    runs = []
    for number in range(args.runs):
        fs.restore(site)
        figures = one_run(site)
        runs.append(figures)
        print(f"run {number + 1}: {json.dumps(figures, sort_keys=True)}", flush=True)
    fs.restore(site)
    out = ROOT / ".state" / "bench" / "day_two.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"dataset_mb": size, "runs": runs}, indent=2) + "\n")
    print(f"dataset {size:.0f} MB, {len(runs)} runs")
    print(table(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
