"""Jinja filters over the inventory, so that templates and defaults stay free of logic."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def _get(mapping: Any, key: str) -> Any:
    try:
        return mapping[key]
    except (KeyError, TypeError):
        return None


def hostkit_addresses(hosts: Iterable[str] | None, hostvars: Mapping[str, Any]) -> list[str]:
    """The address of each host: its default IPv4 address when its facts are known, else
    its ansible_host, else its inventory name. Order kept, repeats dropped."""
    out: dict[str, None] = {}
    for host in hosts or []:
        hv = _get(hostvars, host) or {}
        facts = _get(hv, "ansible_facts") or {}
        address = _get(_get(facts, "default_ipv4") or {}, "address")
        out.setdefault(str(address or _get(hv, "ansible_host") or host), None)
    return list(out)


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"hostkit_addresses": hostkit_addresses}
