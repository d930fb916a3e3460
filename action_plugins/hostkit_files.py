"""Action plugin of hostkit_files: renders the entries' templates (and reads their role
files) on the controller, then runs the module once with every entry's content.

See library/hostkit_files.py for the options. Templates are rendered with the
ansible.builtin.template lookup (the same search path, `ansible_managed` and template
variables as the template module), each with the task's variables plus the entry's `vars`.
Entries are read first as plugin_utils/entries.py says: a list among them stands for its
entries, and each entry's `when` and `tags` keep or drop it (neither reaches the module);
the same for `purge`.
"""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleActionFail, AnsibleError
from ansible.plugins.action import ActionBase

from plugin_utils.entries import EntryError, select_entries

# What the action plugin accepts; the module gets the same minus template/src/vars.
ENTRY_OPTIONS: dict[str, Any] = dict(
    path=dict(type="str", required=True),
    state=dict(type="str", choices=["file", "directory", "link", "absent"], default="file"),
    template=dict(type="str"),
    src=dict(type="str"),
    content=dict(type="str"),
    vars=dict(type="dict"),
    target=dict(type="str"),
    owner=dict(type="str"),
    group=dict(type="str"),
    mode=dict(type="raw"),
    validate=dict(type="str"),
    force=dict(type="bool", default=True),
)
ARGUMENT_SPEC: dict[str, Any] = dict(
    files=dict(type="list", elements="dict", required=True, options=ENTRY_OPTIONS),
    purge=dict(type="list", elements="dict", default=[], options=dict(
        path=dict(type="str", required=True),
        patterns=dict(type="list", elements="str", required=True),
    )),
    require=dict(type="list", elements="dict", default=[], options=dict(
        path=dict(type="str", required=True),
        search=dict(type="str"),
        msg=dict(type="str"),
    )),
    validate_set=dict(type="dict", options=dict(
        command=dict(type="str", required=True),
        under=dict(type="str", required=True),
    )),
)
SOURCES = ("template", "src", "content")


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        try:
            for option in ("files", "purge"):
                if option in self._task.args:
                    self._task.args[option] = select_entries(
                        self._task.args[option], task_vars.get("ansible_run_tags"),
                        task_vars.get("ansible_skip_tags"), option)
        except EntryError as exc:
            raise AnsibleActionFail(str(exc)) from exc
        _, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        files = [self._entry(index, entry, task_vars) for index, entry in enumerate(args["files"])]
        module_args = dict(files=files, purge=args["purge"], require=args["require"])
        if args.get("validate_set"):
            module_args["validate_set"] = args["validate_set"]
        result.update(self._execute_module(module_name="ansible.legacy.hostkit_files",
                                           module_args=module_args, task_vars=task_vars))
        return result

    def _entry(self, index: int, entry: dict[str, Any],
               task_vars: dict[str, Any]) -> dict[str, Any]:
        where = f"files[{index}] ({entry.get('path')})"
        given = [key for key in SOURCES if entry.get(key) is not None]
        if len(given) > 1:
            raise AnsibleActionFail(f"{where}: give only one of {', '.join(given)}")
        if entry.get("vars") is not None and entry.get("template") is None:
            raise AnsibleActionFail(f"{where}: vars are for a template")
        out = {k: v for k, v in entry.items()
               if k not in ("template", "src", "vars") and v is not None}
        if entry.get("template") is not None:
            out["content"] = self._render(where, entry["template"], entry.get("vars") or {},
                                          task_vars)
        elif entry.get("src") is not None:
            out["content"] = self._read(where, entry["src"])
        return out

    def _render(self, where: str, template: str, extra: dict[str, Any],
                task_vars: dict[str, Any]) -> str:
        lookup = self._shared_loader_obj.lookup_loader.get(
            "ansible.builtin.template", loader=self._loader, templar=self._templar)
        try:
            rendered = lookup.run([template], variables=task_vars, template_vars=extra)[0]
        except AnsibleError as exc:
            raise AnsibleActionFail(f"{where}: template {template}: {exc}") from exc
        return "" if rendered is None else str(rendered)

    def _read(self, where: str, src: str) -> str:
        try:
            path = self._find_needle("files", src)
            return self._loader.get_text_file_contents(path)
        except AnsibleError as exc:
            raise AnsibleActionFail(f"{where}: file {src}: {exc}") from exc
