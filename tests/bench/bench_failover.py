"""Benchmark: automated failover and planned switchover, median of N runs per fault.

For each unplanned fault of the master (kill -9 of mariadbd, container stopped, mariadbd
frozen with SIGSTOP, container cut off the network) and for the planned switchover
(playbooks/failover.yml), with numbered writes through the web tier:

- fault to the first write acknowledged by the new master (target: under 6 s),
- detection: fault to the watcher's verdict (target: under 3 s),
- refused-write window: last write acknowledged by the old master to the first one by the
  new master (planned switchover target: under 2 s),
- acknowledged writes lost and read_only samples with two writable servers (both must be 0).

Prints a table (median and max of the runs); asserts nothing about time. The cluster is
restored to its initial positions between runs.

  .venv/bin/python tests/bench/bench_failover.py [--runs 5] [--faults kill9,stop,...]
      [--site sandbox|own] [--via web|edge]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.platform import failover_site as fs  # noqa: E402

UNPLANNED = ["kill9", "stop", "freeze", "netcut"]
FIGURES = ["fault_to_first_write_s", "detection_s", "fault_to_published_s", "refused_window_s"]


def planned(site: fs.Site) -> dict[str, Any]:
    positions = site.positions()
    old, new = str(positions["master"]), str(positions["candidate"])
    site.wait_watcher_on(old)
    sampler = fs.Sampler(site, {s: site.address(s) for s in positions.values() if s})
    writer = fs.Writer(site, fs.first_write_number(site))
    writer.start()
    try:
        fs.wait_for(lambda: len(writer.acked()) >= 20, 60, "writes before the switchover")
        started = fs.now()
        result = fs.playbook(site, "playbooks/failover.yml", "-e", "product=hello")
        fs.wait_for(lambda: any(w.ok and w.server == new for w in writer.writes), 60,
                    "a write acknowledged by the new master")
        time.sleep(1)
    finally:
        writer.finish()
        sampler.finish()
    if result.returncode != 0:
        raise RuntimeError(result.stdout[-3000:])
    acked = writer.acked()
    present = {int(x) for x in site.sql(new, "SELECT n FROM hello.writes").split()}
    last_old = max(w.done for w in acked if w.server == old)
    first_new = min(w.done for w in acked if w.server == new)
    return {"acknowledged_lost": sum(1 for w in acked if w.n not in present),
            "two_writable_samples": len(sampler.two_writable()),
            "refused_window_s": round(first_new - last_old, 2),
            "fault_to_first_write_s": round(first_new - started, 2),
            "detection_s": None, "fault_to_published_s": None}


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"runs": len(runs),
                           "lost_total": sum(r["acknowledged_lost"] for r in runs),
                           "two_writable_total": sum(r["two_writable_samples"] for r in runs)}
    for name in FIGURES:
        values = [r[name] for r in runs if r.get(name) is not None]
        out[name] = ({"median": round(statistics.median(values), 2), "max": max(values)}
                     if values else None)
    return out


def table(summary: dict[str, dict[str, Any]]) -> str:
    head = (f"{'fault':<20}{'runs':>5}{'first write s (med/max)':>26}{'detection s':>16}"
            f"{'published s':>16}{'refused s':>16}{'lost':>6}{'2 writable':>12}")
    lines = [head, "-" * len(head)]
    for fault, s in summary.items():
        def cell(name: str, s: dict[str, Any] = s) -> str:
            v = s.get(name)
            return f"{v['median']}/{v['max']}" if v else "-"
        lines.append(f"{fault:<20}{s['runs']:>5}{cell('fault_to_first_write_s'):>26}"
                     f"{cell('detection_s'):>16}{cell('fault_to_published_s'):>16}"
                     f"{cell('refused_window_s'):>16}{s['lost_total']:>6}"
                     f"{s['two_writable_total']:>12}")
    lines.append("targets: unplanned fault -> first acknowledged write < 6 s; detection < 3 s; "
                 "planned switchover refused window < 2 s; lost 0; two writable 0")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--faults", default=",".join(UNPLANNED + ["planned"]))
    parser.add_argument("--site", choices=["sandbox", "own"], default="sandbox")
    parser.add_argument("--via", choices=["web", "edge"], default="web",
                        help="write to the web servers directly (default) or through the "
                             "sandbox's edge, whose health checks take the web servers out "
                             "while the database master is gone")
    args = parser.parse_args()
    faults = [f for f in args.faults.split(",") if f]
    if args.site == "own":
        site = fs.own_site(Path(tempfile.mkdtemp(prefix="hkfo-bench-")))
        fs.converge_own_site(site)
    else:
        site = fs.sandbox_site()
        up = fs.playbook(site, "playbooks/sandbox_up.yml")
        if up.returncode != 0:
            print(up.stdout[-3000:], file=sys.stderr)
            return 1
    if args.via == "web":
        site.write_url = site.web_write_urls()
    results: dict[str, list[dict[str, Any]]] = {f: [] for f in faults}
    try:
        for run in range(args.runs):
            for fault in faults:
                fs.restore(site)
                figures = planned(site) if fault == "planned" else \
                    fs.run_fault(site, fault).figures
                results[fault].append(figures)
                print(f"run {run + 1} {fault}: {json.dumps(figures, sort_keys=True)}",
                      flush=True)
        fs.restore(site)
    finally:
        if site.own:
            fs.remove_own_site(site)
    summary = {f: summarise(r) for f, r in results.items() if r}
    out = ROOT / ".state" / "failover" / "bench.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"summary": summary, "runs": results}, indent=2) + "\n")
    print(table(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
