"""Benchmark: how long a change of the global config takes to reach the web servers.

Two web containers (hostkit/web, network `hostkit`) are converged with playbooks/web.yml,
config agent included, following a document of their own in the sandbox bucket
(tests/platform/agent_site.py). Then 20 times: the database master is swapped with a
conditional write (GlobalConfig.update: If-Match, epoch + 1), and a watcher inside each
container notes when its runtime.json changed (checked every 20 ms, so no `docker exec`
round trip is counted). Propagation = that moment minus the moment the write was
acknowledged. A random pause of up to one poll interval between changes samples every
phase of the agents' poll cycle.

Prints the figures (median, max, per server); asserts nothing about time. Target: median
under 3 s with the default 2 s interval.

    .venv/bin/python tests/bench/bench_config_propagation.py [--changes 20]
"""

from __future__ import annotations

import argparse
import json
import queue
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.platform.agent_site import Site, agent_site, swap_master  # noqa: E402


def follow(site: Site, name: str, events: queue.Queue[tuple[str, float, str]]) -> None:
    """Feed (container, time, digest) of every change the container's watcher sees."""
    watcher = site.watch(name)
    assert watcher.stdout is not None
    for line in watcher.stdout:
        seen, digest = line.split()
        events.put((name, float(seen), digest))


def wait_for_agents(site: Site) -> None:
    for name in site.containers:
        site.wait_for(name, "the agent's first good poll",
                      lambda n=name: site.state(n)["status"] == "ok", timeout=60)


def measure(site: Site, changes: int, interval: float) -> dict[str, list[float]]:
    events: queue.Queue[tuple[str, float, str]] = queue.Queue()
    for name in site.containers:
        threading.Thread(target=follow, args=(site, name, events), daemon=True).start()
    for _ in site.containers:  # each watcher's first line: the current file
        events.get(timeout=30)
    results: dict[str, list[float]] = {n: [] for n in site.containers}
    for i in range(changes):
        time.sleep(random.uniform(0, interval))
        result = site.store.update(swap_master, "bench_config_propagation")
        written = time.time()
        pending = set(site.containers)
        while pending:
            name, seen, _ = events.get(timeout=60)
            if name in pending:
                results[name].append(seen - written)
                pending.discard(name)
        print(f"  change {i + 1:2d} (epoch {result.epoch}): "
              + ", ".join(f"{n} {results[n][-1]:.2f}s" for n in site.containers), flush=True)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--changes", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hkagent-bench-") as work, \
            agent_site(2, Path(work), prefix="hkagent-bench") as site:
        started = time.monotonic()
        proc = site.converge("converge")
        if proc.returncode != 0:
            print((proc.stdout + proc.stderr)[-4000:], file=sys.stderr)
            return 1
        print(f"converged 2 web servers with the config agent in "
              f"{time.monotonic() - started:.0f}s")
        wait_for_agents(site)
        interval = float(site.state(site.containers[0])["interval"])
        results = measure(site, args.changes, interval)
        every = [v for values in results.values() for v in values]
        summary = {
            "changes": args.changes,
            "servers": len(site.containers),
            "poll_interval_s": interval,
            "median_s": round(statistics.median(every), 2),
            "max_s": round(max(every), 2),
            "min_s": round(min(every), 2),
            "per_server": {n: {"median_s": round(statistics.median(v), 2),
                               "max_s": round(max(v), 2)} for n, v in results.items()},
        }
        print(f"config propagation over {args.changes} changes x {len(site.containers)} "
              f"servers: median {summary['median_s']:.2f}s, max {summary['max_s']:.2f}s "
              f"(min {summary['min_s']:.2f}s; target: median under 3 s)")
        print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
