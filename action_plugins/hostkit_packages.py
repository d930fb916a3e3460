"""Action plugin of hostkit_packages: packages present, with package lists that exist.

See library/hostkit_packages.py for the options. The work is done by the well-kept modules
(ansible.builtin.package_facts, find, apt and dnf); this plugin only decides, on the
controller, which of them must run:

1. the package facts (read once a run and shared by the roles) say which names are missing;
   when they list every name, nothing runs on the host at all;
2. the package lists are looked for on the host (a baked image has none: its hygiene step
   removes them); missing lists are fetched whatever the age of any cache file, present
   ones are refreshed only when older than ``lists_valid_time``;
3. the package manager installs the missing names, then the package facts are read again so
   that the roles after this one see them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

ARGUMENT_SPEC: dict[str, Any] = dict(
    name=dict(type="list", elements="str", required=True),
    lists_valid_time=dict(type="int", default=3600),
)

# Where each package manager keeps the package lists (metadata) that an install needs, and
# the file names that prove they are there. Debian: `apt-get update` writes one
# `<mirror>_<suite>_<component>_binary-<arch>_Packages` file per source (possibly
# compressed, `..._Packages.lz4`); EL: `dnf makecache` writes `<repo>-<id>/repodata/repomd.xml`.
LISTS = {
    "apt": dict(paths=["/var/lib/apt/lists"], patterns=["*_Packages", "*_Packages.*"],
                recurse=False),
    "dnf": dict(paths=["/var/cache/dnf"], patterns=["repomd.xml"], recurse=True),
}
# The facts' pkg_mgr values and the manager that serves them.
MANAGERS = {"apt": "apt", "dnf": "dnf", "dnf5": "dnf"}


def missing_packages(names: Sequence[str], installed: Mapping[str, Any] | None) -> list[str]:
    """The names the package facts do not list (every name when there are no facts)."""
    if installed is None:
        return list(dict.fromkeys(names))
    return [name for name in dict.fromkeys(names) if name not in installed]


def manager_of(pkg_mgr: str | None) -> str:
    """The package manager this plugin drives for the facts' ``pkg_mgr``, or an error."""
    if pkg_mgr in MANAGERS:
        return MANAGERS[pkg_mgr]
    raise AnsibleActionFail(
        f"hostkit_packages supports apt (Debian) and dnf (EL 9), not the package manager "
        f"{pkg_mgr!r} of this host (fact pkg_mgr; gather facts first)")


def install_args(manager: str, names: Iterable[str], lists_found: int,
                 lists_valid_time: int) -> dict[str, Any]:
    """Arguments of ansible.builtin.apt or ansible.builtin.dnf for an install of `names`.

    apt: with no lists at all the update always runs (cache_valid_time 0); with lists, only
    when they are older than `lists_valid_time`. dnf refreshes expired metadata by itself
    (metadata_expire); with none cached, `update_cache` makes the cache first, as
    `dnf makecache` would."""
    wanted = list(names)
    if manager == "apt":
        return dict(name=wanted, state="present", update_cache=True,
                    cache_valid_time=0 if lists_found == 0 else lists_valid_time)
    return dict(name=wanted, state="present", update_cache=lists_found == 0)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        _, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        facts = task_vars.get("ansible_facts") or {}
        manager = manager_of(facts.get("pkg_mgr"))
        installed = facts.get("packages")
        new_facts: dict[str, Any] = {}
        if installed is None:
            installed = self._read_packages(task_vars)
            if installed is not None:
                new_facts["packages"] = installed
        missing = missing_packages(args["name"], installed)
        result.update(changed=False, missing=missing, lists_refreshed=False)
        if missing:
            result.update(self._install(manager, missing, args["lists_valid_time"], task_vars))
            if not result.get("failed") and result.get("changed") and not self._task.check_mode:
                again = self._read_packages(task_vars)
                if again is not None:
                    new_facts["packages"] = again
        if new_facts:
            result["ansible_facts"] = new_facts
        return result

    def _module(self, name: str, module_args: dict[str, Any],
                task_vars: dict[str, Any]) -> dict[str, Any]:
        return self._execute_module(module_name=name, module_args=module_args,
                                    task_vars=task_vars)

    def _read_packages(self, task_vars: dict[str, Any]) -> dict[str, Any] | None:
        """The host's package facts, or None where they cannot be read (a Debian minbase
        without python3-apt, which apt installs together with the first package)."""
        read = self._module("ansible.builtin.package_facts", {"manager": ["auto"]}, task_vars)
        if read.get("failed"):
            return None
        return (read.get("ansible_facts") or {}).get("packages")

    def _install(self, manager: str, missing: list[str], lists_valid_time: int,
                 task_vars: dict[str, Any]) -> dict[str, Any]:
        found = self._module("ansible.builtin.find", dict(LISTS[manager], file_type="file"),
                             task_vars)
        if found.get("failed"):
            raise AnsibleActionFail(f"cannot look for the package lists on the host: "
                                    f"{found.get('msg', found)}")
        lists_found = int(found.get("matched", 0))
        if self._task.check_mode and manager == "apt" and lists_found == 0:
            # apt does not fetch lists in check mode, and without them it cannot even tell
            # whether the packages exist: report what a real run would do.
            return dict(changed=True, lists_refreshed=True,
                        msg=f"would fetch the package lists and install {', '.join(missing)}")
        module_args = install_args(manager, missing, lists_found, lists_valid_time)
        done = self._module(f"ansible.builtin.{manager}", module_args, task_vars)
        if done.get("failed"):
            done["msg"] = (f"installing {', '.join(missing)} with {manager} failed: "
                           f"{done.get('msg', '')}").rstrip(": ")
        done["lists_refreshed"] = bool(done.get("cache_updated")) or (
            manager == "dnf" and lists_found == 0 and not done.get("failed"))
        done.setdefault("changed", False)
        return done
