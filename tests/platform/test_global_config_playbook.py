"""The global_config module, lookup and filters in real ansible-playbook runs against a moto
server of this test: the module shipped by AnsiballZ with its module_utils, one S3 read per
run for the lookup although four forks look up at once, and check mode with --diff that
shows the change and writes nothing."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from tests.platform.local_moto import moto_server

pytestmark = pytest.mark.platform
ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
BUCKET = "hostkit-playbook-test"
KEY = "global-config.json"
HOSTS = ("h1", "h2", "h3", "h4")

WRITE = """
- name: Write the fleet
  hosts: all
  gather_facts: false
  tasks:
    - name: Start the document
      global_config: {state: get, create: true}
      run_once: true
    - name: The product
      global_config: {state: present, product: {name: hello}}
      run_once: true
    - name: Two db servers
      global_config:
        state: present
        server: {id: "db-{{ item }}", role: db, products: [hello], az: us-east-1a,
                 address: "10.0.0.{{ item }}", state: in_service}
      loop: [1, 2]
      run_once: true
    - name: The db positions
      global_config:
        state: present
        product: {name: hello, db: {master: db-1, candidate: db-2}}
      run_once: true
    - name: One web server per host, in service
      global_config:
        state: present
        server: {id: "web-{{ item }}", role: web, products: [hello], az: us-east-1b,
                 address: "10.0.1.{{ idx + 1 }}", state: in_service}
      loop: "{{ ansible_play_hosts_all }}"
      loop_control: {index_var: idx}
      run_once: true
"""

READ = """
- name: Read the fleet from every host at once
  hosts: all
  gather_facts: false
  tasks:
    - name: Values through the lookup
      ansible.builtin.set_fact:
        __master: "{{ lookup('global_config', 'products.hello.db.master') }}"
        __web: "{{ query('global_config', 'products.hello.web') | first }}"
        __db_address: "{{ lookup('global_config', '') | product_db_address('hello') }}"
        __shop: "{{ query('global_config', 'products.shop.web', on_missing='skip') }}"
        __az: "{{ lookup('global_config', 'servers') | least_loaded_az('web', __zones) }}"
      vars:
        __zones: [us-east-1b, us-east-1c]
    - name: They are the document's
      ansible.builtin.assert:
        that:
          - __master == 'db-1'
          - __web == ['web-h1', 'web-h2', 'web-h3', 'web-h4']
          - __db_address == '10.0.0.1'
          - __shop == []
          - __az == 'us-east-1c'
"""

FAILOVER = """
- name: Promote the candidate
  hosts: localhost
  gather_facts: false
  tasks:
    - name: One write
      global_config:
        state: present
        server: {id: db-1, state: fenced}
        product: {name: hello, db: {master: db-2, candidate: null}}
"""


@pytest.fixture(scope="module")
def aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with moto_server(log) as url:
        s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=url,
                          aws_access_key_id="testing", aws_secret_access_key="testing")
        s3.create_bucket(Bucket=BUCKET)
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        yield url, log


def playbook(text: str, aws: tuple[str, Path], tmp_path: Path, *args: str
             ) -> subprocess.CompletedProcess[str]:
    url, _ = aws
    path = tmp_path / "play.yml"
    path.write_text(text)
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
           "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1",
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": url,
           "HOSTKIT_GLOBAL_CONFIG_BUCKET": BUCKET, "HOSTKIT_GLOBAL_CONFIG_KEY": KEY}
    return subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", ",".join(HOSTS) + ",", "-c", "local",
         "-e", f"ansible_python_interpreter={sys.executable}", "--forks", str(len(HOSTS)),
         str(path), *args], cwd=ROOT, env=env, text=True, capture_output=True, timeout=600)


def stored(aws: tuple[str, Path]) -> dict:
    s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=aws[0],
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    return json.loads(s3.get_object(Bucket=BUCKET, Key=KEY)["Body"].read())


def gets(aws: tuple[str, Path]) -> int:
    """GET requests for the document so far, from the moto server's request log."""
    return aws[1].read_text().count(f'"GET /{BUCKET}/{KEY}')


def test_write_read_once_and_check_mode(aws: tuple[str, Path], tmp_path: Path) -> None:
    run = playbook(WRITE, aws, tmp_path)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    doc = stored(aws)
    assert doc["epoch"] == 8  # created (0), product, 2 db, positions, 4 web
    assert doc["products"]["hello"]["web"] == [f"web-{h}" for h in HOSTS]

    before = gets(aws)
    run = playbook(READ, aws, tmp_path)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert gets(aws) - before == 1, "the lookup read the document more than once in one run"

    run = playbook(FAILOVER, aws, tmp_path, "--check", "--diff")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert re.search(r'^-\s+"master": "db-1",$', run.stdout, re.M), run.stdout
    assert re.search(r'^\+\s+"master": "db-2",$', run.stdout, re.M), run.stdout
    assert "changed=1" in run.stdout
    assert stored(aws) == doc, "check mode wrote to S3"

    run = playbook(FAILOVER, aws, tmp_path)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    after = stored(aws)
    assert after["epoch"] == 9
    assert after["products"]["hello"]["db"]["master"] == "db-2"
    assert after["servers"]["db-1"]["state"] == "fenced"
    run = playbook(FAILOVER, aws, tmp_path)
    assert "changed=0" in run.stdout and stored(aws)["epoch"] == 9
