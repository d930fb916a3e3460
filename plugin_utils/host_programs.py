"""The host programs (config agent, failover watcher, backup) as the roles install them: one
directory per program holding its import closure, a generated manifest and an entry script.

A program is a module of the `host_programs` package with an entry function. What it needs
is computed from the source (Python's ast, imports at any depth, inside functions too):
every module of `host_programs` or `module_utils` it imports, directly or through another,
and the `__init__.py` of every package on the way. Nothing else of the repository is
shipped, and nothing is listed by hand. Imports of any other package must come from the
host's Python (the image catalog installs boto3, pymysql, jsonschema).

On the host (`<dest>` is the role's install directory):

    <dest>/host_programs/...      the closure, as in the repository
    <dest>/module_utils/...
    <dest>/MANIFEST.json          program, entry point, every file with its sha256
    <dest>/<command>              the entry script (Python puts <dest> first on sys.path)

No Ansible imports: lookup_plugins/host_program.py wraps this for the roles.
"""

from __future__ import annotations

import ast
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
# The packages whose modules are shipped with a program.
SHIPPED_PACKAGES = ("host_programs", "module_utils")


@dataclass(frozen=True)
class Program:
    command: str   # the entry script's name on the host
    entry: str     # "package.module:function"; the function returns the exit status


PROGRAMS = {
    "config_agent": Program("hostkit-config-agent", "host_programs.config_agent.agent:main"),
    "failover_watcher": Program("hostkit-failover", "host_programs.failover.watcher:main"),
    "mysql_backup": Program("hostkit-mysql-backup", "host_programs.backup.program:main"),
}


class HostProgramError(ValueError):
    """A program or a module it imports is unknown; the message names it."""


def _is_shipped(name: str) -> bool:
    return name.split(".")[0] in SHIPPED_PACKAGES


def module_path(name: str, root: Path = REPO) -> Path | None:
    """The file of dotted module `name` under root (a module, or a package's __init__.py),
    the directory of a namespace package (module_utils/ has no __init__.py: Ansible's
    module_utils folders are not packages), or None."""
    base = root.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return base if base.is_dir() else None


def imported_modules(source: str, root: Path = REPO) -> set[str]:
    """Dotted names of the shipped modules a Python source imports. `from pkg import name`
    counts pkg.name when that is a module, else pkg."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if not _is_shipped(node.module):
                continue
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if module_path(sub, root) else node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if _is_shipped(alias.name))
    return found


def _packages_of(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def closure(module: str, root: Path = REPO) -> list[str]:
    """Paths (relative to root, '/'-separated) of `module`, everything shipped it imports
    directly or not, and the __init__.py of each package on the way; sorted."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        path = module_path(name, root)
        if path is None:
            raise HostProgramError(f"{name.replace('.', '/')}.py does not exist (imported on "
                                   f"the way from {module})")
        seen.add(name)
        todo.extend(_packages_of(name))
        if path.is_file():
            todo.extend(imported_modules(path.read_text(), root) - seen)
    files = {path.relative_to(root).as_posix() for name in seen
             if (path := module_path(name, root)) is not None and path.is_file()}
    return sorted(files)


def program(name: str) -> Program:
    if name not in PROGRAMS:
        raise HostProgramError(f"unknown host program '{name}' (known: "
                               f"{', '.join(sorted(PROGRAMS))})")
    return PROGRAMS[name]


def program_files(name: str, root: Path = REPO) -> list[str]:
    """The repository files (relative paths) a host program needs."""
    return closure(program(name).entry.split(":")[0], root)


def entry_script(name: str, python: str) -> str:
    """The entry script of a program, run by `python` from its install directory."""
    prog = program(name)
    module, function = prog.entry.split(":")
    return (f"#!{python}\n"
            f'"""{prog.command}: generated by hostkit (plugin_utils/host_programs.py); the '
            f'program is {module}."""\n'
            "import sys\n\n"
            "# Python puts the directory of this script (links resolved) first on sys.path.\n"
            f"from {module} import {function}\n\n"
            f"sys.exit({function}())\n")


def manifest(name: str, root: Path = REPO) -> dict[str, Any]:
    """What goes into <dest>/MANIFEST.json: the program, its entry point and command, and
    every shipped file with its sha256 (deterministic: same sources, same bytes)."""
    prog = program(name)
    files = {rel: hashlib.sha256((root / rel).read_bytes()).hexdigest()
             for rel in program_files(name, root)}
    return {"program": name, "command": prog.command, "entry": prog.entry, "files": files}


def bundle(name: str, dest: str, python: str = "/usr/bin/python3", owner: str = "root",
           group: str = "root", root: Path = REPO) -> list[dict[str, Any]]:
    """The hostkit_files entries that install a program in `dest`: its directories, the
    closure (src: the repository file), MANIFEST.json and the entry script."""
    if not dest.startswith("/"):
        raise HostProgramError(f"install directory of {name} must be absolute, got '{dest}'")
    dest = dest.rstrip("/")
    who = {"owner": owner, "group": group}
    files = program_files(name, root)
    dirs = sorted({str(Path(rel).parent) for rel in files} - {"."})
    entries: list[dict[str, Any]] = [{"path": dest, "state": "directory", "mode": "0755", **who}]
    entries += [{"path": f"{dest}/{d}", "state": "directory", "mode": "0755", **who}
                for d in dirs]
    entries += [{"path": f"{dest}/{rel}", "src": str(root / rel), "mode": "0644", **who}
                for rel in files]
    entries.append({"path": f"{dest}/MANIFEST.json", "mode": "0644", **who,
                    "content": json.dumps(manifest(name, root), indent=2, sort_keys=True) + "\n"})
    entries.append({"path": f"{dest}/{program(name).command}", "mode": "0755", **who,
                    "content": entry_script(name, python)})
    return entries


def bundle_purge(name: str, dest: str, root: Path = REPO) -> list[dict[str, Any]]:
    """hostkit_files purge entries: Python files in the bundle's directories that the bundle
    does not name (left by an older version) are removed."""
    dirs = sorted({str(Path(rel).parent) for rel in program_files(name, root)} - {"."})
    return [{"path": f"{dest.rstrip('/')}/{d}", "patterns": ["*.py"]} for d in dirs]
