"""Action plugin of hostkit_services: reads the entries as plugin_utils/entries.py says (a
list among them stands for its entries; each entry's `when` and `tags` keep or drop it),
then runs the module once with the units that remain. See library/hostkit_services.py."""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from plugin_utils.entries import EntryError, select_entries


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        try:
            args["services"] = select_entries(
                args.get("services"), task_vars.get("ansible_run_tags"),
                task_vars.get("ansible_skip_tags"), "services")
        except EntryError as exc:
            raise AnsibleActionFail(str(exc)) from exc
        result.update(self._execute_module(module_name="ansible.legacy.hostkit_services",
                                           module_args=args, task_vars=task_vars))
        return result
