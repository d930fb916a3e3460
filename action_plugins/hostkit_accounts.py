"""Action plugin of hostkit_accounts: reads the host's users and groups with one remote
command (getent passwd and group), then runs ansible.builtin.group and ansible.builtin.user only for
the entries that differ (plugin_utils/accounts.py). See library/hostkit_accounts.py for the
documentation; there is no module of that name to run on the host."""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from plugin_utils.accounts import READ_COMMAND, AccountsError, read_tables, to_change

ARGUMENT_SPEC: dict[str, Any] = dict(
    groups=dict(type="list", elements="dict", default=[], options=dict(
        name=dict(type="str", required=True),
        gid=dict(type="int"),
        system=dict(type="bool"),
    )),
    users=dict(type="list", elements="dict", default=[], options=dict(
        name=dict(type="str", required=True),
        group=dict(type="str"),
        groups=dict(type="list", elements="str"),
        append=dict(type="bool", default=False),
        system=dict(type="bool"),
        home=dict(type="str"),
        create_home=dict(type="bool"),
        shell=dict(type="str"),
        comment=dict(type="str"),
    )),
)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        _, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        try:
            passwd, group = read_tables(self._read_accounts())
            groups, users = to_change(args["groups"], args["users"], passwd, group)
        except AccountsError as exc:
            raise AnsibleActionFail(f"hostkit_accounts: {exc}") from exc
        done: dict[str, list[dict[str, Any]]] = {"groups": [], "users": []}
        for kind, module, todo in (("groups", "group", groups), ("users", "user", users)):
            for entry, why in todo:
                answer = self._execute_module(module_name=f"ansible.legacy.{module}",
                                              module_args=dict(entry, state="present"),
                                              task_vars=task_vars)
                if answer.get("failed"):
                    raise AnsibleActionFail(
                        f"hostkit_accounts: {module} {entry['name']} ({why}): "
                        f"{answer.get('msg', 'failed')}", result=answer)
                if answer.get("changed"):
                    done[kind].append({"name": entry["name"], "reason": why})
        result.update(changed=bool(done["groups"] or done["users"]), **done)
        return result

    def _read_accounts(self) -> str:
        """The output of READ_COMMAND, run through the connection as ansible.builtin.reboot
        reads a boot id: no module to send, and a read, so in check mode too."""
        answer = self._low_level_execute_command(READ_COMMAND, sudoable=True)
        if answer.get("rc"):
            raise AnsibleActionFail(
                "hostkit_accounts: reading the accounts with getent failed (rc "
                f"{answer.get('rc')}): {str(answer.get('stderr', '')).strip()}")
        return str(answer.get("stdout", ""))
