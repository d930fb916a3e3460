#!/usr/bin/env python3
"""Benchmark of the main job on the sandbox.

- `launch_web.yml`: wall time from the command to the new server answering through the
  edge (the playbook ends only once the edge finds it healthy), per phase from the
  playbook's own timeline; each launched server is decommissioned (timed too) before the
  next run. Median of --runs (default 5).
- `playbooks/sandbox_up.yml` run again on an up sandbox (idempotent): wall time.
Needs an up sandbox (`make up`). Prints figures; asserts nothing about time.
Usage: tests/bench/bench_launch.py [--runs 5] [--site-runs 1]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from scripts.sandbox import s3_client  # noqa: E402

BIN = ROOT / ".venv" / "bin"
PHASE = re.compile(r"^\s*(?:-\s+)?\"?(plan|create|connect|roles|smoke|config|publish|total)\s+"
                   r"([0-9.]+) s", re.M)


def playbook(*args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")}
    started = time.monotonic()
    proc = subprocess.run([str(BIN / "ansible-playbook"), *args], text=True,
                          capture_output=True, cwd=ROOT, env=env)
    return time.monotonic() - started, proc


def web_servers() -> list[str]:
    body = s3_client().get_object(Bucket="hostkit-sandbox-config",
                                  Key="global-config.json")["Body"].read()
    return list(json.loads(body)["products"]["hello"]["web"])


def phases(output: str) -> dict[str, float]:
    return {name: float(seconds) for name, seconds in PHASE.findall(output)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--site-runs", type=int, default=1)
    args = parser.parse_args()
    print(f"load: {os.getloadavg()[0]:.2f} (1 min), cores: {os.cpu_count()}")

    launches, decommissions, timelines = [], [], []
    for run in range(args.runs):
        before = web_servers()
        seconds, proc = playbook("launch_web.yml", "-e", f"count={len(before) + 1}")
        if proc.returncode != 0:
            print(proc.stdout[-4000:])
            return 1
        new = sorted(set(web_servers()) - set(before))
        launches.append(seconds)
        timelines.append(phases(proc.stdout))
        print(f"launch {run + 1}: {seconds:.1f} s  {new}  {timelines[-1]}")
        seconds, proc = playbook("playbooks/decommission.yml", "-e", f"host={new[0]}")
        if proc.returncode != 0:
            print(proc.stdout[-4000:])
            return 1
        decommissions.append(seconds)
        print(f"decommission {run + 1}: {seconds:.1f} s")

    site = []
    for _ in range(args.site_runs):
        seconds, proc = playbook("playbooks/sandbox_up.yml")
        if proc.returncode != 0:
            print(proc.stdout[-4000:])
            return 1
        site.append(seconds)

    print("\n| measure | median s | min s | max s | samples |")
    print("|---|---|---|---|---|")
    rows = [("launch_web.yml (to serving through the edge)", launches),
            ("decommission.yml", decommissions),
            ("sandbox_up.yml re-run (idempotent)", site)]
    for name in ("plan", "create", "connect", "roles", "smoke", "config", "publish"):
        values = [t[name] for t in timelines if name in t]
        if values:
            rows.append((f"  phase {name}", values))
    for label, values in rows:
        if values:
            print(f"| {label} | {statistics.median(values):.1f} | {min(values):.1f} | "
                  f"{max(values):.1f} | {len(values)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
