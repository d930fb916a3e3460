"""Every module's documentation, with its doc fragments merged the way ansible-doc merges
them, matches the argument_spec the module really parses: same option names, types,
defaults, choices, required flags, elements and aliases, down through suboptions."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from ansible.plugins.loader import fragment_loader, init_plugin_loader
from ansible.utils.plugin_docs import get_docstring

REPO_ROOT = Path(__file__).resolve().parents[2]
MODULES = sorted(p for p in (REPO_ROOT / "library").glob("*.py"))

# Options an action plugin of the same name consumes on the controller before the module
# runs (so they are documented but not in the module's argument_spec).
ACTION_SIDE = {"hostkit_files.files": {"template", "src", "vars", "when", "tags"},
               "hostkit_files.purge": {"when", "tags"},
               "hostkit_services.services": {"when", "tags"}}

init_plugin_loader()
fragment_loader.add_directory(str(REPO_ROOT / "doc_fragments"))


def alias_module_utils() -> None:
    """Make the project's module_utils importable as Ansible ships them to a host
    (ansible.module_utils.<name>)."""
    for path in (REPO_ROOT / "module_utils").glob("*.py"):
        if path.stem == "__init__":
            continue
        core = importlib.import_module(f"module_utils.{path.stem}")
        sys.modules.setdefault(f"ansible.module_utils.{path.stem}", core)


def load(path: Path) -> ModuleType:
    alias_module_utils()
    spec = importlib.util.spec_from_file_location(f"hostkit_doc_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def merged_options(path: Path) -> dict[str, Any]:
    doc, _examples, _returns, _metadata = get_docstring(str(path), fragment_loader)
    return doc.get("options") or {}


def compare(documented: dict[str, Any], spec: dict[str, Any], where: str) -> None:
    assert set(documented) - ACTION_SIDE.get(where, set()) == set(spec), where
    for name, option in spec.items():
        doc = documented[name]
        here = f"{where}.{name}"
        assert doc.get("type", "str") == option.get("type", "str"), here
        assert doc.get("default") == option.get("default"), here
        assert doc.get("choices") == option.get("choices"), here
        assert bool(doc.get("required")) == bool(option.get("required")), here
        assert doc.get("elements") == option.get("elements"), here
        assert doc.get("aliases") == option.get("aliases"), here
        if "options" in option:
            compare(doc["suboptions"], option["options"], here)


@pytest.mark.parametrize("path", [p for p in MODULES if "ARGUMENT_SPEC" in p.read_text()],
                         ids=lambda p: p.stem)
def test_documentation_matches_the_argument_spec(path: Path) -> None:
    module = load(path)
    compare(merged_options(path), module.ARGUMENT_SPEC, path.stem)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.stem)
def test_every_module_is_documented(path: Path) -> None:
    doc, examples, returns, _metadata = get_docstring(str(path), fragment_loader)
    assert doc and doc.get("short_description"), path.stem
    assert examples and examples.strip(), path.stem
    assert returns is not None, path.stem


# Modules documented for ansible-doc whose work is all in the action plugin of the same name,
# which parses the options (its ARGUMENT_SPEC).
ACTION_ONLY = ["hostkit_accounts"]


@pytest.mark.parametrize("name", ACTION_ONLY)
def test_documentation_matches_the_action_plugins_argument_spec(name: str) -> None:
    action = importlib.import_module(f"action_plugins.{name}")
    compare(merged_options(REPO_ROOT / "library" / f"{name}.py"), action.ARGUMENT_SPEC, name)
