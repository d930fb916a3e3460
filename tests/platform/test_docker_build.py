"""Real builds with the docker backend: base and web are built (or found up to date) and a
container of web is booted with systemd to check what the image promises."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from image_builders import build, manifest, recipe
from image_builders.backends import docker as docker_backend
from tests.support import systemd_container

pytestmark = pytest.mark.platform
ROOT = Path(__file__).resolve().parents[2]


def sh(*args: str, check: bool = True, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), text=True, capture_output=True, check=check, **kw)


def builder(*args: str) -> subprocess.CompletedProcess[str]:
    return sh(sys.executable, "-m", "image_builders", *args, cwd=ROOT, check=False)


@pytest.fixture(scope="session")
def built() -> str:
    proc = builder("build", "base", "web")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def web_container(built: str) -> Iterator[str]:
    with systemd_container("hostkit/web:latest", "hostkit-test-web") as name:
        yield name


def in_container(name: str, command: str) -> str:
    return sh("docker", "exec", name, "sh", "-c", command).stdout


def test_web_serves_apache_with_php_fpm(web_container: str) -> None:
    assert in_container(web_container, "systemctl is-active apache2 php8.2-fpm").split() == [
        "active", "active"]
    modules = in_container(web_container, "apache2ctl -M 2>/dev/null")
    for module in ("mpm_event_module", "proxy_fcgi_module", "headers_module", "status_module"):
        assert module in modules
    in_container(web_container, "echo '<?php echo 6*7;' > /var/www/html/t.php")
    answer = in_container(web_container,
                          "python3 -c \"import urllib.request as u;"
                          "print(u.urlopen('http://127.0.0.1/t.php').read().decode())\"")
    assert answer.strip() == "42"  # Apache handed the script to PHP-FPM


def test_php_has_mysql_memcached_and_opcache(web_container: str) -> None:
    modules = in_container(web_container, "php -m")
    for ext in ("mysqli", "pdo_mysql", "memcached", "Zend OPcache"):
        assert ext in modules


def test_image_is_clean_and_makes_its_own_identity(web_container: str) -> None:
    keys = in_container(web_container, "ls /etc/ssh/ | grep -c '_key$' || true")
    assert int(keys) >= 3  # made at first boot by ssh-host-keys.service
    assert len(in_container(web_container, "cat /etc/machine-id").strip()) == 32
    lists = in_container(web_container, "ls /var/lib/apt/lists | grep -c Packages || true")
    assert lists.strip() == "0"
    guard = in_container(web_container, "test -e /usr/sbin/policy-rc.d && echo yes || echo no")
    assert guard.strip() == "no"


def test_manifest_lists_the_packages_and_matches_the_label(web_container: str) -> None:
    proc = builder("manifest", "web")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["role"] == "web" and doc["family"] == "Debian"
    for package in ("apache2", "php8.2-fpm", "php8.2-mysql", "php8.2-memcached"):
        assert package in doc["packages"], package
    assert doc["base"]["ref"].startswith("hostkit/base:")
    inside = in_container(web_container, f"cat {manifest.IMAGE_MANIFEST_PATH}")
    assert json.loads(inside) == doc
    label = sh("docker", "image", "inspect", "-f",
               "{{index .Config.Labels \"io.hostkit.manifest-digest\"}}",
               "hostkit/web:latest").stdout.strip()
    assert label == manifest.digest(inside)


def test_warm_build_is_up_to_date(built: str) -> None:
    before = sh("docker", "image", "inspect", "-f", "{{.Id}}", "hostkit/web:latest").stdout
    proc = builder("build", "base", "web")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("up to date (") == 2
    after = sh("docker", "image", "inspect", "-f", "{{.Id}}", "hostkit/web:latest").stdout
    assert before == after


def test_list_shows_current_builds(built: str) -> None:
    proc = builder("list")
    assert proc.returncode == 0
    rows = [line.split() for line in proc.stdout.splitlines()[1:]]
    assert {"base", "web"} <= {r[0] for r in rows if "yes" in r}


def test_failed_step_removes_container_and_keeps_current_image(
        built: str, monkeypatch: pytest.MonkeyPatch) -> None:
    before = sh("docker", "image", "inspect", "-f", "{{.Id}}", "hostkit/web:latest").stdout
    broken = recipe.Recipe("web", parent="base")
    broken.run("echo preparing")
    broken.run("echo 'E: Unable to locate package no-such-package' >&2; exit 100")
    broken.hygiene()
    monkeypatch.setattr(build, "load_recipe", lambda role: broken)
    with pytest.raises(build.StepFailed) as err:
        build.build_role("web", docker_backend.DockerBackend(), log=build.Logger(lambda m: None))
    assert "'web'" in str(err.value) and "step 2" in str(err.value)
    assert "no-such-package" in err.value.tail
    leftovers = sh("docker", "ps", "-aq", "--filter", "name=^hostkit-build-web-").stdout
    assert leftovers.strip() == ""
    after = sh("docker", "image", "inspect", "-f", "{{.Id}}", "hostkit/web:latest").stdout
    assert before == after


def test_manifest_from_a_clone_that_did_not_build_the_image(built: str, tmp_path: Path) -> None:
    env = {**__import__("os").environ, "HOSTKIT_STATE_DIR": str(tmp_path)}
    proc = sh(sys.executable, "-m", "image_builders", "manifest", "web", "--packages",
              cwd=ROOT, check=False, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "apache2\t" in proc.stdout
    assert list(tmp_path.glob("images/docker/web/*.json"))  # kept for next time
