"""The role images carry the packages of the roles that run on them.

A role installs only what its image lacks; a baked image has no package lists (its hygiene
removes them), so a package that a role needs and its image lacks costs a list download on
every new server, or fails where the mirror cannot be reached. Three facts are kept in step:

1. which catalog components each role installs: read from the role's own
   `query('platform_packages', ...)` calls (service-name queries aside);
2. which roles run on each image: the recipes' `roles=` declarations, checked against every
   play of the playbooks (its host groups name the images, its `roles:` and
   `include_role`/`import_role` tasks the roles);
3. for each image and each OS family, the packages of its roles are installed by the image's
   recipe or one of its parents.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from image_builders import steps
from image_builders.catalog import FAMILIES, load_catalog
from image_builders.recipe import OS_PARENT, Recipe, known_roles, load_recipe

ROOT = Path(__file__).resolve().parents[2]
ROLES_DIR = ROOT / "roles"
PLAYBOOKS = sorted((ROOT / "playbooks").glob("*.yml"))

# Host groups and the image their servers start from. dbrole_* are positions of db servers.
GROUP_IMAGE = {"role_web": "web", "role_db": "db", "role_memcached": "memcached",
               "role_monitor": "monitor", "role_edge": "edge"}
# Host patterns that are not inventory groups, and the image of their servers: the in-memory
# groups of new servers (launch_web.yml, launch.yml), of the database server being placed
# (db_place.yml), and restore.yml's target db server.
SPECIAL_HOSTS = {"launch_new": ["web"], "launch_new_memcached": ["memcached"],
                 "launch_new_monitor": ["monitor"], "db_place": ["db"], "target": ["db"]}

# keyword arguments of the lookup: family=ansible_facts['os_family'], kind='services'
KEYWORD = re.compile(r"\w+\s*=\s*(?:[\w.]+(?:\[[^\]]*\])*|'[^']*')")
QUERY = re.compile(r"(?:query|lookup)\(\s*'platform_packages'\s*,(?P<args>[^)]*)\)", re.S)


def role_components(role: str) -> set[str]:
    """Catalog components whose packages the role installs (its package queries)."""
    found: set[str] = set()
    for path in (ROLES_DIR / role).rglob("*.yml"):
        if "molecule" in path.parts:
            continue
        for match in QUERY.finditer(path.read_text()):
            args = match.group("args")
            if re.search(r"kind\s*=\s*'services'", args):
                continue
            positional = KEYWORD.sub("", args)
            found.update(re.findall(r"'([a-z_]+)'", positional))
    return found


def chain(role: str) -> list[Recipe]:
    """The recipe and its parents, the recipe first."""
    out = []
    while role != OS_PARENT:
        recipe = load_recipe(role)
        out.append(recipe)
        role = recipe.parent
    return out


def image_roles(image: str) -> set[str]:
    return {r for recipe in chain(image) for r in recipe.roles}


def baked_packages(image: str, family: str) -> set[str]:
    catalog = load_catalog()
    out: set[str] = set()
    for recipe in chain(image):
        for step in recipe.steps:
            if isinstance(step, steps.Install) and step.only in (None, family):
                out.update(catalog.packages(*step.components, family=family))
    return out


def play_images(hosts: str) -> list[str]:
    """Images of the servers a play's host pattern can name (intersections `:&` and
    exclusions `:!` only narrow it)."""
    images = set()
    for token in re.findall(r"(?<![&!\w])((?:db)?role_[a-z]+|launch_new(?:_[a-z]+)?|db_place"
                            r"|target|hostkit_live_[a-z_]+)\b", hosts):
        if token.startswith(("dbrole_", "hostkit_live_")):
            images.add("db")
        elif token in SPECIAL_HOSTS:
            images.update(SPECIAL_HOSTS[token])
        elif token in GROUP_IMAGE:
            images.add(GROUP_IMAGE[token])
    return sorted(images)


def tasks_roles(tasks: list[Any] | None, known: set[str]) -> Iterator[tuple[str, str | None]]:
    """(role, group it is limited to or None) of every include_role/import_role task."""
    for task in tasks or []:
        if not isinstance(task, dict):
            continue
        for key in ("block", "rescue", "always"):
            yield from tasks_roles(task.get(key), known)
        spec = task.get("ansible.builtin.include_role") or task.get("ansible.builtin.import_role")
        if not spec:
            continue
        when = task.get("when")
        when = " ".join(when) if isinstance(when, list) else str(when or "")
        limit = re.search(r"inventory_hostname in groups\['([a-z_]+)'\]", when)
        name = spec["name"]
        names = [name] if "{{" not in name else [
            n for n in re.findall(r"'([a-z_]+)'", str(task.get("loop", ""))) if n in known]
        assert names, f"cannot tell which role the task {task.get('name')!r} includes"
        for role in names:
            yield role, limit.group(1) if limit else None


def playbook_uses() -> list[tuple[str, str, str, list[str]]]:
    """(playbook, play, role, images) for every role a play applies to servers."""
    known = {p.name for p in ROLES_DIR.iterdir() if p.is_dir()}
    uses = []
    for path in PLAYBOOKS:
        for play in yaml.safe_load(path.read_text()) or []:
            if "hosts" not in play:
                continue
            hosts = str(play["hosts"])
            applied = [(r["role"] if isinstance(r, dict) else r, None)
                       for r in play.get("roles", [])]
            for key in ("pre_tasks", "tasks", "post_tasks"):
                applied.extend(tasks_roles(play.get(key), known))
            for role, limit in applied:
                images = play_images(limit or hosts)
                uses.append((path.name, play.get("name", ""), role, images))
    return uses


def test_every_role_query_names_catalog_components() -> None:
    catalog = load_catalog()
    for role in sorted(p.name for p in ROLES_DIR.iterdir() if p.is_dir()):
        for component in role_components(role):
            assert component in catalog.components, f"role {role}: unknown component {component}"


def test_the_roles_install_what_the_catalog_expects() -> None:
    """The parser finds the components of the roles that install packages (a role that
    stopped querying the catalog would silently drop out of the check below)."""
    assert role_components("common") == {"base"}
    assert role_components("failover_watcher") == {"failover_watcher"}
    assert role_components("config_agent") == {"config_agent"}
    assert role_components("mysql_backup") == {"mysql"}
    assert role_components("edge") == {"haproxy"}


@pytest.mark.parametrize("image", known_roles())
@pytest.mark.parametrize("family", FAMILIES)
def test_image_carries_the_packages_of_its_roles(image: str, family: str) -> None:
    baked = baked_packages(image, family)
    catalog = load_catalog()
    for role in sorted(image_roles(image)):
        needed = catalog.packages(*sorted(role_components(role)), family=family)
        lacking = [name for name in needed if name not in baked]
        assert not lacking, (f"image {image} ({family}) runs role {role} but lacks {lacking}: "
                             f"install the role's components in image_builders/recipes/{image}.py")


def test_every_play_applies_only_roles_its_images_declare() -> None:
    uses = playbook_uses()
    assert any(role == "failover_watcher" and images == ["monitor"]
               for _, _, role, images in uses)
    for playbook, play, role, images in uses:
        if role == "provider":  # the controller's provider step (localhost)
            continue
        assert images, f"{playbook}: play {play!r} applies {role} to servers of no known image"
        for image in images:
            assert role in image_roles(image), (
                f"{playbook}: play {play!r} applies role {role} to {image} servers, but "
                f"image_builders/recipes/{image}.py does not declare it in roles=")


def test_the_check_fails_on_an_image_that_lacks_a_role_package(monkeypatch) -> None:
    """Against the bug it stands for: a monitor image without the watcher's component."""
    monitor = load_recipe("monitor")
    stripped = [s for s in monitor.steps if not isinstance(s, steps.Install)]
    monkeypatch.setattr(monitor, "steps", stripped)
    with pytest.raises(AssertionError, match="lacks .*python3-boto3"):
        test_image_carries_the_packages_of_its_roles("monitor", "Debian")
