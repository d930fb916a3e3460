"""Every Jinja filter of filter_plugins/ is documented for `ansible-doc -t filter NAME`: a
filter_plugins/<name>.yml whose DOCUMENTATION names it and lists each of its arguments, and
no such file for a filter that no FilterModule defines."""

from __future__ import annotations

import importlib.util
import inspect
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

FILTER_DIR = Path(__file__).resolve().parents[2] / "filter_plugins"

# Parameters that Jinja fills from a filter call's arguments (not **kwargs).
ARGUMENT_KINDS = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                  inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.KEYWORD_ONLY)


def _load(path: Path) -> ModuleType:
    """The plugin file as a module of its own name (not filter_plugins.<stem>, which other
    tests import)."""
    spec = importlib.util.spec_from_file_location(f"_filter_docs_{path.stem}", path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _filters() -> dict[str, tuple[Path, Callable[..., Any]]]:
    """Filter name -> (file that defines it, function), from every FilterModule."""
    out: dict[str, tuple[Path, Callable[..., Any]]] = {}
    for path in sorted(FILTER_DIR.glob("*.py")):
        filter_module = getattr(_load(path), "FilterModule", None)
        if filter_module is None:
            continue
        for name, function in filter_module().filters().items():
            assert name not in out, \
                f"filter {name} is defined in {out[name][0].name} and {path.name}"
            out[name] = (path, function)
    return out


FILTERS = _filters()
DOC_FILES = sorted(FILTER_DIR.glob("*.yml"))


def _documentation(name: str) -> dict[str, Any]:
    path = FILTER_DIR / f"{name}.yml"
    assert path.is_file(), f"filter {name} ({FILTERS[name][0].name}) has no {path.name}"
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(doc, dict) and isinstance(doc.get("DOCUMENTATION"), dict), \
        f"{path.name} has no DOCUMENTATION mapping"
    return doc["DOCUMENTATION"]


def _arguments(function: Callable[..., Any]) -> list[str]:
    """The function's argument names after the filter input, in order."""
    parameters = list(inspect.signature(function).parameters.values())
    return [p.name for p in parameters[1:] if p.kind in ARGUMENT_KINDS]


def test_the_plugins_define_filters() -> None:
    assert FILTERS, f"no FilterModule found in {FILTER_DIR}"


@pytest.mark.parametrize("name", sorted(FILTERS))
def test_each_filter_has_a_yml_that_names_it(name: str) -> None:
    doc = _documentation(name)
    assert doc.get("name") == name, f"{name}.yml: DOCUMENTATION.name is {doc.get('name')!r}"
    assert isinstance(doc.get("options"), dict) and "_input" in doc["options"], \
        f"{name}.yml: no options._input"


@pytest.mark.parametrize("name", sorted(FILTERS))
def test_each_argument_of_a_filter_is_an_option(name: str) -> None:
    options = _documentation(name).get("options") or {}
    missing = [arg for arg in _arguments(FILTERS[name][1]) if arg not in options]
    assert not missing, f"{name}.yml: arguments not in options: {', '.join(missing)}"


@pytest.mark.parametrize("name", sorted(FILTERS))
def test_positional_and_options_follow_the_signature(name: str) -> None:
    """`positional` lists the arguments in the function's order (Jinja maps a call's
    positional values by it), and no option names an argument the function does not take."""
    doc = _documentation(name)
    arguments = _arguments(FILTERS[name][1])
    positional = [p.strip() for p in str(doc.get("positional") or "").split(",") if p.strip()]
    assert positional == arguments, \
        f"{name}.yml: positional is {positional}, the function takes {arguments}"
    takes_keywords = any(p.kind is inspect.Parameter.VAR_KEYWORD
                         for p in inspect.signature(FILTERS[name][1]).parameters.values())
    unknown = sorted(set(doc.get("options") or {}) - set(arguments) - {"_input"})
    # a filter with **keywords documents what it forwards as one more option
    assert not unknown or (takes_keywords and len(unknown) == 1), \
        f"{name}.yml: options the function does not take: {', '.join(unknown)}"


@pytest.mark.parametrize("path", DOC_FILES, ids=[p.name for p in DOC_FILES])
def test_each_yml_documents_a_defined_filter(path: Path) -> None:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    name = (doc or {}).get("DOCUMENTATION", {}).get("name")
    assert name in FILTERS, f"{path.name} documents {name!r}, which no FilterModule defines"
    assert path.stem == name, f"{path.name} documents {name!r}: the file must be {name}.yml"
