"""The provider step's fence entry point on EC2 (moto server): isolate, then stop."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.unit.test_provider_ec2 import client, endpoint, include, play, world  # noqa: F401

DB = {"name": "hostkit-db-7", "role": "db", "products": ["hello"], "az": "us-east-1a",
      "db_role": "master"}


def _instance(url: str) -> dict[str, Any]:
    reply = client("ec2", url).describe_instances(Filters=[
        {"Name": "tag:Name", "Values": [DB["name"]]}])
    return [i for r in reply["Reservations"] for i in r["Instances"]][0]


def test_fence_swaps_the_groups_then_stops_and_a_rerun_is_quiet(
        tmp_path: Path, endpoint: str, world: dict[str, str]) -> None:  # noqa: F811
    ec2 = client("ec2", endpoint)
    vpc = ec2.describe_subnets(SubnetIds=[world["subnet_a"]])["Subnets"][0]["VpcId"]
    db_sg = ec2.create_security_group(GroupName="db-fence", Description="db",
                                      VpcId=vpc)["GroupId"]
    iso = ec2.create_security_group(GroupName="isolation-fence", Description="nothing",
                                    VpcId=vpc)["GroupId"]
    seed = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)["Instances"][0]
    image = ec2.create_image(InstanceId=seed["InstanceId"], Name="hostkit-db-1")["ImageId"]
    ec2.create_tags(Resources=[image], Tags=[{"Key": "ManagedBy", "Value": "hostkit"},
                                             {"Key": "Role", "Value": "db"}])
    create = include("create", provider_instance=DB,
                     provider_ec2_security_groups={"db": [db_sg]})
    assert play(tmp_path, endpoint, world, [create]).returncode == 0
    assert [g["GroupId"] for g in _instance(endpoint)["SecurityGroups"]] == [db_sg]
    fence = include("fence", provider_instance={"name": DB["name"]},
                    provider_ec2_isolation_group=iso)
    for _ in range(2):
        result = play(tmp_path, endpoint, world, [fence])
        assert result.returncode == 0, result.stdout[-3000:]
    instance = _instance(endpoint)
    assert [g["GroupId"] for g in instance["SecurityGroups"]] == [iso]
    assert instance["State"]["Name"] in ("stopping", "stopped")


def test_fence_without_isolation_group_changes_nothing(
        tmp_path: Path, endpoint: str, world: dict[str, str]) -> None:  # noqa: F811
    result = play(tmp_path, endpoint, world,
                  [include("fence", provider_instance={"name": "hostkit-db-8"})])
    assert result.returncode != 0
    assert "provider_ec2_isolation_group (a security group that admits nothing)" in result.stdout
