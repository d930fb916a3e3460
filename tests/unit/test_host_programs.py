"""plugin_utils/host_programs.py and the lookup host_program: what the roles install for
each host program is exactly its import closure (checked against Python's own modulefinder),
with a manifest that matches the files, and it is enough to run the program."""

from __future__ import annotations

import hashlib
import json
import modulefinder
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from plugin_utils.host_programs import (
    PROGRAMS,
    REPO,
    SHIPPED_PACKAGES,
    HostProgramError,
    bundle,
    bundle_purge,
    closure,
    imported_modules,
    program_files,
)


def package(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_imports_of_every_form_are_found(tmp_path: Path) -> None:
    package(tmp_path, {"module_utils/__init__.py": "", "module_utils/gc.py": "",
                       "host_programs/__init__.py": "", "host_programs/common/__init__.py": "",
                       "host_programs/common/files.py": "",
                       "host_programs/failover/__init__.py": "",
                       "host_programs/failover/fence.py": ""})
    source = ("import os\nfrom module_utils.gc import GlobalConfig\n"
              "from host_programs.failover import fence, CONSTANT\nimport module_utils\n"
              "def later():\n    from host_programs.common.files import locked\n"
              "from ansible.module_utils.basic import AnsibleModule\nfrom . import nothing\n")
    assert imported_modules(source, tmp_path) == {
        "module_utils.gc", "host_programs.failover.fence", "host_programs.failover",
        "module_utils", "host_programs.common.files"}


def test_the_closure_follows_imports_of_imports_and_takes_the_packages(tmp_path: Path) -> None:
    package(tmp_path, {"host_programs/__init__.py": "", "host_programs/a/__init__.py": "",
                       "host_programs/a/main.py": "from host_programs.a.b import x\n",
                       "host_programs/a/b.py": "from module_utils import c\n",
                       "host_programs/a/unused.py": "",
                       "module_utils/__init__.py": "", "module_utils/c.py": "import json\n"})
    assert closure("host_programs.a.main", tmp_path) == [
        "host_programs/__init__.py", "host_programs/a/__init__.py", "host_programs/a/b.py",
        "host_programs/a/main.py", "module_utils/__init__.py", "module_utils/c.py"]
    (tmp_path / "module_utils/c.py").write_text("from module_utils.gone import y\n")
    with pytest.raises(HostProgramError, match=r"module_utils/gone.py does not exist \(imported "
                                                r"on the way from host_programs.a.main\)"):
        closure("host_programs.a.main", tmp_path)


def test_an_unknown_program_and_a_relative_install_directory_are_named() -> None:
    with pytest.raises(HostProgramError, match="unknown host program 'panel'"):
        program_files("panel")
    with pytest.raises(HostProgramError, match="must be absolute, got 'opt/x'"):
        bundle("config_agent", "opt/x")


@pytest.mark.parametrize("program", sorted(PROGRAMS))
def test_the_closure_is_what_modulefinder_finds(program: str, tmp_path: Path) -> None:
    """An independent reading of the same question: the standard library's modulefinder
    (which follows imports in function bodies too) over a copy of both packages whole, with
    an __init__.py added to module_utils/ (modulefinder does not follow namespace
    packages): the modules of the shipped packages that the entry module reaches."""
    for top in SHIPPED_PACKAGES:
        shutil.copytree(REPO / top, tmp_path / top,
                        ignore=shutil.ignore_patterns("__pycache__", "*.md"))
    added = tmp_path / "module_utils/__init__.py"
    added.touch()
    entry = PROGRAMS[program].entry.split(":")[0].replace(".", "/") + ".py"
    finder = modulefinder.ModuleFinder(path=[str(tmp_path), *sys.path[1:]])
    finder.run_script(str(tmp_path / entry))
    found = {Path(m.__file__).relative_to(tmp_path).as_posix()
             for name, m in finder.modules.items()
             if m.__file__ and name.split(".")[0] in SHIPPED_PACKAGES}
    assert found - {"module_utils/__init__.py"} | {entry} == set(program_files(program))


def install(entries: list[dict], root: Path) -> Path:
    """What hostkit_files does with the bundle, into a scratch directory."""
    for entry in entries:
        path = Path(entry["path"])
        if entry.get("state") == "directory":
            path.mkdir(parents=True, exist_ok=True)
        elif "src" in entry:
            path.write_bytes(Path(entry["src"]).read_bytes())
        else:
            path.write_text(entry["content"])
            path.chmod(int(entry["mode"], 8))
    return root


@pytest.mark.parametrize("program", sorted(PROGRAMS))
def test_the_installed_bundle_alone_runs_the_program(program: str, tmp_path: Path) -> None:
    """The bundle in a directory of its own, run by an interpreter that sees neither the
    repository nor the virtualenv (-S, cwd elsewhere): it starts and prints its help; its
    manifest names every file with the right digest."""
    dest = tmp_path / "opt"
    install(bundle(program, str(dest), python=sys.executable), dest)
    command = dest / PROGRAMS[program].command
    run = subprocess.run([sys.executable, "-S", str(command), "--help"], capture_output=True,
                         text=True, cwd="/", timeout=60)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "usage:" in run.stdout
    shipped = {p.relative_to(dest).as_posix() for p in dest.rglob("*.py")}
    manifest = json.loads((dest / "MANIFEST.json").read_text())
    assert set(manifest["files"]) == shipped == set(program_files(program))
    for rel, digest in manifest["files"].items():
        assert hashlib.sha256((dest / rel).read_bytes()).hexdigest() == digest, rel
    # one module fewer is not enough (the entry module's own imports)
    first = next(rel for rel in program_files(program) if not rel.endswith("__init__.py")
                 and rel != PROGRAMS[program].entry.split(":")[0].replace(".", "/") + ".py")
    (dest / first).unlink()
    assert subprocess.run([sys.executable, "-S", str(command), "--help"], capture_output=True,
                          text=True, cwd="/", timeout=60).returncode != 0


def test_the_purge_covers_every_directory_of_the_bundle() -> None:
    purge = bundle_purge("failover_watcher", "/opt/w/")
    dirs = {p["path"] for p in purge}
    assert "/opt/w/host_programs/failover" in dirs and "/opt/w/module_utils" in dirs
    assert all(p["patterns"] == ["*.py"] for p in purge)


def test_the_lookup_returns_the_bundle_and_names_bad_input() -> None:
    from ansible.errors import AnsibleLookupError
    from ansible.plugins.loader import lookup_loader

    lookup_loader.add_directory(str(REPO / "lookup_plugins"))
    lookup = lookup_loader.get("host_program")
    entries = lookup.run(["mysql_backup"], {}, dest="/usr/local/lib/hostkit")
    assert entries == bundle("mysql_backup", "/usr/local/lib/hostkit")
    assert lookup.run(["mysql_backup"], {}, dest="/x", part="manifest")[0]["program"] == \
        "mysql_backup"
    with pytest.raises(AnsibleLookupError, match="unknown host program 'nope'"):
        lookup.run(["nope"], {}, dest="/x")
    with pytest.raises(AnsibleLookupError, match="name one program, got 2"):
        lookup.run(["config_agent", "mysql_backup"], {}, dest="/x")
