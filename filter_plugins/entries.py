"""Jinja filters that build entries of hostkit_files' lists (logic: plugin_utils/entries.py)."""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError

from plugin_utils.entries import EntryError, file_per_item


def hostkit_file_per_item(items: Any, path: str, template: str | None = None,
                          var: str = "item", **extra: Any) -> list[dict[str, Any]]:
    """One file entry per item, its path from the item's fields."""
    try:
        return file_per_item(list(items or []), path, template, var, **extra)
    except EntryError as exc:
        raise AnsibleFilterError(f"hostkit_file_per_item: {exc}") from None


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"hostkit_file_per_item": hostkit_file_per_item}
