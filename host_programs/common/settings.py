"""The settings file of a host program: JSON, checked against the program's JSON Schema, then
turned into its frozen dataclass. One definition for the config agent, the failover watcher
and the backup program, and for their `--check-config` (which the roles run as the
`validate` command before a new settings file replaces the old one).

Each program declares:

- SCHEMA: a JSON Schema (draft 7, the newest that EL 9's python3-jsonschema 3.2 knows)
  with `additionalProperties: false`, so a misspelt setting is an error, not a silent
  default;
- a dataclass whose fields are the schema's properties (defaults in the dataclass);

and calls `load_settings(path, SCHEMA, TheDataclass)`. Every problem of the file is
reported at once, each with its place in the document (`fence.method: 'x' is not one of
...`). Python 3.9+, no Ansible imports.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any, Callable, TypeVar

try:
    import jsonschema
except ImportError as exc:  # reported when settings are read
    JSONSCHEMA_IMPORT_ERROR: ImportError | None = exc
else:
    JSONSCHEMA_IMPORT_ERROR = None

T = TypeVar("T")


class SettingsError(ValueError):
    """The settings file is missing, unreadable, not JSON or not valid; the message names
    the file and every problem."""


# Keywords about a whole object: their own message says what is wrong better than the
# description of the object would.
_OBJECT_KEYWORDS = frozenset({"required", "additionalProperties", "uniqueItems"})


def _place(error: Any) -> str:
    """Where in the document: `products[0].path`, or `(top level)`."""
    place = ""
    for part in error.absolute_path:
        place += f"[{part}]" if isinstance(part, int) else (f".{part}" if place else str(part))
    return place or "(top level)"


# JSON's names of the types of a value, for a value that is not shown.
_JSON_TYPES = ((bool, "boolean"), (int, "number"), (float, "number"), (str, "string"),
               (list, "array"), (Mapping, "object"), (type(None), "null"))


def _kind(value: Any) -> str:
    return next((name for kind, name in _JSON_TYPES if isinstance(value, kind)), "value")


def _message(error: Any) -> str:
    """jsonschema's message, or 'must be <description>, got <value>' where the schema of
    the value describes what it expects (a pattern or a range says little on its own).
    A value whose schema says `writeOnly: true` (a password) is never shown, only its type."""
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    description = schema.get("description")
    if error.validator in _OBJECT_KEYWORDS:
        return str(error.message)
    if schema.get("writeOnly"):
        return f"must be {description or 'valid'}, got a {_kind(error.instance)} (not shown)"
    if description:
        return f"must be {description}, got {error.instance!r}"
    return str(error.message)


def problems(data: Any, schema: Mapping[str, Any]) -> list[str]:
    """Every way `data` breaks `schema`, as 'place: message', in document order."""
    if JSONSCHEMA_IMPORT_ERROR is not None:
        raise SettingsError(f"the Python package jsonschema is required: "
                            f"{JSONSCHEMA_IMPORT_ERROR}")
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path])
    return [f"{_place(e)}: {_message(e)}" for e in errors]


def read_json(path: str) -> Any:
    """The parsed content of a JSON file; SettingsError naming the file and the line."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise SettingsError(f"{path}: no such file") from None
    except PermissionError:
        raise SettingsError(f"{path}: permission denied") from None
    except OSError as exc:
        raise SettingsError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise SettingsError(f"{path}: not UTF-8 text") from None
    except ValueError as exc:
        raise SettingsError(f"{path}: not JSON ({exc})") from None


def build(data: Any, schema: Mapping[str, Any], kind: type[T], source: str,
          convert: Callable[[dict], dict] | None = None) -> T:
    """`kind(**data)` once data passes the schema; SettingsError listing every problem.
    `convert` may adjust the checked values first (lists to tuples and the like)."""
    found = problems(data, schema)
    if found:
        raise SettingsError(f"{source}: " + "; ".join(found))
    fields = {f.name for f in dataclasses.fields(kind)}  # type: ignore[arg-type]
    values = {k: v for k, v in dict(data).items() if k in fields}
    if convert is not None:
        values = convert(values)
    return kind(**values)


def load_settings(path: str, schema: Mapping[str, Any], kind: type[T],
                  convert: Callable[[dict], dict] | None = None) -> T:
    """The settings in `path`, checked: SettingsError naming the file and every problem."""
    return build(read_json(path), schema, kind, path, convert)


def check_config(path: str, schema: Mapping[str, Any], kind: type[Any],
                 convert: Callable[[dict], dict] | None = None) -> tuple[int, str]:
    """What `PROGRAM --check-config` prints and returns: (0, 'PATH: settings are valid')
    or (1, the problems)."""
    try:
        load_settings(path, schema, kind, convert)
    except SettingsError as exc:
        return 1, str(exc)
    return 0, f"{path}: settings are valid"
