"""Unit tests of the image builder library: steps, recipes, digests, cache, manifest, CLI."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from image_builders import build, cli, manifest, recipe, steps
from image_builders.backends import ImageInfo, Parent
from image_builders.catalog import Catalog, load_catalog

CATALOG = load_catalog()


def ctx(family: str = "Debian", files_dir: Path | None = None,
        **variables: object) -> steps.Context:
    return steps.Context(role="web", family=family, catalog=CATALOG,
                         files_dir=files_dir or recipe.FILES_DIR, variables=dict(variables))


# --- steps ---------------------------------------------------------------------------------
def test_install_uses_catalog_names_per_family() -> None:
    step = steps.Install(("apache", "php"))
    debian = step.script(ctx("Debian"))
    redhat = step.script(ctx("RedHat"))
    assert "apt-get install" in debian and "apache2" in debian and "php8.2-opcache" in debian
    assert "dnf install" in redhat and "httpd" in redhat and "php-mysqlnd" in redhat
    assert "apache2" not in redhat


def test_only_skips_other_families() -> None:
    step = steps.Run("a2enmod status", only="Debian")
    assert step.script(ctx("Debian")) == "a2enmod status\n"
    assert step.script(ctx("RedHat")) is None


def test_write_file_script_writes_atomically_with_mode(tmp_path: Path) -> None:
    target = tmp_path / "etc" / "app.conf"
    content = "a 'quoted' line\n$HOME is not expanded\n"
    step = steps.WriteFile(str(target), text=content, mode="0640",
                           owner=str(os.getuid()), group=str(os.getgid()))
    subprocess.run(["sh", "-eu"], input=step.script(ctx()), text=True, check=True)
    assert target.read_text() == content
    assert oct(target.stat().st_mode & 0o777) == "0o640"
    assert not list(target.parent.glob("*.hk-tmp"))


def test_write_file_template_renders_variables_and_refuses_undefined(tmp_path: Path) -> None:
    (tmp_path / "t.j2").write_text("role={{ role }} family={{ family }} port={{ port }}\n")
    good = steps.WriteFile("/x", src="t.j2", template=True)
    assert good.content(ctx(files_dir=tmp_path, port=8080)) == "role=web family=Debian port=8080\n"
    with pytest.raises(Exception, match="port"):
        good.content(ctx(files_dir=tmp_path))


def test_write_file_needs_exactly_one_source() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        steps.WriteFile("/x").content(ctx())


def test_enable_resolves_services_and_units() -> None:
    script = steps.Enable(("apache", "php"), ("extra.service",)).script(ctx("Debian"))
    assert script == "systemctl enable apache2 php8.2-fpm extra.service\n"
    assert "httpd php-fpm" in steps.Enable(("apache", "php")).script(ctx("RedHat"))


def test_user_and_group_steps_are_idempotent_shell() -> None:
    g = steps.AddGroup("deploy", gid=1500).script(ctx())
    u = steps.AddUser("deploy", group="deploy", home="/srv/deploy").script(ctx())
    assert g.startswith("getent group deploy >/dev/null || groupadd --system --gid 1500 deploy")
    assert u.startswith("id -u deploy >/dev/null 2>&1 || useradd --system")
    assert "--home-dir /srv/deploy" in u and "--gid deploy" in u


def test_hygiene_clears_identity_and_caches() -> None:
    debian = steps.Hygiene().script(ctx("Debian"))
    redhat = steps.Hygiene().script(ctx("RedHat"))
    for needle in ("ssh_host_", ": > /etc/machine-id", "/var/lib/cloud", "/var/log"):
        assert needle in debian and needle in redhat
    assert "apt-get clean" in debian and "dnf clean all" in redhat


# --- recipes and digests -------------------------------------------------------------------
def test_every_role_script_loads_and_renders_for_both_families() -> None:
    assert recipe.known_roles() == ["base", "db", "edge", "memcached", "monitor", "web"]
    for role in recipe.known_roles():
        r = recipe.load_recipe(role)
        assert r.description, f"{role} has no description"
        for family in ("Debian", "RedHat"):
            rendered = r.rendered(family, CATALOG)
            assert rendered and isinstance(rendered[-1][0], steps.Hygiene)


def test_unknown_role_names_the_known_ones() -> None:
    with pytest.raises(recipe.UnknownRole, match=r"unknown role 'nope' \(known: base, db"):
        recipe.load_recipe("nope")


def test_build_order_puts_parents_first_and_groups_independent_roles() -> None:
    assert recipe.build_order(["web", "base", "db"]) == [["base"], ["web", "db"]]
    assert recipe.build_order(["web", "db"]) == [["web", "db"]]


def test_recipe_digest_follows_files_and_catalog(tmp_path: Path) -> None:
    r = recipe.Recipe("t")
    r.install("apache")
    r.write("/etc/x", src="ssh-host-keys.service")
    base = r.digest("Debian", CATALOG)
    assert r.digest("Debian", CATALOG) == base  # stable
    assert r.digest("RedHat", CATALOG) != base  # family matters
    changed = dict(CATALOG.components)
    changed["apache"] = {**changed["apache"], "packages": {"Debian": ["apache2", "x"]}}
    assert r.digest("Debian", Catalog(changed)) != base  # catalog matters
    r2 = recipe.Recipe("t")
    r2.install("apache")
    r2.write("/etc/x", text="different")
    assert r2.digest("Debian", CATALOG) != base  # file content matters


def test_cache_key_depends_on_parent_image() -> None:
    r = recipe.load_recipe("web")
    a = build.cache_key(r, Parent("p", "sha256:1"), "Debian", CATALOG)
    b = build.cache_key(r, Parent("p", "sha256:2"), "Debian", CATALOG)
    assert a != b and a == build.cache_key(r, Parent("q", "sha256:1"), "Debian", CATALOG)


# --- orchestration against an in-memory backend ----------------------------------------------
@dataclass
class FakeSession:
    backend: FakeBackend
    fail_on: str | None = None
    scripts: list[str] = field(default_factory=list)

    def exec(self, script: str, timeout: float = 1800) -> tuple[int, str]:
        self.scripts.append(script)
        if self.fail_on and self.fail_on in script:
            return 100, "line 1\n" * 40 + "E: Unable to locate package nope\n"
        if script.startswith("dpkg-query"):
            return 0, "apache2\t2.4.71-1\nphp8.2-fpm\t8.2.29-1\n"
        return 0, "ok\n"

    def commit(self, role: str, build_id: str, labels: dict[str, str],
               manifest_json: str) -> ImageInfo:
        info = ImageInfo(role=role, ref=f"fake/{role}:{build_id}", image_id=f"id-{build_id}",
                         build_id=build_id, cache_key=labels["io.hostkit.cache-key"],
                         created=0.0, manifest_digest=labels["io.hostkit.manifest-digest"])
        self.backend.committed.append((info, manifest_json))
        self.backend.latest[role] = info
        return info

    def discard(self) -> None:
        self.backend.discarded += 1


@dataclass
class FakeBackend:
    name: str = "fake"
    family: str = "Debian"
    fail_on: str | None = None
    latest: dict[str, ImageInfo] = field(default_factory=dict)
    committed: list[tuple[ImageInfo, str]] = field(default_factory=list)
    sessions: list[FakeSession] = field(default_factory=list)
    discarded: int = 0

    def resolve_parent(self, parent_role: str, log: object) -> Parent:
        if parent_role == recipe.OS_PARENT:
            return Parent("fake/os", "os-1")
        return Parent(self.latest[parent_role].ref, self.latest[parent_role].image_id)

    def current(self, role: str) -> ImageInfo | None:
        return self.latest.get(role)

    def start(self, role: str, parent: Parent, build_id: str) -> FakeSession:
        session = FakeSession(self, self.fail_on)
        self.sessions.append(session)
        return session

    def images(self) -> list[ImageInfo]:
        return [i for i, _ in self.committed]

    def prune(self, role: str, keep: int) -> list[str]:
        return []


@pytest.fixture()
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOSTKIT_STATE_DIR", str(tmp_path))
    return tmp_path


def quiet() -> build.Logger:
    lines: list[str] = []
    log = build.Logger(lines.append)
    log.lines = lines  # type: ignore[attr-defined]
    return log


def test_build_then_up_to_date_then_force(state: Path) -> None:
    backend = FakeBackend()
    log = quiet()
    first = build.build_role("base", backend, log=log)
    assert first.status == "built" and len(backend.committed) == 1
    again = build.build_role("base", backend, log=log)
    assert again.status == "up to date" and len(backend.committed) == 1
    assert any("up to date" in line for line in log.lines)  # type: ignore[attr-defined]
    forced = build.build_role("base", backend, force=True, log=log)
    assert forced.status == "built" and len(backend.committed) == 2
    assert backend.discarded == 2  # the build target goes away on success too


def test_every_step_logs_one_line_with_seconds(state: Path) -> None:
    log = quiet()
    build.build_role("base", FakeBackend(), log=log)
    step_lines = [x for x in log.lines if "] step " in x]  # type: ignore[attr-defined]
    assert len(step_lines) == len(recipe.load_recipe("base").rendered("Debian", CATALOG))
    assert all(x.rstrip().endswith("s)") for x in step_lines)


def test_manifest_records_what_went_in(state: Path) -> None:
    backend = FakeBackend()
    result = build.build_role("web", _with_base(backend), log=quiet())
    info, text = backend.committed[-1]
    doc = json.loads(text)
    assert doc["role"] == "web" and doc["build_id"] == result.image.build_id
    assert doc["packages"] == {"apache2": "2.4.71-1", "php8.2-fpm": "8.2.29-1"}
    assert doc["base"]["ref"].startswith("fake/base:")
    assert [s["label"] for s in doc["steps"]][0] == "install: apache, php, config_agent"
    assert all(len(s["digest"]) == 64 for s in doc["steps"])
    assert doc["builder_version"] and doc["git_commit"] and doc["built_at"].endswith("Z")
    assert manifest.digest(text) == info.manifest_digest
    saved = manifest.load("fake", "web", info.build_id)
    assert saved == doc
    # the manifest is also written into the image before the commit
    written = backend.sessions[-1].scripts[-1]
    assert manifest.IMAGE_MANIFEST_PATH in written


def _with_base(backend: FakeBackend) -> FakeBackend:
    build.build_role("base", backend, log=quiet())
    return backend


def test_failed_step_names_role_step_and_tail_and_keeps_previous(state: Path) -> None:
    backend = _with_base(FakeBackend())
    build.build_role("web", backend, log=quiet())
    previous = backend.latest["web"]
    backend.fail_on = "apt-get install"
    with pytest.raises(build.StepFailed) as err:
        build.build_role("web", backend, force=True, log=quiet())
    message = str(err.value)
    assert "'web'" in message and "step 1 (install: apache, php, config_agent)" in message
    assert "Unable to locate package nope" in message
    assert message.count("line 1") < 40  # only the tail
    assert backend.latest["web"] == previous
    assert backend.discarded == 3  # base, web, and the failed web


def test_build_many_reports_failures_and_skips_dependants(state: Path) -> None:
    backend = FakeBackend(fail_on="ssh-host-keys")
    results = build.build_many(["base", "web", "db"], backend, log=quiet())
    assert [r.status for r in results] == ["failed", "failed", "failed"]
    assert "parent 'base' failed" in results[1].error
    backend.fail_on = None
    results = build.build_many(["base", "web", "db"], backend, log=quiet())
    assert [r.status for r in results] == ["built", "built", "built"]


# --- manifest helpers and CLI --------------------------------------------------------------
def test_parse_packages_ignores_noise() -> None:
    assert manifest.parse_packages("b\t2\n\ngarbage\na\t1:1.0\n") == {"a": "1:1.0", "b": "2"}


def test_cli_unknown_role_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["build", "nope"]) == 2
    assert "unknown role 'nope'" in capsys.readouterr().err


def test_cli_unknown_manifest_role(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["manifest", "nope"]) == 2
    assert "unknown role 'nope'" in capsys.readouterr().err
