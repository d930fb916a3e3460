#!/usr/bin/env python3
"""Benchmark of the web stack roles (common, apache, php, memcached, product `hello`).

For each starting image (vanilla Debian 12 `hostkit/os:bookworm`, and the baked
`hostkit/web:latest`), a fresh systemd container gets a local MariaDB for the demo
product (untimed, roles/product/molecule/default/prepare.yml), then:
- first converge: `ansible-playbook tests/bench/web_stack.yml` (timed)
- idempotent re-run: the same command again, changed=0 checked (timed, several times)
Prints medians and samples; asserts nothing about time.
Usage: tests/bench/bench_web_stack.py [--images hostkit/web:latest] [--runs 2] [--reruns 3]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.support import systemd_container  # noqa: E402

BIN = ROOT / ".venv" / "bin"


def run(args: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, text=True, capture_output=True, cwd=ROOT, **kw)


def inventory(tmp: Path, name: str) -> Path:
    path = tmp / "hosts.ini"
    path.write_text(
        f"[role_web]\n{name} ansible_connection=community.docker.docker_api\n"
        f"[role_memcached]\n{name}\n[product_hello]\n{name}\n")
    return path


def playbook(inv: Path, book: str) -> tuple[float, str]:
    extra = json.dumps({"hostkit_products": ["hello"], "hostkit_env": "sandbox"})
    args = [str(BIN / "ansible-playbook"), "-i", str(inv), book,
            "-e", "@inventory/sandbox/group_vars/all/products.yml", "-e", extra]
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
           "PATH": f"{BIN}:{os.environ['PATH']}"}
    t0 = time.perf_counter()
    proc = run(args, env=env)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{book} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}")
    return seconds, proc.stdout


def changed(output: str) -> int:
    return sum(int(m) for m in re.findall(r"changed=(\d+)", output.split("PLAY RECAP")[-1]))


def bench(image: str, reruns: int) -> tuple[float, list[float]]:
    with systemd_container(image, "hostkit-bench-web") as name, \
            tempfile.TemporaryDirectory() as tmp:
        inv = inventory(Path(tmp), name)
        playbook(inv, "roles/product/molecule/default/prepare.yml")
        first, _ = playbook(inv, "tests/bench/web_stack.yml")
        again = []
        for _ in range(reruns):
            seconds, out = playbook(inv, "tests/bench/web_stack.yml")
            if changed(out):
                raise SystemExit(f"re-run on {image} was not idempotent:\n{out[-3000:]}")
            again.append(seconds)
        return first, again


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--images", nargs="*", default=["hostkit/os:bookworm", "hostkit/web:latest"])
    p.add_argument("--runs", type=int, default=2, help="fresh containers per image")
    p.add_argument("--reruns", type=int, default=3, help="idempotent re-runs per container")
    args = p.parse_args()
    rows = []
    for image in args.images:
        firsts, reruns = [], []
        for _ in range(args.runs):
            first, again = bench(image, args.reruns)
            firsts.append(first)
            reruns += again
            print(f"{image}: first converge {first:.1f}s, re-runs "
                  f"{', '.join(f'{s:.1f}' for s in again)}s", flush=True)
        rows.append((image, firsts, reruns))
    print("\nimage                  first converge (median)   idempotent re-run (median)")
    for image, firsts, reruns in rows:
        print(f"{image:<22} {statistics.median(firsts):14.1f}s {statistics.median(reruns):24.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
