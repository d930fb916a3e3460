"""Bad input to the apache role: an Apache directive that Apache rejects in a product's
`apache_directives` stops the run before the host changes, with a message naming the
product and the field, and the running site keeps serving.

A systemd container of the web image (hostkit/web:latest) gets the apache and php roles
through ansible-playbook over the community.docker.docker connection, with one product
`demo` whose user and release the playbook's pre_tasks create (the common and product
roles' job on a real host). First run, once for the module: the site serves. Second run, with
`apache_directives: ['NoSuchDirective on']`: the play fails naming product 'demo' and
field 'apache_directives'; the virtual host file is unchanged, Apache was not reloaded
(mod_status' configuration generation is the same) and the site still serves. The name is
not on the allow-list of product directives, so the operators allow it for `demo` in
`platform_product_exceptions` (the escape hatch) to reach apachectl configtest. Without the
exception, a refused directive (a piped log, an Include, a section) stops the run the same
way, at the product check.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import systemd_container

# a site of its own; in the sandbox's lane to even out the two lanes (scripts/platform-tests.sh)
pytestmark = [pytest.mark.platform, pytest.mark.first_lane]
ROOT = Path(__file__).resolve().parents[2]
IMAGE = "hostkit/web:latest"
VHOST = "/etc/apache2/sites-enabled/hostkit-demo.conf"

PLAYBOOK = """\
- name: Web tier for one product
  hosts: all
  gather_facts: true
  pre_tasks:
    - name: Create the product group
      ansible.builtin.group:
        name: demo
        system: true
    - name: Create the product user
      ansible.builtin.user:
        name: demo
        group: demo
        system: true
        home: /srv/www/demo
        create_home: false
        shell: /usr/sbin/nologin
    - name: Create the release
      ansible.builtin.file:
        path: /srv/www/demo/releases/r1/public
        state: directory
        mode: "0755"
    - name: Write the page
      ansible.builtin.copy:
        dest: /srv/www/demo/releases/r1/public/index.php
        content: "<?php echo 'demo served by ', posix_getpwuid(posix_geteuid())['name'], PHP_EOL;"
        mode: "0644"
    - name: Point current at the release
      ansible.builtin.file:
        path: /srv/www/demo/current
        src: releases/r1
        state: link
  roles:
    - role: apache
    - role: php
"""

FETCH_CODE = r"""
import sys, urllib.error, urllib.request
req = urllib.request.Request("http://127.0.0.1" + sys.argv[1], headers={"Host": sys.argv[2]})
try:
    resp = urllib.request.urlopen(req, timeout=10)
    print(resp.status); print(resp.read().decode())
except urllib.error.HTTPError as err:
    print(err.code); print(err.read().decode())
"""


def sh(*args: str, check: bool = True, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), text=True, capture_output=True, check=check, **kw)


def product(**extra: object) -> dict[str, object]:
    demo = {"name": "demo", "domains": ["demo.test", "www.demo.test"],
            "source": {"type": "local", "path": "products/hello"}, "docroot": "public",
            "user": "demo", "group": "demo", "memcached": False,
            "php": {"memory_limit": "64M", "pm_max_children": 2}}
    demo.update(extra)
    return demo


@pytest.fixture(scope="module")
def web_image() -> str:
    proc = sh(sys.executable, "-m", "image_builders", "build", "base", "web", cwd=ROOT,
              check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return IMAGE


@pytest.fixture(scope="module")
def container(web_image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The web container with the site converged and serving, once for the module: every
    test leaves it as it found it (that is what each one checks)."""
    with systemd_container(web_image, "hostkit-test-apache") as name:
        first = converge(name, tmp_path_factory.mktemp("first"), product())
        assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-2000:]
        assert fetch(name, "/", "demo.test") == (200, "demo served by demo")
        yield name


def converge(container: str, tmp: Path, demo: dict[str, object],
             exceptions: dict[str, object] | None = None) -> subprocess.CompletedProcess[str]:
    playbook = tmp / "web.yml"
    playbook.write_text(PLAYBOOK)
    extra = tmp / "vars.json"
    extra.write_text(json.dumps({
        "platform_products": [demo], "hostkit_products": ["demo"],
        "platform_product_exceptions": exceptions or {},
        # The web image's stock nftables.conf is not the common role's ruleset.
        "apache_firewall": False,
    }))
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_FORCE_COLOR="0")
    return sh(str(Path(sys.executable).parent / "ansible-playbook"), "-i", f"{container},",
              "-c", "community.docker.docker", "-e", f"@{extra}", str(playbook),
              cwd=ROOT, env=env, check=False)


def fetch(container: str, path: str, vhost: str) -> tuple[int, str]:
    out = sh("docker", "exec", container, "python3", "-c", FETCH_CODE, path, vhost).stdout
    status, _, body = out.partition("\n")
    return int(status), body.strip()


def in_container(container: str, command: str) -> str:
    return sh("docker", "exec", container, "sh", "-c", command).stdout


def config_generation(container: str) -> str:
    _, body = fetch(container, "/server-status?auto", "localhost")
    lines = [x for x in body.splitlines() if x.startswith("ParentServerConfigGeneration:")]
    assert lines, body
    return lines[0]


def test_bad_directive_stops_before_the_host_changes(container: str, tmp_path: Path) -> None:
    vhost_before = hashlib.sha256(in_container(container, f"cat {VHOST}").encode()).hexdigest()
    generation_before = config_generation(container)

    bad = converge(container, tmp_path, product(apache_directives=["NoSuchDirective on"]),
                   {"demo": {"apache_directives": ["NoSuchDirective"]}})
    output = bad.stdout + bad.stderr
    assert bad.returncode != 0, output[-4000:]
    assert ("product 'demo': field 'apache_directives' is rejected by apachectl configtest"
            in output), output[-4000:]
    assert "Invalid command 'NoSuchDirective'" in output
    unchanged(container, vhost_before, generation_before, "NoSuchDirective")


@pytest.mark.parametrize("line", ['ErrorLog "|/bin/sh -c id"', "Include /etc/shadow",
                                  "<Directory />", 'RewriteRule ^ http://169.254.169.254/ [P]'])
def test_refused_directive_stops_before_the_host_changes(container: str, tmp_path: Path,
                                                         line: str) -> None:
    """A directive off the allow-list (no operators' exception) is refused by the product
    check, before any template is rendered on the host."""
    vhost_before = hashlib.sha256(in_container(container, f"cat {VHOST}").encode()).hexdigest()
    generation_before = config_generation(container)

    bad = converge(container, tmp_path, product(apache_directives=[line]))
    output = bad.stdout + bad.stderr
    assert bad.returncode != 0, output[-4000:]
    assert "product 'demo': field 'apache_directives' line 1" in output, output[-4000:]
    unchanged(container, vhost_before, generation_before, line)


def unchanged(container: str, vhost_before: str, generation_before: str, marker: str) -> None:
    """The live virtual host, the configuration generation and the site are as before."""
    vhost_after = hashlib.sha256(in_container(container, f"cat {VHOST}").encode()).hexdigest()
    assert vhost_after == vhost_before  # the live virtual host was not touched
    assert marker not in in_container(container, "cat /etc/apache2/sites-enabled/*")
    assert config_generation(container) == generation_before  # no reload happened
    assert in_container(container, "apache2ctl -t 2>&1; echo rc=$?").strip().endswith("rc=0")
    assert fetch(container, "/", "demo.test") == (200, "demo served by demo")
    assert fetch(container, "/", "www.demo.test") == (200, "demo served by demo")
