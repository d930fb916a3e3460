"""module_utils/hostkit_services.py: several systemd units enabled and started in one pass."""

from __future__ import annotations

import pytest

from module_utils.hostkit_services import (
    CAPABILITIES,
    ServicesError,
    apply,
    bounding_set,
    parse_services,
    parse_show,
)


def show(*units: tuple[str, str, str, str]) -> str:
    return "\n".join(f"Id={i}\nLoadState={load}\nActiveState={active}\nUnitFileState={state}\n"
                     for i, load, active, state in units)


class FakeSystemctl:
    """Answers `systemctl show` from a table and records the other calls."""

    def __init__(self, units: dict[str, tuple[str, str, str]], fail: str = "") -> None:
        self.units, self.fail = units, fail
        self.calls: list[list[str]] = []

    def __call__(self, argv: list[str]) -> tuple[int, str, str]:
        self.calls.append(argv)
        verb = argv[1]
        names = argv[argv.index("--") + 1:]
        if verb == "show":
            return 0, show(*((n + ".service",) + self.units.get(n, ("not-found", "inactive", ""))
                             for n in names)), ""
        if verb == self.fail:
            return 1, "", f"Failed to {verb} unit."
        return 0, "", ""


def services(*items: dict) -> list:
    return parse_services(list(items))


def test_nothing_runs_when_every_unit_is_as_wanted() -> None:
    fake = FakeSystemctl({"cron": ("loaded", "active", "enabled"),
                          "ssh": ("loaded", "reloading", "enabled"),
                          "chrony": ("loaded", "inactive", "enabled"),
                          "dbus": ("loaded", "active", "static")})
    done = apply(services({"name": "cron", "enabled": True, "state": "started"},
                          {"name": "ssh", "enabled": True, "state": "started"},
                          {"name": "chrony", "enabled": True},
                          {"name": "dbus", "enabled": True, "state": "started"}), fake)
    assert not done.changed
    assert [c[1] for c in fake.calls] == ["show"]  # one call reads them all


def test_enables_and_starts_only_what_differs_one_call_per_verb() -> None:
    fake = FakeSystemctl({"apache2": ("loaded", "inactive", "disabled"),
                          "php8.2-fpm": ("loaded", "failed", "enabled"),
                          "memcached": ("loaded", "active", "disabled"),
                          "old": ("loaded", "active", "enabled")})
    done = apply(services({"name": "apache2", "enabled": True, "state": "started"},
                          {"name": "php8.2-fpm", "enabled": True, "state": "started"},
                          {"name": "memcached", "enabled": True},
                          {"name": "old", "enabled": False, "state": "stopped"}), fake)
    assert done.enable == ["apache2", "memcached"]
    assert done.start == ["apache2", "php8.2-fpm"]
    assert done.disable == ["old"] and done.stop == ["old"]
    assert fake.calls[1:] == [["systemctl", "enable", "--", "apache2", "memcached"],
                              ["systemctl", "disable", "--", "old"],
                              ["systemctl", "start", "--", "apache2", "php8.2-fpm"],
                              ["systemctl", "stop", "--", "old"]]


def test_check_mode_only_reads() -> None:
    fake = FakeSystemctl({"apache2": ("loaded", "inactive", "disabled")})
    done = apply(services({"name": "apache2", "enabled": True, "state": "started"}), fake,
                 check_mode=True)
    assert done.changed and done.enable == ["apache2"] and done.start == ["apache2"]
    assert [c[1] for c in fake.calls] == ["show"]


def test_unknown_units_are_named_before_anything_changes() -> None:
    fake = FakeSystemctl({"cron": ("loaded", "inactive", "disabled")})
    with pytest.raises(ServicesError, match="not found on this host: nosuch, other"):
        apply(services({"name": "cron", "enabled": True}, {"name": "nosuch", "enabled": True},
                       {"name": "other", "state": "started"}), fake)
    assert [c[1] for c in fake.calls] == ["show"]


def test_a_failing_verb_is_reported() -> None:
    fake = FakeSystemctl({"apache2": ("loaded", "inactive", "enabled")}, fail="start")
    with pytest.raises(ServicesError, match=r"systemctl start apache2 failed \(exit status 1\)"):
        apply(services({"name": "apache2", "state": "started"}), fake)


