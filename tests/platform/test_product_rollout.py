"""Rollouts of the product role on a real web container (hostkit/web, systemd):

0. the web stack (playbooks/web.yml: common, apache, php, product) serves a small product;
1. a new release switches `current` while a loop of requests inside the container goes on,
   and every request succeeds; the shared directories survive the release;
2. a release whose /healthz answers 500 is switched back automatically: the run fails naming
   the product and the health check, `current` points at the previous release again, the
   site serves the old content and the failed release is gone;
3. playbooks/rollback.yml goes back one release;
4. bad products (missing domain, duplicate name, unknown cron user) stop the run before
   anything on the host changes, with a message naming the product and the field, and the
   site keeps serving;
5. only the newest product_releases_keep releases stay.

The product needs no database or memcached, so the container runs nothing else. The
container is removed at the end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from lookup_plugins.tree_digest import tree_digest
from tests.support import systemd_container

pytestmark = pytest.mark.platform
ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
NAME = "tiny"
DOMAIN = "tiny.sandbox.test"
BASE = f"/srv/www/{NAME}"

INDEX_PHP = """<?php
// Test product: the page names its release; /healthz answers {code}.
$path = parse_url($_SERVER['REQUEST_URI'] ?? '/', PHP_URL_PATH);
header('Cache-Control: no-store');
if ($path === '/healthz') {{
    http_response_code({code});
    echo "healthz {label}\\n";
    exit;
}}
echo "tiny release {label}\\n";
"""

# Runs inside the container during a rollout: requests to Apache on 127.0.0.1 until told to
# stop (or a bound is reached), then one JSON line of what it saw.
LOOP_PY = r"""
import json, os, sys, time, urllib.error, urllib.request
stop, limit, deadline = sys.argv[1], int(sys.argv[2]), time.time() + float(sys.argv[3])
seen, bad, n = {}, [], 0
while n < limit and time.time() < deadline and not os.path.exists(stop):
    req = urllib.request.Request("http://127.0.0.1/", headers={"Host": sys.argv[4]})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            code, body = r.status, r.read().decode().strip()
    except urllib.error.HTTPError as e:
        code, body = e.code, e.read().decode(errors="replace").strip()[:200]
    except Exception as e:
        code, body = 0, repr(e)
    n += 1
    if code == 200:
        seen[body] = seen.get(body, 0) + 1
    else:
        bad.append([n, code, body])
    time.sleep(0.005)
