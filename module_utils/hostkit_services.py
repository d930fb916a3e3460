"""Several systemd units enabled and started in one pass.

The core of the `hostkit_services` module (library/hostkit_services.py). One
`systemctl show` reads the state of every unit; `systemctl enable` and `systemctl start`
then run once each, for the units that need it (nothing runs when all are as wanted). No
Ansible imports, so it is unit-testable as is; it runs on the managed host (Python 3.9 or
newer: EL 9).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

# Runs argv, returns (exit status, stdout, stderr).
Runner = Callable[[list[str]], tuple[int, str, str]]

# UnitFileState values for which `systemctl is-enabled` succeeds: nothing to enable.
ENABLED_STATES = frozenset({"enabled", "enabled-runtime", "static", "alias", "indirect",
                            "generated", "transient"})
# ActiveState values of a unit that runs or is on its way there.
STARTED_STATES = frozenset({"active", "activating", "reloading"})

# Capability numbers (linux/capability.h) a unit may need from the service manager.
CAPABILITIES = {name: bit for bit, name in enumerate((
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
    "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE"))}


class ServicesError(Exception):
    """A problem that stops the module; the message names the unit."""


@dataclass
class Service:
    name: str
    enabled: bool | None = None
    started: bool | None = None
    # started only when the service manager (PID 1) has this capability in its bounding set
    capability: str | None = None


@dataclass
class Plan:
    enable: list[str] = field(default_factory=list)
    disable: list[str] = field(default_factory=list)
    start: list[str] = field(default_factory=list)
    stop: list[str] = field(default_factory=list)
    # units not started because the service manager lacks their capability
    lacking: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.enable or self.disable or self.start or self.stop)


def parse_services(raw: Sequence[dict[str, Any]]) -> list[Service]:
    services = []
    for index, item in enumerate(raw):
        name = str(item.get("name") or "").strip()
        if not name or any(c.isspace() for c in name) or name.startswith("-"):
            raise ServicesError(f"services[{index}]: name must be a unit name, got {name!r}")
        state = item.get("state")
        if state not in (None, "started", "stopped"):
            raise ServicesError(f"services[{index}] ({name}): state must be started or stopped")
        enabled = item.get("enabled")
        capability = item.get("start_if_capability")
        if capability is not None:
            capability = str(capability).upper()
            capability = capability if capability.startswith("CAP_") else f"CAP_{capability}"
            if capability not in CAPABILITIES:
                raise ServicesError(f"services[{index}] ({name}): unknown capability "
                                    f"{item.get('start_if_capability')!r}")
        services.append(Service(name=name, enabled=None if enabled is None else bool(enabled),
                                started=None if state is None else state == "started",
                                capability=capability))
    return services


def bounding_set(proc_status: str) -> int:
    """The capability bounding set (CapBnd) of a /proc/<pid>/status text."""
    for line in proc_status.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "CapBnd":
            return int(value.strip(), 16)
    raise ServicesError("no CapBnd line in the service manager's /proc/1/status")


def without_capability(services: Sequence[Service], caps: int) -> list[Service]:
    """The services whose start needs a capability that `caps` (a bounding set) lacks."""
    return [s for s in services
            if s.capability and s.started and not caps >> CAPABILITIES[s.capability] & 1]


def parse_show(output: str) -> list[dict[str, str]]:
    """`systemctl show -p ... A B` output: one block of KEY=value lines per unit, in the
    order the units were named, blocks separated by an empty line."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in output.splitlines():
        if not line.strip():
            if current:
                blocks.append(current)
                current = {}
            continue
        key, _, value = line.partition("=")
        current[key.strip()] = value.strip()
    if current:
        blocks.append(current)
    return blocks


def read_states(services: Sequence[Service], run: Runner) -> list[dict[str, str]]:
    argv = ["systemctl", "show", "--property=Id,LoadState,UnitFileState,ActiveState", "--"]
    rc, out, err = run(argv + [s.name for s in services])
    if rc != 0:
        detail = err.strip() or out.strip()
        raise ServicesError(f"systemctl show failed (exit status {rc}): {detail}")
    states = parse_show(out)
    if len(states) != len(services):
        raise ServicesError(f"systemctl show answered for {len(states)} of {len(services)} units")
    return states


def plan(services: Sequence[Service], states: Sequence[dict[str, str]]) -> Plan:
    """What to do for each service, given its state (same order; one state per service)."""
    if len(states) != len(services):
        raise ServicesError(f"{len(states)} unit states for {len(services)} units")
    pairs = [(service, states[i]) for i, service in enumerate(services)]
    missing = [s.name for s, st in pairs if st.get("LoadState") == "not-found"]
    if missing:
        raise ServicesError(f"unit(s) not found on this host: {', '.join(missing)}")
    result = Plan()
    for service, state in pairs:
        enabled = state.get("UnitFileState", "") in ENABLED_STATES
        running = state.get("ActiveState", "") in STARTED_STATES
        if service.enabled is True and not enabled:
            result.enable.append(service.name)
        if service.enabled is False and enabled:
            result.disable.append(service.name)
        if service.started is True and not running:
            result.start.append(service.name)
        if service.started is False and running:
            result.stop.append(service.name)
    return result


def read_pid1_caps() -> int:
    with open("/proc/1/status", encoding="ascii", errors="replace") as status:
        return bounding_set(status.read())


def apply(services: Sequence[Service], run: Runner, check_mode: bool = False,
          daemon_reload: bool = False, pid1_caps: Callable[[], int] = read_pid1_caps) -> Plan:
    """Read the units' states, then enable/disable/start/stop what differs (each verb one
    systemctl call). A unit whose start needs a capability the service manager lacks is
    only enabled (Plan.lacking). With `daemon_reload`, systemd reads the unit files again
    first (not in check mode). Returns what was (or, in check mode, would be) done."""
    if daemon_reload and not check_mode:
        rc, out, err = run(["systemctl", "daemon-reload"])
        if rc != 0:
            raise ServicesError(f"systemctl daemon-reload failed (exit status {rc}): "
                                f"{err.strip() or out.strip()}")
    if not services:
        return Plan()
    lacking = without_capability(services, pid1_caps()) \
        if any(s.capability for s in services) else []
    services = [Service(s.name, s.enabled, None) if s in lacking else s for s in services]
    todo = plan(services, read_states(services, run))
    todo.lacking = [s.name for s in lacking]
    if check_mode:
        return todo
    for verb, names in (("enable", todo.enable), ("disable", todo.disable),
                        ("start", todo.start), ("stop", todo.stop)):
        if not names:
            continue
        rc, out, err = run(["systemctl", verb, "--"] + names)
        if rc != 0:
            raise ServicesError(f"systemctl {verb} {' '.join(names)} failed (exit status {rc}): "
                                f"{err.strip() or out.strip()}")
    return todo
