"""Installing on a freshly baked image: no package lists, and every cache file minutes old.

The image hygiene removes /var/lib/apt/lists/*, so a server started from an image baked a
few minutes ago has no lists while the lists directory looks fresh. That is where a newcomer's
first `make up` stopped ("No package matching 'python3-boto3' is available"): apt with
`cache_valid_time` trusted the directory's age and skipped the update.

On a systemd container of hostkit/base:latest with the lists directory touched (an image baked
a moment ago), over the community.docker.docker connection:
1. the trap is real: ansible.builtin.apt with update_cache and cache_valid_time fails;
2. hostkit_packages in check mode reports the install and changes nothing;
3. hostkit_packages fetches the lists, installs, and says so; run again it changes nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import docker, systemd_container

pytestmark = pytest.mark.platform
ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PACKAGE = "jq"  # small, and in no role image

APT_WITH_CACHE_AGE = f"""\
- name: The usual apt task
  hosts: all
  gather_facts: false
  tasks:
    - name: Install {PACKAGE} trusting the age of the cache
      ansible.builtin.apt:
        name: {PACKAGE}
        update_cache: true
        cache_valid_time: 3600
"""

HOSTKIT_PACKAGES = f"""\
- name: hostkit_packages
  hosts: all
  gather_facts: true
  gather_subset: [min]
  tasks:
    - name: Install {PACKAGE} and a package the image has
      hostkit_packages:
        name: [{PACKAGE}, curl]
      register: installed

    - name: Show the result
      ansible.builtin.debug:
        msg: >-
          missing={{{{ installed.missing | join(',') }}}}
          refreshed={{{{ installed.lists_refreshed }}}}
"""


@pytest.fixture(scope="module")
def base_image() -> str:
    proc = subprocess.run([sys.executable, "-m", "image_builders", "build", "base"], cwd=ROOT,
                          text=True, capture_output=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return "hostkit/base:latest"


@pytest.fixture()
def fresh_server(base_image: str) -> Iterator[str]:
    with systemd_container(base_image, "hostkit-test-pkgs") as name:
        lists = docker("exec", name, "sh", "-c",
                       "ls /var/lib/apt/lists | grep -c _Packages; touch /var/lib/apt/lists",
                       check=False).stdout.strip()
        assert lists == "0", f"the image has package lists: {lists}"
        yield name


def play(server: str, tmp: Path, text: str, *extra: str) -> subprocess.CompletedProcess[str]:
    path = tmp / "play.yml"
    path.write_text(text)
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_FORCE_COLOR="0")
    return subprocess.run([str(BIN / "ansible-playbook"), "-i", f"{server},", "-c",
                           "community.docker.docker", *extra, str(path)], cwd=ROOT, env=env,
                          text=True, capture_output=True, timeout=600, check=False)


def installed(server: str) -> bool:
    return docker("exec", server, "dpkg-query", "-W", "-f", "${Status}", PACKAGE,
                  check=False).stdout.strip() == "install ok installed"


def test_apt_trusting_the_cache_age_fails_on_a_fresh_image(fresh_server: str,
                                                           tmp_path: Path) -> None:
    run = play(fresh_server, tmp_path, APT_WITH_CACHE_AGE)
    assert run.returncode != 0
    assert f"No package matching '{PACKAGE}' is available" in run.stdout


def test_hostkit_packages_fetches_missing_lists(fresh_server: str, tmp_path: Path) -> None:
    check = play(fresh_server, tmp_path, HOSTKIT_PACKAGES, "--check")
    assert check.returncode == 0, check.stdout[-3000:]
    assert "changed=1" in check.stdout
    assert f"missing={PACKAGE} refreshed=True" in check.stdout
    assert not installed(fresh_server)

    first = play(fresh_server, tmp_path, HOSTKIT_PACKAGES)
    assert first.returncode == 0, first.stdout[-3000:]
    assert f"missing={PACKAGE} refreshed=True" in first.stdout
    assert "changed=1" in first.stdout
    assert installed(fresh_server)

    again = play(fresh_server, tmp_path, HOSTKIT_PACKAGES)
    assert again.returncode == 0, again.stdout[-3000:]
    assert "missing= refreshed=False" in again.stdout
    assert "changed=0" in again.stdout
