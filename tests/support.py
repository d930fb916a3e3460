"""Helpers shared by the platform tests and the benchmarks: systemd containers of the
role images, started with the flags this machine allows (no --privileged)."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

SYSTEMD_RUN_FLAGS = [
    "--cap-add", "SYS_ADMIN", "--cap-add", "NET_ADMIN",
    "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
    "--cgroupns=host", "--tmpfs", "/run", "--tmpfs", "/run/lock",
    "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "--stop-signal", "SIGRTMIN+3",
]


def docker(*args: str, check: bool = True, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], text=True, capture_output=True, check=check, **kw)


def wait_for_systemd(name: str, timeout: float = 60) -> str:
    """Wait until systemd in the container is up; return its state or raise."""
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        state = docker("exec", name, "systemctl", "is-system-running", check=False).stdout.strip()
        if state in ("running", "degraded"):
            return state
        time.sleep(0.5)
    raise RuntimeError(f"systemd did not come up in {name} within {timeout:.0f}s: {state!r}")


@contextmanager
def systemd_container(image: str, prefix: str, extra: Sequence[str] = (),
                      wait: bool = True) -> Iterator[str]:
    """A systemd container of `image` named `<prefix>-<random>` (also its host name),
    removed on exit whatever happened."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    docker("run", "-d", "--name", name, "--hostname", name, *extra, *SYSTEMD_RUN_FLAGS, image,
           "/lib/systemd/systemd")
    try:
        if wait:
            wait_for_systemd(name)
        yield name
    finally:
        docker("rm", "-f", name, check=False)
