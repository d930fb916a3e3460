"""Jinja filter hostkit_tagged: the entries of a list that run under --tags/--skip-tags.

Roles that do the work of several tagged steps in one task (one hostkit_files call for
all the role's files, one hostkit_services call for all its units) tag each entry with
the step it belongs to; this filter keeps the entries whose step would run, so that
`--tags common_ssh` still writes only the sshd drop-in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ansible.errors import AnsibleFilterError


def selected(tags: Iterable[str], run_tags: Iterable[str], skip_tags: Iterable[str]) -> bool:
    """Whether a task with `tags` runs, as Ansible decides it for --tags and --skip-tags
    (special tags: all, tagged, always, never)."""
    tags, run, skip = set(tags), set(run_tags or ["all"]), set(skip_tags or [])
    if "always" in tags and "always" not in skip:
        return True
    runs = bool(tags & run) or ("tagged" in run and bool(tags)) or (
        "all" in run and "never" not in tags)
    skipped = bool(tags & skip) or ("tagged" in skip and bool(tags)) or "all" in skip
    return runs and not skipped


def hostkit_tagged(entries: Any, run_tags: Any = None, skip_tags: Any = None) -> list[Any]:
    """The entries (mappings with a `tags` list) whose tags run, without their `tags` key."""
    if not isinstance(entries, Iterable) or isinstance(entries, (str, Mapping)):
        raise AnsibleFilterError("hostkit_tagged expects a list of mappings with a 'tags' list")
    out = []
    for entry in entries:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("tags"), list):
            raise AnsibleFilterError(f"hostkit_tagged: entry without a 'tags' list: {entry!r}")
        if selected(entry["tags"], run_tags or [], skip_tags or []):
            out.append({k: v for k, v in entry.items() if k != "tags"})
    return out


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"hostkit_tagged": hostkit_tagged}
