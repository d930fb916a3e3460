"""The entries of a list option that a role writes out in its tasks (hostkit_files' `files`,
hostkit_services' `services`), as the action plugins read them before the module runs.

- An entry is a mapping. A list among the entries stands for its own entries (mappings), so
  that a task can write its fixed entries out and add the ones a tested filter computes
  (one per product, say) in the same list.
- `when` (a boolean, true when left out) keeps or drops the entry, like a task's `when`.
- `tags` (a list of tag names) keeps the entry only when a task with those tags would run
  under the play's --tags and --skip-tags, so that one call can do the work of several
  tagged steps and `--tags common_ssh` still writes only the sshd drop-in. An entry without
  tags runs whenever its task runs.

Neither key reaches the module. Plain Python, no Ansible imports.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


class EntryError(ValueError):
    """An entry that is not a mapping, or a `when` or `tags` of the wrong kind."""


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


def flattened(entries: Any, option: str) -> list[Mapping[str, Any]]:
    """The entries, each list among them replaced by its own entries."""
    if not isinstance(entries, list):
        raise EntryError(f"{option} must be a list of mappings, got {type(entries).__name__}")
    out: list[Mapping[str, Any]] = []
    for index, entry in enumerate(entries):
        inner = entry if isinstance(entry, list) else [entry]
        for item in inner:
            if not isinstance(item, Mapping):
                raise EntryError(f"{option}[{index}]: an entry must be a mapping (or a list of "
                                 f"mappings), got {type(item).__name__}: {item!r}")
            out.append(item)
    return out


def _kept(entry: Mapping[str, Any], where: str, run_tags: Iterable[str],
          skip_tags: Iterable[str]) -> bool:
    when = entry.get("when", True)
    if not isinstance(when, bool):
        raise EntryError(f"{where}: when must be true or false, got {when!r}")
    tags = entry.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise EntryError(f"{where}: tags must be a list of tag names, got {tags!r}")
    return when and (not tags or selected(tags, run_tags, skip_tags))


def select_entries(entries: Any, run_tags: Iterable[str] | None,
                   skip_tags: Iterable[str] | None, option: str) -> list[dict[str, Any]]:
    """The entries that run, in order, without their `when` and `tags`."""
    out = []
    for index, entry in enumerate(flattened(entries, option)):
        where = f"{option}[{index}] ({entry.get('path') or entry.get('name') or '?'})"
        if _kept(entry, where, run_tags or [], skip_tags or []):
            out.append({k: v for k, v in entry.items() if k not in ("when", "tags")})
    return out


# The keywords of file_per_item that take the item's fields, as `path` does.
FORMATTED = ("owner", "group", "target")


def file_per_item(items: Any, path: str, template: str | None = None, var: str = "item",
                  **extra: Any) -> list[dict[str, Any]]:
    """One hostkit_files entry per item (a product, say): `path` (and `owner`, `group`,
    `target` among `extra`) with the item's fields put in (`{name}`), rendered from
    `template` with the item as `var` (no template: a directory, a link, a removal, as
    `extra` says); every other keyword of `extra` (mode, tags ...) added as it is."""
    if not isinstance(items, list) or not all(isinstance(i, Mapping) for i in items):
        raise EntryError("file_per_item expects a list of mappings")
    out = []
    for index, item in enumerate(items):
        entry: dict[str, Any] = {}
        for key, value in {"path": path, **extra}.items():
            formatted = key == "path" or (key in FORMATTED and isinstance(value, str))
            try:
                entry[key] = value.format_map(item) if formatted else value
            except (KeyError, IndexError, ValueError) as exc:
                raise EntryError(f"item {index}: {key} {value!r} names a field it lacks: "
                                 f"{exc}") from None
        if template:
            entry.update(template=template, vars={var: item})
        out.append(entry)
    return out
