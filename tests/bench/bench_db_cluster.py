#!/usr/bin/env python3
"""Benchmark of the database tier: converge seconds of a four-server cluster.

Four fresh systemd containers of the baked db image (`hostkit/db:latest`), labelled master,
candidate, slave_candidate and backup of product `hello`, are converged with
`ansible-playbook playbooks/db.yml` through the sandbox's docker inventory narrowed to them:
- first converge (timed),
- idempotent re-runs (timed, changed=0 checked),
then the containers are removed. Prints the figures; asserts nothing about time.
Usage: tests/bench/bench_db_cluster.py [--runs 1] [--reruns 2]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from scripts.sandbox import ensure_network  # noqa: E402
from tests.support import SYSTEMD_RUN_FLAGS, docker, wait_for_systemd  # noqa: E402

BIN = ROOT / ".venv" / "bin"
POSITIONS = ("master", "candidate", "slave_candidate", "backup")


def start_cluster(run: str) -> list[str]:
    names = []
    for i, position in enumerate(POSITIONS, start=1):
        name = f"{run}-db{i}"
        labels = {"io.hostkit.managed": "true", "io.hostkit.role": "db",
                  "io.hostkit.products": "hello", "io.hostkit.az": "us-east-1a",
                  "io.hostkit.db_role": position, "io.hostkit.test": run}
        docker("run", "-d", "--name", name, "--hostname", name, "--network", "hostkit",
               *[a for k, v in labels.items() for a in ("--label", f"{k}={v}")],
               *SYSTEMD_RUN_FLAGS, "hostkit/db:latest", "/lib/systemd/systemd")
        names.append(name)
    for name in names:
        wait_for_systemd(name, timeout=120)
    return names


def inventory(tmp: Path, run: str) -> Path:
    config = yaml.safe_load((ROOT / "inventory/sandbox/docker.yml").read_text())
    config["filters"] = [
        {"include": "docker_state.Running | default(false) and (docker_config.Labels | "
                    f"default({{}}, true)).get('io.hostkit.test', '') == '{run}'"},
        {"exclude": True},
    ]
    path = tmp / "bench.docker.yml"
    path.write_text(yaml.safe_dump(config))
    (tmp / "group_vars").symlink_to(ROOT / "inventory/sandbox/group_vars")
    return path


def converge(inv: Path) -> tuple[float, int]:
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
           "PATH": f"{BIN}:{os.environ['PATH']}"}
    t0 = time.perf_counter()
    proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(inv), "playbooks/db.yml"],
                          text=True, capture_output=True, cwd=ROOT, env=env)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        log = ROOT / ".state" / "bench" / f"db_cluster-{inv.parent.name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(proc.stdout + proc.stderr)
        failures = "\n".join(line for line in proc.stdout.splitlines()
                             if line.startswith(("fatal:", "failed:", "TASK [")))
        raise SystemExit(f"playbooks/db.yml failed (whole output in {log}):\n"
                         f"{failures[-3000:]}\n{proc.stderr[-2000:]}")
    changed = sum(int(n) for n in re.findall(r"changed=(\d+)",
                                               proc.stdout.split("PLAY RECAP")[-1]))
    return seconds, changed


def bench(reruns: int) -> tuple[float, list[float]]:
    run = f"hkmy-bench-{uuid.uuid4().hex[:6]}"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            start_cluster(run)
            inv = inventory(Path(tmp), run)
            first, _ = converge(inv)
            again = []
            for _ in range(reruns):
                seconds, changed = converge(inv)
                if changed:
                    raise SystemExit(f"re-run was not idempotent (changed={changed})")
                again.append(seconds)
            return first, again
    finally:
        for i in range(1, len(POSITIONS) + 1):
            docker("rm", "-f", f"{run}-db{i}", check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--runs", type=int, default=1, help="fresh clusters to converge")
    parser.add_argument("--reruns", type=int, default=2, help="idempotent runs per cluster")
    args = parser.parse_args()
    build = subprocess.run([sys.executable, "-m", "image_builders", "build", "base", "db"],
                           cwd=ROOT, text=True, capture_output=True)
    if build.returncode != 0:
        raise SystemExit(f"cannot build the db image:\n{build.stdout[-3000:]}"
                         f"{build.stderr[-2000:]}")
    ensure_network()
    firsts: list[float] = []
    agains: list[float] = []
    for i in range(args.runs):
        first, again = bench(args.reruns)
        firsts.append(first)
        agains += again
        print(f"cluster {i + 1}: first converge {first:.1f}s, idempotent "
              f"{', '.join(f'{s:.1f}s' for s in again)}", flush=True)
    print("\nfour-server cluster (hostkit/db:latest, playbooks/db.yml: common + mysql)")
    print(f"  first converge      median {statistics.median(firsts):6.1f}s   "
          f"samples {[round(s, 1) for s in firsts]}")
    if agains:
        print(f"  idempotent re-run   median {statistics.median(agains):6.1f}s   "
              f"samples {[round(s, 1) for s in agains]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
