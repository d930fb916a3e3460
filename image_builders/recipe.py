"""A recipe is the ordered list of steps that makes one role image.

Each role script in image_builders/recipes/ builds one `Recipe` at import time with calls
that read like the shell commands they stand for:

    image = Recipe("web", parent="base")
    image.install("apache", "php")
    image.run("a2enmod proxy_fcgi", only="Debian")
    image.enable("apache", "php")
    image.hygiene()
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from image_builders import steps
from image_builders.catalog import Catalog

RECIPES_DIR = Path(__file__).with_name("recipes")
FILES_DIR = Path(__file__).with_name("files")
# The root of every recipe chain: the backend's own base (an mmdebstrap rootfs for docker,
# the distribution's AMI for ec2).
OS_PARENT = "os"


class UnknownRole(LookupError):
    pass


@dataclass
class Recipe:
    role: str
    parent: str = OS_PARENT
    description: str = ""
    # The Ansible roles that configure servers started from this image, beyond those of the
    # parent image: their runtime packages must be baked in (tests/unit/test_image_roles.py).
    roles: tuple[str, ...] = ()
    variables: dict[str, Any] = field(default_factory=dict)
    steps: list[steps.Step] = field(default_factory=list)
    source: Path | None = None

    # --- the DSL -----------------------------------------------------------------------
    def run(self, command: str, *, only: str | None = None) -> None:
        self.steps.append(steps.Run(command, only=only))

    def install(self, *components: str, only: str | None = None) -> None:
        self.steps.append(steps.Install(tuple(components), only=only))

    def write(self, path: str, *, text: str | None = None, src: str | None = None,
              template: bool = False, mode: str = "0644", owner: str = "root",
              group: str = "root", only: str | None = None) -> None:
        self.steps.append(steps.WriteFile(path, text=text, src=src, template=template,
                                          mode=mode, owner=owner, group=group, only=only))

    def enable(self, *components: str, units: tuple[str, ...] = (),
               only: str | None = None) -> None:
        self.steps.append(steps.Enable(tuple(components), tuple(units), only=only))

    def group(self, name: str, *, gid: int | None = None, system: bool = True) -> None:
        self.steps.append(steps.AddGroup(name, gid=gid, system=system))

    def user(self, name: str, *, group: str | None = None, home: str | None = None,
             shell: str = "/usr/sbin/nologin", uid: int | None = None,
             system: bool = True) -> None:
        self.steps.append(steps.AddUser(name, group=group, home=home, shell=shell, uid=uid,
                                        system=system))

    def hygiene(self) -> None:
        self.steps.append(steps.Hygiene())

    # --- what builds and caches use ------------------------------------------------------
    def context(self, family: str, catalog: Catalog) -> steps.Context:
        return steps.Context(role=self.role, family=family, catalog=catalog,
                             files_dir=FILES_DIR, variables=self.variables)

    def rendered(self, family: str, catalog: Catalog) -> list[tuple[steps.Step, str]]:
        """The steps that apply to this family, each with its script."""
        ctx = self.context(family, catalog)
        out = []
        for step in self.steps:
            script = step.script(ctx)
            if script is not None:
                out.append((step, script))
        return out

    def digest(self, family: str, catalog: Catalog) -> str:
        """Digest of what this recipe will do on this family: the script source and every
        rendered step (which covers copied files, templates and catalog package names)."""
        h = hashlib.sha256()
        if self.source is not None:
            h.update(self.source.read_bytes())
        for step, script in self.rendered(family, catalog):
            h.update(json.dumps([step.label, script]).encode())
        return h.hexdigest()


def known_roles() -> list[str]:
    return sorted(p.stem for p in RECIPES_DIR.glob("*.py") if not p.stem.startswith("_"))


def load_recipe(role: str) -> Recipe:
    if role not in known_roles():
        raise UnknownRole(f"unknown role '{role}' (known: {', '.join(known_roles())})")
    module = importlib.import_module(f"image_builders.recipes.{role}")
    recipe = getattr(module, "image", None)
    if not isinstance(recipe, Recipe):
        raise UnknownRole(f"image_builders/recipes/{role}.py does not define `image = Recipe(...)`")
    recipe.source = Path(inspect.getfile(module))
    if not recipe.description:
        doc = (module.__doc__ or "").strip()
        recipe.description = doc.splitlines()[0] if doc else ""
    return recipe


def build_order(roles: list[str]) -> list[list[str]]:
    """Roles grouped in waves: every role comes after its parent; roles of one wave are
    independent of each other and may build in parallel. Parents not asked for are not
    added (an existing parent image is used)."""
    wanted = list(dict.fromkeys(roles))
    parents = {r: load_recipe(r).parent for r in wanted}
    waves: list[list[str]] = []
    done: set[str] = set()
    while len(done) < len(wanted):
        wave = [r for r in wanted if r not in done
                and (parents[r] not in wanted or parents[r] in done)]
        if not wave:
            raise ValueError(f"recipe parents form a cycle among: {', '.join(wanted)}")
        waves.append(wave)
        done.update(wave)
    return waves
