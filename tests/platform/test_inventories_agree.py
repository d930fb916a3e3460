"""The production inventory (amazon.aws.aws_ec2 over EC2 tags) and the sandbox inventory
(community.docker.docker_containers over container labels) make the same groups for the
same servers.

Three servers (a web server of two products, a db master, a memcached server in three
zones) are created twice: as EC2 instances in a moto server of this test (tags Name, Role,
Product "hello, shop", DbRole, ManagedBy) and as labelled containers. `ansible-inventory
--list` runs on inventory/production/aws_ec2.yml itself (pointed at moto through
AWS_ENDPOINT_URL) and on inventory/sandbox/docker.yml; the role_/product_/az_/dbrole_ groups
must hold the same servers. Decoys prove the production filter: an instance of another
platform (no ManagedBy tag) and a stopped one must not appear. Only this test's servers
(by name prefix) are compared: other containers may be running on the same engine.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.platform.local_moto import moto_server
from tests.support import docker

# In the sandbox's lane: its containers carry the sandbox's own labels (that is the point:
# inventory/sandbox/docker.yml must list them), so every playbook run on the sandbox sees them
# while they exist. Run beside the sandbox's tests, a `make up` of test_day_two found them
# unreachable and stopped; in the sandbox's lane they never overlap.
pytestmark = [pytest.mark.platform, pytest.mark.sandbox]
ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
IMAGE = "hostkit/os:bookworm"
REGION = "us-east-1"
GROUP_RE = re.compile(r"^(role|product|az|dbrole)_")


@dataclass(frozen=True)
class Server:
    suffix: str
    role: str
    products: str   # as tagged/labelled: comma-separated, spaces allowed
    az: str
    db_role: str = ""


SERVERS = (
    Server("web-1", "web", "hello, shop", "us-east-1a"),
    Server("db-1", "db", "hello", "us-east-1b", "master"),
    Server("mc-1", "memcached", "hello", "us-east-1c"),
)


@pytest.fixture(scope="module")
def prefix() -> str:
    return f"hkinv-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="module")
def moto_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with moto_server(tmp_path_factory.mktemp("moto") / "moto.log") as url:
        yield url


@pytest.fixture(scope="module")
def instances(moto_url: str, prefix: str) -> list[str]:
    ec2 = boto3.client("ec2", region_name=REGION, endpoint_url=moto_url,
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]

    def run(name: str, az: str, tags: dict[str, str]) -> str:
        reply = ec2.run_instances(
            ImageId=image, MinCount=1, MaxCount=1, InstanceType="t3.micro",
            Placement={"AvailabilityZone": az},
            TagSpecifications=[{"ResourceType": "instance", "Tags": [
                {"Key": k, "Value": v} for k, v in {"Name": name, **tags}.items()]}])
        return reply["Instances"][0]["InstanceId"]

    for s in SERVERS:
        run(f"{prefix}-{s.suffix}", s.az, {"ManagedBy": "hostkit", "Role": s.role,
                                           "Product": s.products, "DbRole": s.db_role})
    # Decoys: another platform's instance, and one of ours that is stopped.
    run(f"{prefix}-foreign", "us-east-1a", {"Role": "web", "Product": "hello"})
    stopped = run(f"{prefix}-stopped", "us-east-1b",
                  {"ManagedBy": "hostkit", "Role": "web", "Product": "hello"})
    ec2.stop_instances(InstanceIds=[stopped])
    return [f"{prefix}-{s.suffix}" for s in SERVERS]


@pytest.fixture(scope="module")
def containers(prefix: str) -> Iterator[list[str]]:
    if docker("image", "inspect", IMAGE, check=False).returncode != 0:
        pytest.fail(f"{IMAGE} is missing: run `make images` first")
    names = []
    try:
        for s in SERVERS:
            name = f"{prefix}-{s.suffix}"
            names.append(name)
            docker("run", "-d", "--name", name, "--hostname", name,
                   "--label", "io.hostkit.managed=true", "--label", f"io.hostkit.role={s.role}",
                   "--label", f"io.hostkit.products={s.products}",
                   "--label", f"io.hostkit.az={s.az}",
                   "--label", f"io.hostkit.db_role={s.db_role}",
                   IMAGE, "sleep", "infinity")
        yield names
    finally:
        for name in names:
            docker("rm", "-f", name, check=False)


def inventory(source: Path, workdir: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """`ansible-inventory --list` of one source, run from `workdir` so that the aws_ec2
    cache (a path relative to the working directory) stays out of the repository."""
    environ = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), **(env or {})}
    proc = subprocess.run([str(BIN / "ansible-inventory"), "-i", str(source), "--list",
                           "--flush-cache"], cwd=workdir, env=environ, text=True,
                          capture_output=True, timeout=300)
    assert proc.returncode == 0, f"ansible-inventory -i {source} failed:\n{proc.stderr}"
    return json.loads(proc.stdout)


def plain(value: Any) -> Any:
    """A host variable without the {"__ansible_unsafe": ...} wrapping of --list output."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def memberships(listing: dict[str, Any], names: set[str]) -> dict[str, set[str]]:
    """group -> this test's servers in it, for the role_/product_/az_/dbrole_ groups."""
    groups: dict[str, set[str]] = {}
    for group, body in listing.items():
        if GROUP_RE.match(group) and isinstance(body, dict):
            members = set(body.get("hosts", [])) & names
            if members:
                groups[group] = members
    return groups


