"""Checks the roles share: each returns a list of messages (empty: fine) naming the variable
and what it was given. Values come from Ansible, so numbers may arrive as strings ("3306")
and must still count as whole numbers when they are written as one."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from typing import Any

_WHOLE = re.compile(r"^[0-9]+$")


def _limits(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f" from {low} to {high}"
    if low is not None:
        return f" >= {low}"
    if high is not None:
        return f" <= {high}"
    return ""


def _amount_problems(settings: Mapping[str, Any], name: str, pattern: re.Pattern[str],
                     low: float | None, high: float | None, what: str,
                     strip: bool = False) -> list[str]:
    """settings[name] written as `pattern` (its text; booleans never match), and its value
    within [low, high]; `what` says what is expected (the limits are added)."""
    value = settings.get(name)
    text = "" if isinstance(value, bool) else str(value)
    text = text.strip() if strip else text
    expected = f"{what}{_limits(low, high)}"
    if not pattern.match(text):
        return [f"{name} must be {expected}, got {value!r}"]
    amount = float(text)
    if (low is not None and amount < low) or (high is not None and amount > high):
        return [f"{name} must be {expected}, got {value!r}"]
    return []


def _unit(kind: str, unit: str) -> str:
    return f"{kind}{' of ' + unit if unit else ''}"


def whole_number(settings: Mapping[str, Any], name: str, low: int | None = None,
                 high: int | None = None, unit: str = "") -> list[str]:
    """settings[name] is a whole number (an int, or a string of digits, blanks around
    them allowed) within [low, high]."""
    return _amount_problems(settings, name, _WHOLE, low, high, _unit("a whole number", unit),
                            strip=True)


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


# --- appended for config_agent, failover_watcher, mysql_backup ------------------------------

# A number as the roles have always written it: digits, optionally a decimal part (0.5, 30).
# Matched like Jinja's `match` test (re.match), so "30" and 30 and 0.5 pass, "1e3" does not.
_DECIMAL = re.compile(r"^[0-9]+(\.[0-9]+)?$")
_HTTP_URL = re.compile(r"^https?://[^/\s]+")
# Characters an environment file's value must not hold (systemd EnvironmentFile quoting).
_ENVIRONMENT_UNSAFE = re.compile(r'[\s"\\]')


def number(settings: Mapping[str, Any], name: str, low: float | None = None,
           high: float | None = None, unit: str = "") -> list[str]:
    """settings[name] is a number in digits with an optional decimal part (2, '0.5'),
    within [low, high]. Booleans and exponents ('1e3') are not numbers here."""
    return _amount_problems(settings, name, _DECIMAL, low, high, _unit("a number", unit))


def not_empty(settings: Mapping[str, Any], name: str, why: str = "",
              falsy_is_empty: bool = True) -> list[str]:
    """settings[name] is set: not blank. With falsy_is_empty (Jinja's `default('', true)`)
    None, false, 0 and empty collections count as empty too; without it only a value whose
    text is blank does (None is the text 'None')."""
    value = settings.get(name)
    if (falsy_is_empty and not value) or not str(value).strip():
        return [f"{name} is empty{why}"]
    return []


def http_url_or_empty(settings: Mapping[str, Any], name: str) -> list[str]:
    """settings[name] is empty (or unset) or starts with http(s)://host."""
    value = settings.get(name)
    if value and not _HTTP_URL.match(str(value)):
        return [f"{name} must be an http(s) URL or empty, got {value!r}"]
    return []


def is_collection(value: Any) -> bool:
    """Iterable and not a string (Jinja: `is iterable and is not string`)."""
    if isinstance(value, str):
        return False
    try:
        iter(value)
    except TypeError:
        return False
    return True


def environment(settings: Mapping[str, Any], name: str, allowed: Iterable[str]) -> list[str]:
    """settings[name] maps environment variable names of `allowed` to values an
    EnvironmentFile can hold (no whitespace, quotes or backslashes). Values may be secrets:
    messages name the variable and the key, never the value."""
    value = settings.get(name)
    names = list(allowed)
    if not isinstance(value, Mapping):
        return [f"{name} must be a mapping of environment variables, "
                f"got a {type(value).__name__}"]
    found = [f"{name}: {key!r} is not one of {', '.join(names)}"
             for key in value if key not in names]
    found += [f"{name}: the value of {key} has spaces, quotes or backslashes"
              for key in value if _ENVIRONMENT_UNSAFE.search(str(value[key]))]
    return found


# --- appended for apache, php, mysql, product -----------------------------------------------
# These read values as the Jinja tests the roles' checks were written in did, so that the
# same settings pass: `x | string is match(...)` (re.match on the text), `x | int`, and loops
# over whatever a Jinja `for` iterates.


def jinja_items(value: Any) -> list[Any] | None:
    """What a Jinja loop over `value` visits: list items, a mapping's keys, a string's
    characters; None when it cannot be looped over (the old check then failed to render)."""
    if value is None:
        return None
    try:
        return list(value)
    except TypeError:
        return None


def jinja_int(value: Any) -> int:
    """`value | int` of Jinja: '42' and 42.7 are 42, text that is no number is 0."""
    try:
        return int(value, 10) if isinstance(value, str) else int(value)
    except (TypeError, ValueError):
        try:
            return int(float(value))
        except (TypeError, ValueError, OverflowError):
            return 0


def whole_number_as_written(settings: Mapping[str, Any], name: str, low: int | None = None,
                            high: int | None = None, unit: str = "") -> list[str]:
    """settings[name] is a whole number within [low, high] whose text is digits only: the
    Jinja test `value | string is match('^[0-9]+$')`. Unlike whole_number, blanks around the
    digits are refused (one trailing line break passes, as `$` lets it)."""
    return _amount_problems(settings, name, _WHOLE, low, high, _unit("a whole number", unit))


def int_at_least(settings: Mapping[str, Any], name: str, low: int) -> list[str]:
    """`settings[name] | int >= low`, as Jinja reads it ('7' is 7, '2.9' is 2, 'x' is 0).
    What is no whole number at all is for the role's argument spec to refuse."""
    value = settings.get(name)
    if jinja_int(value) < low:
        return [f"{name} must be a whole number >= {low}, got {value!r}"]
    return []


def each_matches(settings: Mapping[str, Any], name: str, pattern: str, what: str,
                 falsy_is_empty: bool = False) -> list[str]:
    """Every item of settings[name] (as a Jinja loop visits them) matches `pattern` from its
    start, as text (Jinja's `match` test); one message per item that does not. With
    falsy_is_empty (Jinja's `select`/`reject` filters) None, false and 0 have no items."""
    value = settings.get(name)
    items = [] if falsy_is_empty and not value else jinja_items(value)
    if items is None:
        return [f"{name} must be a list, got {value!r}"]
    regex = re.compile(pattern)
    return [f"{name}: {item!r} is not {what}" for item in items if not regex.match(str(item))]
