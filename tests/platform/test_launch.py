"""The main job on the sandbox: `make up`'s site, launch_web.yml and decommission.yml.

1. playbooks/sandbox_up.yml (what `make up` runs after the images) brings up the demo
   product: 4 db servers, 2 memcached, 2 web, the edge and the AWS endpoint; the site
   answers through the edge; run again it changes nothing;
2. launch_web.yml adds a web server while a client sends requests through the edge: the
   new server serves the product (the page names it), the global config and the edge list
   it, and the client saw no failed request; decommission.yml then removes it everywhere,
   again with no failed request;
3. a launch whose product code is broken fails in a named phase and leaves no container,
   no global config entry and no edge entry, while the site keeps serving.

The sandbox stays up at the end (it is what `make up` leaves); `make down` removes it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from scripts.ci_checks import play_recap as recap
from scripts.sandbox import rerun_noted, s3_client

pytestmark = [pytest.mark.platform, pytest.mark.sandbox]
ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
EDGE = "http://127.0.0.1:8080/"
DOMAIN = "hello.sandbox.test"
BUCKET, KEY = "hostkit-sandbox-config", "global-config.json"


def playbook(*args: str, timeout: float = 1200) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
           "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.default", "ANSIBLE_FORCE_COLOR": "0"}
    return subprocess.run([str(BIN / "ansible-playbook"), *args], text=True,
                          capture_output=True, cwd=ROOT, env=env, timeout=timeout)




def document() -> dict[str, Any]:
    body = s3_client().get_object(Bucket=BUCKET, Key=KEY)["Body"].read()
    return json.loads(body)


def get(path: str = "/", host: str = DOMAIN, timeout: float = 10) -> tuple[int, str]:
    request = urllib.request.Request(EDGE.rstrip("/") + path, headers={"Host": host})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return reply.status, reply.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
    except OSError as exc:
        return 0, repr(exc)


def edge_servers_up() -> set[str]:
    out = subprocess.run(["docker", "exec", "hostkit-edge", "python3", "-c",
                          "import urllib.request;print(urllib.request.urlopen("
                          "'http://127.0.0.1:8404/stats;csv').read().decode())"],
                         text=True, capture_output=True, check=True).stdout
    rows = [line.split(",") for line in out.splitlines() if line and not line.startswith("#")]
    return {r[1] for r in rows if r[0] == "site_hello" and r[1] != "BACKEND" and r[17] == "UP"}


def edge_servers_listed() -> set[str]:
    cfg = subprocess.run(["docker", "exec", "hostkit-edge", "cat", "/etc/haproxy/haproxy.cfg"],
                         text=True, capture_output=True, check=True).stdout
    return set(re.findall(r"^\s+server (\S+) ", cfg, re.M))


def containers(prefix: str = "hostkit-web-") -> set[str]:
    out = subprocess.run(["docker", "ps", "-a", "--format", "{{.Names}}"], text=True,
                         capture_output=True, check=True).stdout
    return {n for n in out.split() if n.startswith(prefix)}


class Client(threading.Thread):
    """Requests through the edge, one connection each, until stopped (bounded)."""

    def __init__(self, limit: int = 20000) -> None:
        super().__init__(daemon=True)
        self.limit, self.stop = limit, threading.Event()
        self.sent, self.failures, self.hosts = 0, [], {}

    def run(self) -> None:
        while not self.stop.is_set() and self.sent < self.limit:
            code, body = get("/healthz", timeout=15)
            self.sent += 1
            if code != 200:
                self.failures.append((self.sent, code, body[:200]))
            else:
                host = body.split()[-1] if body.startswith("ok ") else "?"
                self.hosts[host] = self.hosts.get(host, 0) + 1
            time.sleep(0.02)

    def finish(self) -> Client:
        self.stop.set()
        self.join(timeout=60)
        return self


@pytest.fixture(scope="module")
def site(sandbox_up: subprocess.CompletedProcess[str]) -> Iterator[dict[str, Any]]:
    yield {"first": sandbox_up}


def test_the_site_answers_through_the_edge(site: dict[str, Any]) -> None:
    status, body = get("/")
    assert status == 200, body[:500]
    assert re.search(r"hostkit-web-[12]", body)
    doc = document()
    assert doc["products"]["hello"]["db"]["master"] == "hostkit-db-1"
    assert sorted(doc["products"]["hello"]["web"]) == ["hostkit-web-1", "hostkit-web-2"]
    assert "hostkit-web-1" in site["first"].stdout  # the closing table names the servers


def test_a_second_run_changes_nothing(site: dict[str, Any]) -> None:
    checked = rerun_noted()
    if checked:
        pytest.skip(f"a re-run of this very converge changed nothing on any host, checked at "
                    f"{checked} (CI: scripts/ci_checks.py rerun, then sandbox.py stamp "
                    f"--note-rerun); the record still holds")
    again = playbook("playbooks/sandbox_up.yml")
    assert again.returncode == 0, again.stdout[-6000:]
    changed = {h: r["changed"] for h, r in recap(again.stdout).items() if r.get("changed")}
    assert changed == {}, again.stdout[-6000:]


def test_launch_then_decommission_with_no_failed_request(site: dict[str, Any]) -> None:
    before = document()
    client = Client()
    client.start()
    try:
        launch = playbook("launch_web.yml", "-e", "count=3")
    finally:
        during_launch = client.finish()
    assert launch.returncode == 0, launch.stdout[-6000:]
    web_before = set(before["products"]["hello"]["web"])
    new = sorted(set(document()["products"]["hello"]["web"]) - web_before)
    assert len(new) == 1, document()
    name = new[0]
    assert "total" in launch.stdout and "smoke" in launch.stdout  # the timeline
    assert during_launch.failures == [], during_launch.failures[:5]
    assert document()["epoch"] > before["epoch"]
    assert name in edge_servers_up() and name in edge_servers_listed()
    seen = {get("/")[1].count(name) > 0 for _ in range(12)}
    assert True in seen, "the new server never answered through the edge"

    rerun = playbook("launch_web.yml", "-e", "count=3")
    assert rerun.returncode == 0, rerun.stdout[-4000:]
    assert len(document()["products"]["hello"]["web"]) == 3
    assert containers() >= {name} and len(containers()) == 3

    client = Client()
    client.start()
    try:
        gone = playbook("playbooks/decommission.yml", "-e", f"host={name}")
    finally:
        during_decommission = client.finish()
    assert gone.returncode == 0, gone.stdout[-6000:]
    assert during_decommission.failures == [], during_decommission.failures[:5]
    assert name not in document()["servers"]
    assert name not in document()["products"]["hello"]["web"]
    assert name not in edge_servers_listed()
    assert name not in containers()


def test_decommission_refuses_an_unknown_host(site: dict[str, Any]) -> None:
    doc = document()
    assert len(doc["products"]["hello"]["web"]) >= 2
    # Refused for a host that does not exist, with its name in the message.
    result = playbook("playbooks/decommission.yml", "-e", "host=hostkit-web-99")
    assert result.returncode != 0
    assert "hostkit-web-99" in result.stdout


def test_a_broken_release_leaves_nothing_behind(site: dict[str, Any], tmp_path: Path) -> None:
    broken = tmp_path / "hello-broken"
    shutil.copytree(ROOT / "products/hello", broken)
    (broken / "public/index.php").write_text(
        "<?php http_response_code(500); echo 'broken release';\n")
    products = yaml.safe_load((ROOT / "inventory/sandbox/group_vars/all/products.yml")
                              .read_text())["platform_products"]
    products[0]["source"] = {"type": "local", "path": str(broken)}
    extra = tmp_path / "broken.json"
    extra.write_text(json.dumps({"platform_products": products}))
    before, listed, running = document(), edge_servers_listed(), containers()
    client = Client()
    client.start()
    try:
        result = playbook("launch_web.yml", "-e", f"@{extra}")
    finally:
        during = client.finish()
    assert result.returncode != 0
    assert re.search(r"launch_web failed:.*in phase\s+(roles|smoke)", result.stdout), \
        result.stdout[-4000:]
    assert containers() == running
    after = document()
    assert after["servers"].keys() == before["servers"].keys()
    assert after["products"]["hello"]["web"] == before["products"]["hello"]["web"]
    assert edge_servers_listed() == listed
    assert during.failures == [], during.failures[:5]
    assert get("/healthz")[0] == 200