def test_production_and_sandbox_inventories_make_the_same_groups(
        moto_url: str, instances: list[str], containers: list[str], prefix: str,
        tmp_path: Path) -> None:
    ec2_listing = inventory(ROOT / "inventory/production/aws_ec2.yml", tmp_path, {
        "AWS_ENDPOINT_URL": moto_url, "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION,
        "AWS_URL": moto_url})
    docker_listing = inventory(ROOT / "inventory/sandbox/docker.yml", tmp_path)

    # Instance -> container by the Name tag (the aws_ec2 host name may be either).
    ec2_hostvars = plain(ec2_listing["_meta"]["hostvars"])
    by_name = {hv.get("aws_tags", {}).get("Name", host): host
               for host, hv in ec2_hostvars.items()}
    assert f"{prefix}-foreign" not in by_name, "an instance without ManagedBy=hostkit is listed"
    assert f"{prefix}-stopped" not in by_name, "a stopped instance is listed"
    ours = set(instances)
    assert ours <= set(by_name), f"instances missing from the EC2 inventory: {ours - set(by_name)}"
    rename = {host: name for name, host in by_name.items()}
    ec2_groups = {g: {rename[h] for h in members} for g, members in
                  memberships(ec2_listing, set(by_name.values())).items()}
    ec2_groups = {g: m & ours for g, m in ec2_groups.items() if m & ours}
    docker_groups = memberships(docker_listing, set(containers))

    web, db, mc = (f"{prefix}-{s.suffix}" for s in SERVERS)
    expected = {
        "role_web": {web}, "role_db": {db}, "role_memcached": {mc},
        "product_hello": {web, db, mc}, "product_shop": {web},
        "az_us_east_1a": {web}, "az_us_east_1b": {db}, "az_us_east_1c": {mc},
        "dbrole_master": {db},
    }
    assert docker_groups == expected
    assert ec2_groups == expected

    # Both name the host the same (the global config's server id) and agree on its vars.
    assert set(by_name[n] for n in ours) == ours
    docker_hostvars = plain(docker_listing["_meta"]["hostvars"])
    for name in ours:
        for var in ("hostkit_role", "hostkit_products", "hostkit_az", "hostkit_db_role"):
            assert ec2_hostvars[name][var] == docker_hostvars[name][var], (name, var)
    assert ec2_hostvars[web]["hostkit_products"] == ["hello", "shop"]
    assert ec2_hostvars[web]["ansible_host"] == ec2_hostvars[web]["aws_private_ip_address"]