def test_show_output_blocks_in_order() -> None:
    out = show(("a.service", "loaded", "active", "enabled"),
               ("b.service", "not-found", "inactive", ""))
    assert parse_show(out) == [
        {"Id": "a.service", "LoadState": "loaded", "ActiveState": "active",
         "UnitFileState": "enabled"},
        {"Id": "b.service", "LoadState": "not-found", "ActiveState": "inactive",
         "UnitFileState": ""},
    ]


@pytest.mark.parametrize("item, message", [
    ({"name": ""}, "must be a unit name"),
    ({"name": "two words"}, "must be a unit name"),
    ({"name": "--now"}, "must be a unit name"),
    ({"name": "cron", "state": "restarted"}, "state must be started or stopped"),
])
def test_bad_services_are_named(item: dict, message: str) -> None:
    with pytest.raises(ServicesError, match=message):
        parse_services([item])


def test_no_services_no_calls() -> None:
    fake = FakeSystemctl({})
    assert not apply([], fake).changed
    assert fake.calls == []


def test_daemon_reload_runs_first_and_not_in_check_mode() -> None:
    calls: list[list[str]] = []

    def run(argv: list[str]) -> tuple[int, str, str]:
        calls.append(argv)
        return 0, ("Id=cron.service\nLoadState=loaded\nUnitFileState=enabled\n"
                   "ActiveState=active\n"), ""

    services = parse_services([{"name": "cron", "enabled": True, "state": "started"}])
    apply(services, run, daemon_reload=True)
    assert calls[0] == ["systemctl", "daemon-reload"] and calls[1][:2] == ["systemctl", "show"]
    calls.clear()
    apply(services, run, check_mode=True, daemon_reload=True)
    assert all(c[1] != "daemon-reload" for c in calls)


def test_a_failing_daemon_reload_stops_before_anything_else() -> None:
    def run(argv: list[str]) -> tuple[int, str, str]:
        return (1, "", "Access denied") if argv[1] == "daemon-reload" else (0, "", "")

    with pytest.raises(ServicesError, match="daemon-reload failed .*Access denied"):
        apply(parse_services([{"name": "cron", "state": "started"}]), run, daemon_reload=True)


STATUS_NO_SYS_TIME = "Name:\tsystemd\nCapInh:\t0000000000000000\nCapBnd:\t00000000a80425fb\n"


def test_bounding_set_and_the_capability_table() -> None:
    caps = bounding_set(STATUS_NO_SYS_TIME)
    assert caps == 0xA80425FB and not caps >> CAPABILITIES["CAP_SYS_TIME"] & 1
    assert CAPABILITIES["CAP_SYS_TIME"] == 25 and CAPABILITIES["CAP_CHOWN"] == 0
    with pytest.raises(ServicesError, match="no CapBnd"):
        bounding_set("Name:\tsystemd\n")


def test_a_unit_whose_capability_is_missing_is_only_enabled() -> None:
    calls: list[list[str]] = []

    def run(argv: list[str]) -> tuple[int, str, str]:
        calls.append(argv)
        return 0, ("Id=chrony.service\nLoadState=loaded\nUnitFileState=disabled\n"
                   "ActiveState=inactive\n\nId=cron.service\nLoadState=loaded\n"
                   "UnitFileState=enabled\nActiveState=inactive\n"), ""

    services = parse_services([
        {"name": "chrony", "enabled": True, "state": "started", "start_if_capability": "sys_time"},
        {"name": "cron", "enabled": True, "state": "started"}])
    done = apply(services, run, pid1_caps=lambda: 0xA80425FB)
    assert done.lacking == ["chrony"] and done.enable == ["chrony"] and done.start == ["cron"]
    assert ["systemctl", "start", "--", "cron"] in calls
    with_time = apply(services, run, pid1_caps=lambda: 0xA80425FB | 1 << 25)
    assert with_time.lacking == [] and with_time.start == ["chrony", "cron"]


def test_unknown_capability_is_named() -> None:
    with pytest.raises(ServicesError, match="chrony.*unknown capability 'CAP_TIME_TRAVEL'"):
        parse_services([{"name": "chrony", "state": "started",
                         "start_if_capability": "CAP_TIME_TRAVEL"}])


def test_no_capability_asked_no_proc_read() -> None:
    def run(argv: list[str]) -> tuple[int, str, str]:
        return 0, ("Id=cron.service\nLoadState=loaded\nUnitFileState=enabled\n"
                   "ActiveState=active\n"), ""

    def fail() -> int:
        raise AssertionError("/proc/1/status read without need")

    services = parse_services([{"name": "cron", "state": "started"}])
    assert apply(services, run, pid1_caps=fail).lacking == []
