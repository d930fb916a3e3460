#!/usr/bin/env python3
"""Benchmark of the docker image builds: cold, warm and the hand-typed floor, per role.

- cold:  `python -m image_builders build ROLE --force` (parent image already there)
- warm:  `python -m image_builders build ROLE` with nothing changed ("up to date")
- floor: the same rendered commands typed by hand: `docker run` of the parent,
         one `docker exec` of all the steps' scripts, `docker commit`, `docker rm`

Prints medians (and all samples); asserts nothing about time.
Usage: tests/bench/bench_images.py [--roles web db] [--runs 3] [--warm-runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from image_builders.backends.docker import image_ref  # noqa: E402
from image_builders.catalog import load_catalog  # noqa: E402
from image_builders.recipe import OS_PARENT, known_roles, load_recipe  # noqa: E402


def timed(args: list[str], **kw: object) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, **kw)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        output = proc.stdout[-2000:] + proc.stderr[-2000:]
        raise SystemExit(f"{' '.join(args[:4])} failed:\n{output}")
    return seconds


def builder(*args: str) -> float:
    return timed([sys.executable, "-m", "image_builders", *args])


def floor(role: str) -> float:
    """The same work typed by hand, timed from `docker run` to `docker rm`."""
    recipe = load_recipe(role)
    parent = "hostkit/os:bookworm" if recipe.parent == OS_PARENT else image_ref(recipe.parent)
    script = "".join(s for _, s in recipe.rendered("Debian", load_catalog()))
    script = "printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d\n" \
             "chmod 0755 /usr/sbin/policy-rc.d\n" + script + "rm -f /usr/sbin/policy-rc.d\n"
    name = f"hostkit-floor-{role}-{uuid.uuid4().hex[:6]}"
    tag = f"hostkit-floor/{role}:bench"
    t0 = time.perf_counter()
    try:
        timed(["docker", "run", "-d", "--name", name, parent, "sleep", "infinity"])
        timed(["docker", "exec", "-i", name, "sh", "-eu"], input=script)
        timed(["docker", "commit", "--change", 'CMD ["/lib/systemd/systemd"]', name, tag])
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
    seconds = time.perf_counter() - t0
    subprocess.run(["docker", "rmi", tag], capture_output=True)
    return seconds


def summary(samples: list[float]) -> str:
    listed = ", ".join(f"{s:.1f}" for s in samples)
    return f"{statistics.median(samples):6.1f}s  (samples: {listed})"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--roles", nargs="*", default=known_roles())
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--warm-runs", type=int, default=5)
    args = p.parse_args()

    print("preparing: building every parent once (cached when unchanged)")
    builder("build", "base", *args.roles)
    rows = []
    for role in args.roles:
        cold, hand = [], []
        for _ in range(args.runs):  # interleaved so both see the same mirror and cache state
            hand.append(floor(role))
            cold.append(builder("build", role, "--force"))
        warm = [builder("build", role) for _ in range(args.warm_runs)]
        rows.append((role, cold, hand, warm))
        print(f"{role:<10} cold {summary(cold)}\n{'':<10} floor{summary(hand)}\n"
              f"{'':<10} warm {summary(warm)}", flush=True)
    print("\nrole        cold(s)  floor(s)  cold/floor  warm(s)")
    for role, cold, hand, warm in rows:
        c, f, w = (statistics.median(x) for x in (cold, hand, warm))
        print(f"{role:<10} {c:8.1f} {f:9.1f} {c / f:10.2f}x {w:8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
