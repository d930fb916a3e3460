"""The mysql role's passwords, as Ansible resolves them: generated once into the credentials
directory (the same <product>-db file the product role writes into secrets.json), or read
from SSM Parameter Store SecureStrings (a moto server on 127.0.0.1 stands in for AWS)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

PLAYBOOK = """
- name: Resolve the passwords of the mysql and product roles
  hosts: localhost
  gather_facts: false
  vars_files:
    - {root}/roles/mysql/defaults/main.yml
    - {root}/roles/mysql/vars/main.yml
    - {root}/roles/product/vars/main.yml
  vars:
    __mysql_product: {{name: hello}}
    product_item: {{name: hello, database: {{name: hello, user: hello}}}}
    product_db_passwords: {{}}
  tasks:
    - name: Print them
      ansible.builtin.debug:
        msg: >-
          {{{{ {{'replication': __mysql_replication_password, 'monitor': __mysql_monitor_password,
               'app': __mysql_app_password, 'product': __product_db_password}} | to_json }}}}
"""


def resolve(tmp_path: Path, **extra: Any) -> dict[str, str]:
    book = tmp_path / "passwords.yml"
    book.write_text(PLAYBOOK.format(root=ROOT))
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json", AWS_ACCESS_KEY_ID="testing",
               AWS_SECRET_ACCESS_KEY="testing", PATH=f"{BIN}:{os.environ.get('PATH', '')}")
    proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local",
                           str(book), "-e", json.dumps(extra)],
                          capture_output=True, text=True, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
    return json.loads(result["msg"])


def test_local_passwords_are_generated_once_and_shared_with_the_product_role(
        tmp_path: Path) -> None:
    credentials = tmp_path / "credentials"
    settings = {"mysql_credentials_dir": str(credentials),
                "product_credentials_dir": str(credentials)}
    first = resolve(tmp_path, **settings)
    assert first["app"] == first["product"]
    assert len({first["replication"], first["monitor"], first["app"]}) == 3
    for name, key in (("mysql-replication", "replication"), ("mysql-monitor", "monitor"),
                      ("hello-db", "app")):
        stored = (credentials / name).read_text().split()[0]
        assert stored == first[key] and len(stored) == 32 and stored.isalnum()
    assert resolve(tmp_path, **settings) == first


@pytest.fixture
def ssm_endpoint() -> Any:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def test_ssm_passwords_come_from_secure_strings(tmp_path: Path, ssm_endpoint: str) -> None:
    ssm = boto3.client("ssm", region_name="us-east-1", endpoint_url=ssm_endpoint,
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    values = {"mysql-replication": "r3pl-S3cret", "mysql-monitor": "m0n-S3cret",
              "hello-db": "app-S3cret"}
    for name, value in values.items():
        ssm.put_parameter(Name=f"/hostkit/production/{name}", Value=value, Type="SecureString")
    got = resolve(tmp_path, mysql_password_source="ssm", hostkit_env="production",
                  mysql_ssm_endpoint_url=ssm_endpoint,
                  mysql_credentials_dir=str(tmp_path / "unused"),
                  product_db_passwords={"hello": "given"})
    assert (got["replication"], got["monitor"], got["app"]) == \
        (values["mysql-replication"], values["mysql-monitor"], values["hello-db"])
    assert not (tmp_path / "unused").exists()