print(json.dumps({"requests": n, "seen": seen, "bad": bad[:20], "bad_count": len(bad)}))
"""


def sh(*args: str, check: bool = True, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), text=True, capture_output=True, check=check, **kw)


@dataclass
class Web:
    container: str
    work: Path
    timings: dict[str, float] = field(default_factory=dict)

    def exec(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return sh("docker", "exec", self.container, *cmd, check=check)

    def get(self, path: str = "/") -> tuple[int, str]:
        out = self.exec("curl", "-s", "-o", "/dev/stdout", "-w", "\n%{http_code}",
                        "-H", f"Host: {DOMAIN}", f"http://127.0.0.1{path}")
        body, _, code = out.stdout.rpartition("\n")
        return int(code), body.strip()

    def current(self) -> str:
        return self.exec("readlink", f"{BASE}/current").stdout.strip()

    def releases(self) -> list[str]:
        return sorted(self.exec("ls", f"{BASE}/releases").stdout.split())

    def snapshot(self) -> str:
        """Every file the roles manage, with type, link target, mode, owner, size, mtime."""
        return self.exec("sh", "-c", "find /srv/www /etc/cron.d /etc/apache2 /etc/php "
                         "-printf '%p %y %l %m %u %g %s %T@\\n' | sort").stdout

    def release_source(self, label: str, healthz: int = 200) -> Path:
        src = self.work / f"src-{label}"
        (src / "public").mkdir(parents=True, exist_ok=True)
        (src / "public" / "index.php").write_text(INDEX_PHP.format(code=healthz, label=label))
        return src

    def playbook(self, playbook: str, products: list[dict[str, Any]], *extra: str,
                 step: str) -> subprocess.CompletedProcess[str]:
        varsfile = self.work / f"vars-{step}.json"
        varsfile.write_text(json.dumps({"platform_products": products}))
        env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
                   ANSIBLE_ROLES_PATH=str(ROOT / "roles"), ANSIBLE_NOCOLOR="1",
                   ANSIBLE_FORCE_COLOR="0", PATH=f"{BIN}:{os.environ.get('PATH', '')}")
        start = time.monotonic()
        proc = sh(str(BIN / "ansible-playbook"), "-i", str(self.work / "inventory.yml"),
                  playbook, "-e", f"@{varsfile}",
                  # A local source is a relative path under product_source_root (products.yml
                  # may not name a directory elsewhere on the controller).
                  "-e", f"product_source_root={self.work}", *extra,
                  check=False, cwd=ROOT, env=env)
        self.timings[step] = round(time.monotonic() - start, 1)
        return proc


def product(source: Path, **changes: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": NAME,
        "domains": [DOMAIN],
        "source": {"type": "local", "path": source.name},
        "docroot": "public",
        "user": NAME,
        "group": NAME,
        "users": [],
        "groups": [],
        "cron": [{"name": "tick", "schedule": "*/10 * * * *",
                  "command": "php public/index.php > /dev/null", "user": NAME}],
        "php": {"memory_limit": "64M", "pm_max_children": 4},
        "memcached": False,
        "healthcheck": "/healthz",
    }
    entry.update(changes)
    return entry


def release_id(source: Path) -> str:
    return tree_digest(source)[:12]


def output(proc: subprocess.CompletedProcess[str]) -> str:
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Web]:
    proc = sh(sys.executable, "-m", "image_builders", "build", "base", "web", cwd=ROOT,
              check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with systemd_container("hostkit/web:latest", "hostkit-test-product") as name:
        work = tmp_path_factory.mktemp("product-rollout")
        # The container is in the groups the inventory plugin would make from its labels.
        host = {"ansible_connection": "community.docker.docker_api",
                "hostkit_products": [NAME], "hostkit_role": "web"}
        (work / "inventory.yml").write_text(json.dumps({"all": {"children": {
            "role_web": {"hosts": {name: host}},
            f"product_{NAME}": {"hosts": {name: {}}},
        }}}))
        (work / "deploy.yml").write_text(
            "- name: Roll out the products\n  hosts: role_web\n  gather_facts: true\n"
            "  roles:\n    - role: product\n")
        yield Web(name, work)


@pytest.fixture(scope="module")
def first(web: Web) -> dict[str, str]:
    """Step 0: the web stack with release 1 of the product."""
    src = web.release_source("one")
    proc = web.playbook("playbooks/web.yml", [product(src)], step="converge")
    assert proc.returncode == 0, output(proc)[-6000:]
    assert web.get("/") == (200, "tiny release one")
    web.exec("runuser", "-u", NAME, "--", "sh", "-c", f"echo kept > {BASE}/current/uploads/marker")
    return {"one": release_id(src)}


def test_first_converge_serves_release_one_from_its_id(web: Web, first: dict[str, str]) -> None:
    assert web.current() == f"releases/{first['one']}"
    assert web.exec("cat", f"{BASE}/shared/releases.log").stdout.split() == [first["one"]]
    cron = web.exec("cat", f"/etc/cron.d/{NAME}").stdout
    assert (f"*/10 * * * * {NAME} cd {BASE}/current && HOSTKIT_CONFIG_DIR={BASE}/shared/config "
            "php public/index.php > /dev/null") in cron.splitlines()


def test_new_release_switches_while_every_request_succeeds(web: Web, first: dict[str, str]) -> None:
    src = web.release_source("two")
    web.exec("rm", "-f", "/tmp/loop.stop")
    loop = subprocess.Popen(
        ["docker", "exec", web.container, "python3", "-c", LOOP_PY, "/tmp/loop.stop", "20000",
         "150", DOMAIN], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1)
        proc = web.playbook(str(web.work / "deploy.yml"), [product(src)], step="rollout-two")
        time.sleep(1)
    finally:
        web.exec("touch", "/tmp/loop.stop", check=False)
        out, err = loop.communicate(timeout=60)
    assert proc.returncode == 0, output(proc)[-6000:]
    seen = json.loads(out.strip().splitlines()[-1])
    assert seen["bad_count"] == 0, seen
    assert set(seen["seen"]) == {"tiny release one", "tiny release two"}, seen
    first["two"] = release_id(src)
    assert web.current() == f"releases/{first['two']}"
    assert web.get("/") == (200, "tiny release two")
    # The shared directories survived the release, and both releases stay on disk.
    assert web.exec("cat", f"{BASE}/current/uploads/marker").stdout.strip() == "kept"
    assert web.releases() == sorted([first["one"], first["two"]])
    # The same code again changes nothing.
    again = web.playbook(str(web.work / "deploy.yml"), [product(src)], step="rollout-two-again")
    assert again.returncode == 0 and "changed=0" in again.stdout, output(again)[-3000:]


def test_failing_health_check_switches_back(web: Web, first: dict[str, str]) -> None:
    assert "two" in first, "needs the rollout of release two"
    src = web.release_source("three", healthz=500)
    bad = release_id(src)
    proc = web.playbook(str(web.work / "deploy.yml"), [product(src)],
                        "-e", "product_healthcheck_retries=1", "-e", "product_healthcheck_delay=1",
                        step="rollout-three-unhealthy")
    text = " ".join(output(proc).split())
    assert proc.returncode != 0
    assert (f"product '{NAME}': health check http://127.0.0.1/healthz failed after rollout of "
            f"{bad} (HTTP 500: healthz three); rolled back to {first['two']}") in text, text[-3000:]
    assert web.current() == f"releases/{first['two']}"
    assert web.get("/") == (200, "tiny release two")
    assert bad not in web.releases()
    assert web.exec("cat", f"{BASE}/shared/releases.log").stdout.split() == [
        first["one"], first["two"]]


def test_rollback_playbook_goes_back_one_release(web: Web, first: dict[str, str]) -> None:
    assert "two" in first, "needs the rollout of release two"
    src = web.release_source("two")
    proc = web.playbook("playbooks/rollback.yml", [product(src)], "-e", f"product={NAME}",
                        step="rollback")
    assert proc.returncode == 0, output(proc)[-6000:]
    assert web.current() == f"releases/{first['one']}"
    assert web.get("/") == (200, "tiny release one")
    assert web.exec("cat", f"{BASE}/shared/releases.log").stdout.split() == [first["one"]]
    # Nothing earlier: a second rollback says so and changes nothing.
    again = web.playbook("playbooks/rollback.yml", [product(src)], "-e", f"product={NAME}",
                         step="rollback-nothing-earlier")
    assert again.returncode != 0
    assert f"product '{NAME}': no earlier release to roll back to" in " ".join(again.stdout.split())
    assert web.current() == f"releases/{first['one']}"


@pytest.mark.parametrize("case", ["missing_domain", "duplicate_name", "unknown_cron_user"])
def test_bad_products_stop_before_any_change(web: Web, first: dict[str, str], case: str) -> None:
    src = web.release_source("four")  # a new release: it must not appear
    good = product(src)
    if case == "missing_domain":
        products = [{k: v for k, v in good.items() if k != "domains"}]
        expected = f"product '{NAME}': field 'domains' is missing or empty"
    elif case == "duplicate_name":
        products = [good, product(src, domains=["other.sandbox.test"])]
        expected = f"product '{NAME}': field 'name' is used by more than one entry"
    else:
        products = [product(src, cron=[{"name": "tick", "schedule": "* * * * *",
                                        "command": "true", "user": "mallory"}])]
        expected = f"product '{NAME}': cron job tick: field 'user' names unknown user 'mallory'"
    before = web.snapshot()
    served = web.get("/")
    assert served[0] == 200
    proc = web.playbook(str(web.work / "deploy.yml"), products, step=f"bad-{case}")
    assert proc.returncode != 0
    assert expected in " ".join(output(proc).split()), output(proc)[-3000:]
    assert web.snapshot() == before
    assert web.get("/") == served
    assert release_id(src) not in web.releases()


def test_only_the_newest_releases_are_kept(web: Web, first: dict[str, str]) -> None:
    assert "two" in first, "needs the rollout of release two"
    # On disk: one (current after the rollback) and two (rolled back from, no longer in the
    # history). With product_releases_keep=2 a new release keeps one and itself.
    src = web.release_source("five")
    proc = web.playbook(str(web.work / "deploy.yml"), [product(src)],
                        "-e", "product_releases_keep=2", step="rollout-five-keep-2")
    assert proc.returncode == 0, output(proc)[-6000:]
    five = release_id(src)
    assert web.current() == f"releases/{five}"
    assert web.releases() == sorted([first["one"], five])
    assert web.exec("cat", f"{BASE}/shared/releases.log").stdout.split() == [first["one"], five]
    assert web.get("/") == (200, "tiny release five")


def test_report_timings(web: Web, first: dict[str, str]) -> None:
    print("\nproduct rollout timings (s):", json.dumps(web.timings))
