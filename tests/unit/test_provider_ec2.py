"""The provider step's EC2 and Route53 calls, run by Ansible against a moto server.

The role's tasks (amazon.aws.ec2_ami_info, ec2_instance, route53_info, route53) run for
real; moto stands in for AWS on a free port of 127.0.0.1. Nothing boots: EC2 instances
are records, which is all the provider step needs from the API.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
REGION = "us-east-1"
KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("moto_server did not start")
    yield url
    proc.terminate()
    proc.wait(timeout=10)


def client(service: str, url: str) -> Any:
    return boto3.client(service, endpoint_url=url, region_name=REGION,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


@pytest.fixture(scope="module")
def world(endpoint: str) -> dict[str, str]:
    """A VPC with one subnet per zone, a web image tagged as the builders tag it, a zone."""
    ec2 = client("ec2", endpoint)
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    subnets = {}
    for index, zone in enumerate(["us-east-1a", "us-east-1b"]):
        subnets[zone] = ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.20.{index}.0/24",
                                          AvailabilityZone=zone)["Subnet"]["SubnetId"]
    seed = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)
    image = ec2.create_image(InstanceId=seed["Instances"][0]["InstanceId"], Name="hostkit-web-1")
    ec2.create_tags(Resources=[image["ImageId"]], Tags=[{"Key": "ManagedBy", "Value": "hostkit"},
                                                        {"Key": "Role", "Value": "web"}])
    ec2.terminate_instances(InstanceIds=[seed["Instances"][0]["InstanceId"]])
    zone = client("route53", endpoint).create_hosted_zone(
        Name="sandbox.test.", CallerReference=str(time.time()))["HostedZone"]["Id"]
    return {"subnet_a": subnets["us-east-1a"], "subnet_b": subnets["us-east-1b"],
            "image": image["ImageId"], "zone": zone.split("/")[-1]}


def play(tmp_path: Path, endpoint: str, world: dict[str, str], tasks: list[dict[str, Any]],
         ) -> subprocess.CompletedProcess[str]:
    book = [{
        "name": "provider ec2", "hosts": "localhost", "connection": "local",
        "gather_facts": False,
        "vars": {
            "provider_name": "ec2", "provider_ec2_endpoint_url": endpoint,
            "provider_ec2_subnets": {"us-east-1a": world["subnet_a"],
                                     "us-east-1b": world["subnet_b"]},
            "provider_route53_zone": world["zone"],
        },
        "tasks": tasks,
    }]
    path = tmp_path / "book.yml"
    path.write_text(json.dumps(book))
    (tmp_path / "none.ini").write_text("")
    env = {**os.environ, **KEYS, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
           "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.default"}
    # The implicit localhost runs modules with this very Python (the venv's boto3).
    return subprocess.run([str(BIN / "ansible-playbook"), "-i", str(tmp_path / "none.ini"),
                           str(path)],
                          text=True, capture_output=True, cwd=ROOT, env=env, timeout=300)


def include(entry: str, **variables: Any) -> dict[str, Any]:
    return {"name": f"provider {entry}",
            "ansible.builtin.include_role": {"name": "provider", "tasks_from": entry},
            "vars": variables}


WEB = {"name": "hostkit-web-7", "role": "web", "products": ["hello", "shop"], "az": "us-east-1b"}


def instances(endpoint: str, name: str) -> list[dict[str, Any]]:
    reply = client("ec2", endpoint).describe_instances(Filters=[
        {"Name": "tag:Name", "Values": [name]},
        {"Name": "instance-state-name", "Values": ["pending", "running"]}])
    return [i for r in reply["Reservations"] for i in r["Instances"]]


def test_create_runs_one_tagged_instance_with_imdsv2_and_a_rerun_adds_none(
        tmp_path: Path, endpoint: str, world: dict[str, str]) -> None:
    for _ in range(2):
        result = play(tmp_path, endpoint, world, [include("create", provider_instance=WEB)])
        assert result.returncode == 0, result.stdout[-3000:]
    found = instances(endpoint, WEB["name"])
    assert len(found) == 1
    instance = found[0]
    tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
    assert tags == {"Name": "hostkit-web-7", "ManagedBy": "hostkit", "Role": "web",
                    "Product": "hello,shop", "DbRole": ""}
    assert instance["ImageId"] == world["image"]
    assert instance["SubnetId"] == world["subnet_b"]
    assert instance["Placement"]["AvailabilityZone"] == "us-east-1b"
    assert instance["MetadataOptions"]["HttpTokens"] == "required"


def test_destroy_terminates_it(tmp_path: Path, endpoint: str, world: dict[str, str]) -> None:
    victim = {**WEB, "name": "hostkit-web-8"}
    assert play(tmp_path, endpoint, world,
                [include("create", provider_instance=victim)]).returncode == 0
    assert len(instances(endpoint, "hostkit-web-8")) == 1
    result = play(tmp_path, endpoint, world,
                  [include("destroy", provider_instance={"name": "hostkit-web-8"})])
    assert result.returncode == 0, result.stdout[-3000:]
    assert instances(endpoint, "hostkit-web-8") == []


def test_a_zone_without_subnet_stops_before_any_call(
        tmp_path: Path, endpoint: str, world: dict[str, str]) -> None:
    result = play(tmp_path, endpoint, world, [include(
        "create", provider_instance={**WEB, "name": "hostkit-web-9", "az": "us-east-1f"})])
    assert result.returncode != 0
    assert "no subnet for availability zone us-east-1f" in result.stdout
    assert instances(endpoint, "hostkit-web-9") == []


def records(endpoint: str, zone: str) -> dict[tuple[str, str], list[str]]:
    sets = client("route53", endpoint).list_resource_record_sets(HostedZoneId=zone)
    return {(rs["Name"], rs["SetIdentifier"]): [r["Value"] for r in rs["ResourceRecords"]]
            for rs in sets["ResourceRecordSets"] if rs["Type"] == "A"}


def site(*servers: tuple[str, str]) -> list[dict[str, Any]]:
    return [{"name": "hello", "domains": ["hello.sandbox.test", "www.hello.sandbox.test"],
             "healthcheck": "/healthz",
             "servers": [{"name": n, "address": a} for n, a in servers]}]


def test_publish_writes_multivalue_records_and_removes_stale_ones(
        tmp_path: Path, endpoint: str, world: dict[str, str]) -> None:
    two = site(("hostkit-web-1", "10.20.0.5"), ("hostkit-web-2", "10.20.1.6"))
    result = play(tmp_path, endpoint, world, [include("publish", provider_publish_sites=two)])
    assert result.returncode == 0, result.stdout[-3000:]
    assert records(endpoint, world["zone"]) == {
        ("hello.sandbox.test.", "hostkit-web-1"): ["10.20.0.5"],
        ("hello.sandbox.test.", "hostkit-web-2"): ["10.20.1.6"],
        ("www.hello.sandbox.test.", "hostkit-web-1"): ["10.20.0.5"],
        ("www.hello.sandbox.test.", "hostkit-web-2"): ["10.20.1.6"],
    }
    one = site(("hostkit-web-2", "10.20.1.6"))
    result = play(tmp_path, endpoint, world, [include("publish", provider_publish_sites=one)])
    assert result.returncode == 0, result.stdout[-3000:]
    assert records(endpoint, world["zone"]) == {
        ("hello.sandbox.test.", "hostkit-web-2"): ["10.20.1.6"],
        ("www.hello.sandbox.test.", "hostkit-web-2"): ["10.20.1.6"],
    }
