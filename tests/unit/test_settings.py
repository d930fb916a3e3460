"""host_programs/common/settings.py: a host program's settings file, checked with jsonschema."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from host_programs.common import settings

SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "port": {"type": "integer", "minimum": 1, "maximum": 65535,
                 "description": "a port number 1-65535"},
        "items": {"type": "array", "items": {"type": "object", "required": ["path"],
                                             "properties": {"path": {"type": "string"}}}},
    },
}


@dataclass(frozen=True)
class Example:
    name: str
    port: int = 80
    items: tuple = ()


def test_good_settings_become_the_dataclass_with_its_defaults() -> None:
    assert settings.build({"name": "a"}, SCHEMA, Example, "x.json") == Example("a")


def test_convert_adjusts_checked_values() -> None:
    built = settings.build({"name": "a", "items": [{"path": "/p"}]}, SCHEMA, Example, "x.json",
                           lambda v: dict(v, items=tuple(i["path"] for i in v["items"])))
    assert built.items == ("/p",)


def test_every_problem_is_named_with_its_place() -> None:
    with pytest.raises(settings.SettingsError) as info:
        settings.build({"port": 0, "items": [{}], "colour": 1}, SCHEMA, Example, "x.json")
    message = str(info.value)
    assert message.startswith("x.json: ")
    assert "(top level): 'name' is a required property" in message
    assert "port: must be a port number 1-65535, got 0" in message  # the description
    assert "items[0]: 'path' is a required property" in message
    assert "('colour' was unexpected)" in message


@pytest.mark.parametrize(("content", "expected"), [
    (None, "no such file"),
    (b"{not json", "not JSON"),
    (b"\xff\xfe", "not UTF-8 text"),
])
def test_unreadable_files_are_named(tmp_path: Path, content: bytes | None, expected: str) -> None:
    path = tmp_path / "settings.json"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(settings.SettingsError, match=expected):
        settings.load_settings(str(path), SCHEMA, Example)


def test_check_config_says_valid_or_lists_the_problems(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"name": "a"}))
    assert settings.check_config(str(path), SCHEMA, Example) == (0, f"{path}: settings are valid")
    path.write_text(json.dumps({"name": ""}))
    status, message = settings.check_config(str(path), SCHEMA, Example)
    assert status == 1 and message.startswith(f"{path}: name: ''")  # wording: jsonschema's


def test_a_write_only_value_is_never_shown() -> None:
    schema = {"type": "object", "properties": {
        "password": {"type": "string", "minLength": 8, "writeOnly": True,
                     "description": "a password of 8 characters or more"},
        "token": {"type": "string", "writeOnly": True}}}
    found = settings.problems({"password": "hunter2", "token": 12345}, schema)
    assert found == ["password: must be a password of 8 characters or more, got a string "
                     "(not shown)", "token: must be valid, got a number (not shown)"]
