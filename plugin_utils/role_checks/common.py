"""Checks the roles share: each returns a list of messages (empty: fine) naming the variable
and what it was given. Values come from Ansible, so numbers may arrive as strings ("3306")
and must still count as whole numbers when they are written as one."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from typing import Any

_WHOLE = re.compile(r"^[0-9]+$")


def whole_number(settings: Mapping[str, Any], name: str, low: int | None = None,
                 high: int | None = None, unit: str = "") -> list[str]:
    """settings[name] is a whole number (an int, or a string of digits) within [low, high]."""
    value = settings.get(name)
    text = str(value).strip() if not isinstance(value, bool) else ""
    what = f"a whole number{' of ' + unit if unit else ''}"
    if low is not None and high is not None:
        what += f" from {low} to {high}"
    elif low is not None:
        what += f" >= {low}"
    elif high is not None:
        what += f" <= {high}"
    if not _WHOLE.match(text):
        return [f"{name} must be {what}, got {value!r}"]
    number = int(text)
    if (low is not None and number < low) or (high is not None and number > high):
        return [f"{name} must be {what}, got {value!r}"]
    return []


def port(settings: Mapping[str, Any], name: str) -> list[str]:
    return whole_number(settings, name, 1, 65535)


def one_of(settings: Mapping[str, Any], name: str, choices: Iterable[Any]) -> list[str]:
    allowed = list(choices)
    value = settings.get(name)
    if value not in allowed:
        return [f"{name} must be one of {', '.join(map(str, allowed))}, got {value!r}"]
    return []


def is_list(value: Any) -> bool:
    """A list-like value of Ansible (a list or tuple, never a string or a mapping)."""
    return isinstance(value, (list, tuple))


def string_list(settings: Mapping[str, Any], name: str) -> list[str]:
    value = settings.get(name)
    if not is_list(value) or not all(isinstance(item, str) for item in value):
        return [f"{name} must be a list of strings, got {value!r}"]
    return []


def absolute_path(settings: Mapping[str, Any], name: str) -> list[str]:
    value = settings.get(name)
    if not isinstance(value, str) or not value.startswith("/"):
        return [f"{name} must be an absolute path, got {value!r}"]
    return []


def address_or_network(value: Any) -> bool:
    """An IPv4/IPv6 address or CIDR (host bits allowed: 10.0.0.5/24)."""
    if not isinstance(value, str) or not value.strip():
        return False
    try:
        ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        return False
    return True


def address_list(settings: Mapping[str, Any], name: str) -> list[str]:
    """settings[name] is a list of IPv4/IPv6 addresses or CIDRs; one message per bad item."""
    value = settings.get(name)
    if not is_list(value):
        return [f"{name} must be a list of addresses or CIDRs, got {value!r}"]
    return [f"{name}: {item!r} is not an IPv4/IPv6 address or CIDR"
            for item in value if not address_or_network(item)]


def listen_address(settings: Mapping[str, Any], name: str,
                   host_addresses: Iterable[str]) -> list[str]:
    """settings[name] is one private address of this host (not a wildcard)."""
    value = str(settings.get(name) or "").strip()
    known = [str(a) for a in host_addresses]
    if not value:
        return [f"{name} is empty (the host has no default IPv4 address: set it)"]
    if value in ("0.0.0.0", "::", "[::]"):
        return [f"{name} {value} listens on every interface; give the private address"]
    if value not in known:
        return [f"{name} {value} is not an address of this host ({', '.join(known)})"]
    return []
