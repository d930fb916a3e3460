"""host_programs/failover/fence.py: fencing through the docker engine's API and through
EC2 (moto)."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from moto import mock_aws

from host_programs.failover import fence


class FakeEngine:
    """Answers the docker engine API calls DockerFence makes."""

    def __init__(self) -> None:
        self.containers: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, str, Any]] = []

    def add(self, name: str, networks: list[str], running: bool = True,
            paused: bool = False) -> None:
        self.containers[name] = {"networks": list(networks), "running": running,
                                 "paused": paused}

    def connection(self) -> FakeHTTP:
        return FakeHTTP(self)


class FakeResponse:
    def __init__(self, status: int, body: Any) -> None:
        self.status = status
        self._body = b"" if body is None else json.dumps(body).encode()

    def read(self) -> bytes:
        return self._body


class FakeHTTP:
    def __init__(self, engine: FakeEngine) -> None:
        self.engine = engine
        self.reply: FakeResponse | None = None

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: Any = None) -> None:
        payload = json.loads(body) if body else None
        self.engine.calls.append((method, path, payload))
        assert path.startswith(fence.DOCKER_API)
        path = path[len(fence.DOCKER_API):]
        containers = self.engine.containers
        if method == "GET" and path.startswith("/containers/"):
            name = path.split("/")[2]
            c = containers.get(name)
            self.reply = FakeResponse(404, {"message": f"No such container: {name}"}) \
                if c is None else FakeResponse(200, {
                    "State": {"Running": c["running"], "Paused": c["paused"]},
                    "NetworkSettings": {"Networks": {n: {} for n in c["networks"]}}})
        elif method == "POST" and path.endswith("/disconnect"):
            network, name = path.split("/")[2], payload["Container"]
            if network not in containers[name]["networks"]:
                self.reply = FakeResponse(403, {"message": f"container {name} is not "
                                                           f"connected to network {network}"})
            else:
                containers[name]["networks"].remove(network)
                self.reply = FakeResponse(200, None)
        elif method == "POST" and "/kill" in path:
            name = path.split("/")[2]
            containers[name]["running"] = containers[name]["paused"] = False
            self.reply = FakeResponse(204, None)
        else:
            self.reply = FakeResponse(500, {"message": f"unexpected {method} {path}"})

    def getresponse(self) -> FakeResponse:
        assert self.reply is not None
        return self.reply

    def close(self) -> None:
        pass


def test_docker_isolate_and_power_off_are_idempotent() -> None:
    engine = FakeEngine()
    engine.add("hostkit-db-1", ["hostkit", "extra"], paused=True)
    docker = fence.DockerFence(connection_factory=engine.connection)
    assert docker.isolate("hostkit-db-1") == ("container 'hostkit-db-1' disconnected from "
                                              "extra, hostkit")
    assert engine.containers["hostkit-db-1"]["networks"] == []
    assert "on no network already" in docker.isolate("hostkit-db-1")
    assert docker.power_off("hostkit-db-1") == "container 'hostkit-db-1' killed (it was paused)"
    assert "is not running" in docker.power_off("hostkit-db-1")
    assert "does not exist" in docker.isolate("hostkit-db-9")
    assert ("POST", "/v1.41/networks/hostkit/disconnect",
            {"Container": "hostkit-db-1", "Force": True}) in engine.calls


def test_docker_errors_name_the_container() -> None:
    engine = FakeEngine()
    engine.add("hostkit-db-1", ["hostkit"])

    class Broken(FakeHTTP):
        def request(self, method: str, path: str, body: bytes | None = None,
                    headers: Any = None) -> None:
            if method == "POST":
                self.reply = FakeResponse(500, {"message": "engine on fire"})
            else:
                super().request(method, path, body, headers)

    docker = fence.DockerFence(connection_factory=lambda: Broken(engine))
    with pytest.raises(fence.FenceError, match="cannot disconnect 'hostkit-db-1' from network "
                                               "'hostkit': engine on fire"):
        docker.isolate("hostkit-db-1")
    with pytest.raises(fence.FenceError, match="docker engine at /nonexistent"):
        fence.DockerFence("/nonexistent/docker.sock", timeout=0.5).isolate("x")


@pytest.fixture
def ec2() -> Any:
    with mock_aws():
        client = boto3.client("ec2", region_name="us-east-1")
        vpc = client.describe_vpcs()["Vpcs"][0]["VpcId"]
        db_sg = client.create_security_group(GroupName="db", Description="db",
                                             VpcId=vpc)["GroupId"]
        iso = client.create_security_group(GroupName="isolation", Description="nothing",
                                           VpcId=vpc)["GroupId"]
        image = "ami-12c6146b"
        client.run_instances(ImageId=image, MinCount=1, MaxCount=1, SecurityGroupIds=[db_sg],
                             TagSpecifications=[{"ResourceType": "instance", "Tags": [
                                 {"Key": "Name", "Value": "hostkit-db-1"},
                                 {"Key": "ManagedBy", "Value": "hostkit"}]}])
        yield client, db_sg, iso


def _instance(client: Any) -> dict[str, Any]:
    return client.describe_instances(Filters=[{"Name": "tag:Name",
                                               "Values": ["hostkit-db-1"]}])[
        "Reservations"][0]["Instances"][0]


def test_ec2_isolate_swaps_the_security_groups_then_power_off_stops(ec2: Any) -> None:
    client, db_sg, iso = ec2
    ec2_fence = fence.Ec2Fence(client, iso)
    assert f"{db_sg} replaced by {iso}" in ec2_fence.isolate("hostkit-db-1")
    assert [g["GroupId"] for g in _instance(client)["SecurityGroups"]] == [iso]
    assert "isolated already" in ec2_fence.isolate("hostkit-db-1")
    assert "stopping (forced)" in ec2_fence.power_off("hostkit-db-1")
    assert _instance(client)["State"]["Name"] in ("stopping", "stopped")
    assert "no instance named 'hostkit-db-7'" in ec2_fence.isolate("hostkit-db-7")


def test_ec2_needs_an_isolation_group_and_unique_names(ec2: Any) -> None:
    client, db_sg, iso = ec2
    with pytest.raises(fence.FenceError, match="isolation security group"):
        fence.Ec2Fence(client, "")
    image = "ami-12c6146b"
    client.run_instances(ImageId=image, MinCount=1, MaxCount=1, TagSpecifications=[{
        "ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "hostkit-db-1"},
                                             {"Key": "ManagedBy", "Value": "hostkit"}]}])
    with pytest.raises(fence.FenceError, match="more than one instance is named"):
        fence.Ec2Fence(client, iso).isolate("hostkit-db-1")


def test_make_fencer() -> None:
    assert isinstance(fence.make_fencer({}), fence.NoFence)
    assert fence.make_fencer({"method": "docker", "socket": "/x.sock"}).socket_path == "/x.sock"
    with pytest.raises(fence.FenceError, match="'magic' is not one of"):
        fence.make_fencer({"method": "magic"})
    with pytest.raises(fence.FenceError, match="cannot isolate 'db-1'"):
        fence.NoFence().isolate("db-1")
    assert not fence.NoFence().isolates
