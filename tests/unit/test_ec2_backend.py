"""The ec2 backend's whole choreography against moto (in-process, no network).

Steps run on an injected fake runner that records every script; everything AWS-side
(key pair, security group, instance, AMI, snapshots, copies, S3 manifest) is checked in
moto's state after each build.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID

from image_builders import build, manifest
from image_builders.backends import BackendError, Parent
from image_builders.backends.ec2 import (
    Ec2Backend,
    Ec2Config,
    image_tags,
    newest_first,
    parse_address,
)

REGION = "us-east-1"
COPY_REGION = "us-west-2"
BUCKET = "hostkit-manifests"
SOURCE_NAME = "CentOS Stream 9 x86_64 20240115.0"
PACKAGES = "bash\t0:5.1.8-9.el9\nopenssh-server\t0:8.7p1-38.el9\nsudo\t0:1.9.5p2-10.el9\n"
FAILING_STEP = "install -d -m 0755 /etc/hostkit"


class FakeRunner:
    """Stands in for SSHRunner: records scripts, answers the package query."""

    def __init__(self, host: str, port: int, user: str, private_key: str,
                 fail_on: str | None = None) -> None:
        self.host, self.port, self.user, self.private_key = host, port, user, private_key
        self.fail_on = fail_on
        self.scripts: list[str] = []
        self.connected = False
        self.closed = False

    def connect(self) -> None:
        self.connected = True

    def exec(self, script: str, timeout: float = 1800) -> tuple[int, str]:
        assert self.connected, "exec before connect"
        self.scripts.append(script)
        if self.fail_on is not None and self.fail_on in script:
            return 1, "mkdir: cannot create directory: Read-only file system\n"
        if script == manifest.PACKAGE_QUERY["RedHat"]:
            return 0, PACKAGES
        return 0, ""

    def close(self) -> None:
        self.closed = True


class Factory:
    """runner_factory that keeps the runners it made (and can fail on demand)."""

    def __init__(self) -> None:
        self.runners: list[FakeRunner] = []
        self.fail_on: str | None = None
        self.raise_on_create: Exception | None = None

    def __call__(self, host: str, port: int, user: str, private_key: str) -> FakeRunner:
        if self.raise_on_create is not None:
            raise self.raise_on_create
        runner = FakeRunner(host, port, user, private_key, fail_on=self.fail_on)
        self.runners.append(runner)
        return runner


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Iterator[None]:
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("HOSTKIT_STATE_DIR", str(tmp_path / "state"))
    with mock_aws():
        yield


@pytest.fixture
def source_ami(aws: None) -> str:
    """A 'CentOS Stream 9' AMI in our (moto's) account, made from a moto default AMI."""
    ec2 = boto3.client("ec2", region_name=REGION)
    stock = ec2.describe_images(
        Filters=[{"Name": "name", "Values": ["amzn2-ami-hvm*"]}])["Images"][0]["ImageId"]
    instance = ec2.run_instances(ImageId=stock, MinCount=1, MaxCount=1,
                                 InstanceType="t3.micro")["Instances"][0]["InstanceId"]
    image_id = ec2.create_image(InstanceId=instance, Name=SOURCE_NAME)["ImageId"]
    ec2.terminate_instances(InstanceIds=[instance])
    return str(image_id)


@pytest.fixture
def factory() -> Factory:
    return Factory()


@pytest.fixture
def config() -> Ec2Config:
    return Ec2Config(region=REGION, base_ami_owner=DEFAULT_ACCOUNT_ID,
                     ssh_cidr="198.51.100.7/32", waiter_delay=0.1, keep=3)


@pytest.fixture
def calls() -> list[tuple[str, dict[str, Any]]]:
    return []


def make_backend(config: Ec2Config, factory: Factory,
                 calls: list[tuple[str, dict[str, Any]]]) -> Ec2Backend:
    backend = Ec2Backend(config, runner_factory=factory, log=lambda message: None)

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        calls.append((model.name, dict(params)))

    backend.client("ec2").meta.events.register("provide-client-params.ec2.*", record)
    return backend


def quiet() -> build.Logger:
    return build.Logger(emit=lambda message: None)


def ec2() -> Any:
    return boto3.client("ec2", region_name=REGION)


def names(calls: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [name for name, _ in calls]


def our_images(region: str = REGION) -> list[dict[str, Any]]:
    client = boto3.client("ec2", region_name=region)
    return client.describe_images(
        Owners=["self"], Filters=[{"Name": "tag:ManagedBy", "Values": ["hostkit"]}])["Images"]


def tags_of(resource: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resource.get("Tags") or []}


def build_instances() -> list[dict[str, Any]]:
    reply = ec2().describe_instances(
        Filters=[{"Name": "tag:Purpose", "Values": ["image-build"]}])
    return [i for r in reply["Reservations"] for i in r["Instances"]]


def assert_no_leftovers() -> None:
    client = ec2()
    running = [i["InstanceId"] for i in build_instances()
               if i["State"]["Name"] != "terminated"]
    assert running == [], f"build instances left running: {running}"
    assert client.describe_key_pairs()["KeyPairs"] == []
    groups = [g["GroupName"] for g in client.describe_security_groups()["SecurityGroups"]]
    assert [g for g in groups if g.startswith("hostkit")] == []


# --- the happy path ------------------------------------------------------------------------
def test_build_makes_a_tagged_ami_and_cleans_up(source_ami: str, config: Ec2Config,
                                                factory: Factory, calls: list) -> None:
    config = replace(config, manifest_bucket=BUCKET, copy_to_regions=(COPY_REGION,))
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
    backend = make_backend(config, factory, calls)

    result = build.build_role("base", backend, log=quiet())

    assert result.status == "built"
    image = result.image
    assert image is not None and image.ref.startswith("ami-")
    # temporary resources: made in order, then removed
    order = names(calls)
    for earlier, later in [("CreateKeyPair", "CreateSecurityGroup"),
                           ("CreateSecurityGroup", "RunInstances"),
                           ("RunInstances", "StopInstances"),
                           ("StopInstances", "CreateImage"),
                           ("CreateImage", "TerminateInstances"),
                           ("TerminateInstances", "DeleteKeyPair"),
                           ("TerminateInstances", "DeleteSecurityGroup")]:
        assert order.index(earlier) < order.index(later), (earlier, later, order)
    ingress = dict(calls)["AuthorizeSecurityGroupIngress"]["IpPermissions"]
    assert ingress == [{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
                        "IpRanges": [{"CidrIp": "198.51.100.7/32",
                                      "Description": "hostkit image builder"}]}]
    assert_no_leftovers()

    # the instance: IMDSv2 required, tagged, launched from the source AMI, terminated
    (instance,) = build_instances()
    assert instance["ImageId"] == source_ami
    assert instance["MetadataOptions"]["HttpTokens"] == "required"
    assert instance["State"]["Name"] == "terminated"
    itags = tags_of(instance)
    assert itags["ManagedBy"] == "hostkit" and itags["Purpose"] == "image-build"
    assert itags["Name"] == f"hostkit-build-base-{image.build_id}"

    # the runner: got the instance address, the login user and the in-memory key
    (runner,) = factory.runners
    # (a terminated instance has lost its public address; it is not the private one)
    assert ipaddress.ip_address(runner.host).is_global and runner.port == 22
    assert runner.host != instance["PrivateIpAddress"]
    assert runner.user == "ec2-user" and "PRIVATE KEY" in runner.private_key
    assert runner.closed
    assert any("dnf install" in s for s in runner.scripts)
    assert any(manifest.IMAGE_MANIFEST_PATH in s for s in runner.scripts)
    assert "authorized_keys" in runner.scripts[-1]  # the build key is removed last

    # the AMI: available, named, tagged; its snapshots tagged too
    (ami,) = our_images()
    assert ami["ImageId"] == image.image_id and ami["State"] == "available"
    assert ami["Name"] == f"hostkit-base-{image.build_id}"
    tags = tags_of(ami)
    assert tags["Role"] == "base" and tags["ManagedBy"] == "hostkit"
    assert tags["BuildId"] == image.build_id and tags["SourceAMI"] == source_ami
    assert tags["CacheKey"] == image.cache_key and len(tags["CacheKey"]) == 64
    assert tags["ManifestDigest"] == image.manifest_digest and tags["GitCommit"]
    assert tags["Manifest"] == f"s3://{BUCKET}/images/base/{image.build_id}.json"
    snapshots = [m["Ebs"]["SnapshotId"] for m in ami["BlockDeviceMappings"]]
    assert snapshots
    for snap in ec2().describe_snapshots(SnapshotIds=snapshots)["Snapshots"]:
        stags = tags_of(snap)
        assert stags["Role"] == "base" and stags["BuildId"] == image.build_id
        assert stags["ManagedBy"] == "hostkit" and stags["SourceAMI"] == source_ami

    # the copy in the second region, tagged there (image and snapshots)
    (copy,) = our_images(COPY_REGION)
    assert tags_of(copy)["BuildId"] == image.build_id
    assert tags_of(copy)["CopiedFrom"] == f"{REGION}:{image.image_id}"
    assert tags["Copies"] == f"{COPY_REGION}:{copy['ImageId']}"
    west = boto3.client("ec2", region_name=COPY_REGION)
    copy_snaps = [m["Ebs"]["SnapshotId"] for m in copy["BlockDeviceMappings"]]
    for snap in west.describe_snapshots(SnapshotIds=copy_snaps)["Snapshots"]:
        assert tags_of(snap)["Role"] == "base"

    # the manifest in S3: the same document as beside the build, with packages
    body = boto3.client("s3", region_name=REGION).get_object(
        Bucket=BUCKET, Key=f"images/base/{image.build_id}.json")["Body"].read().decode()
    assert manifest.digest(body) == image.manifest_digest
    doc = json.loads(body)
    assert doc["family"] == "RedHat" and doc["backend"] == "ec2"
    assert doc["base"] == {"ref": source_ami, "id": source_ami}
    assert doc["packages"]["openssh-server"] == "0:8.7p1-38.el9"
    assert manifest.load("ec2", "base", image.build_id) == doc

    # current() and images() see it
    current = backend.current("base")
    assert current is not None and current.image_id == image.image_id
    assert current.build_id == image.build_id and current.created > 0
    assert [i.image_id for i in backend.images()] == [image.image_id]


def test_unchanged_inputs_are_up_to_date(source_ami: str, config: Ec2Config,
                                         factory: Factory, calls: list) -> None:
    backend = make_backend(config, factory, calls)
    first = build.build_role("base", backend, log=quiet())
    calls.clear()

    second = build.build_role("base", backend, log=quiet())

    assert second.status == "up to date"
    assert second.image is not None and first.image is not None
    assert second.image.image_id == first.image.image_id
    assert "RunInstances" not in names(calls) and "CreateKeyPair" not in names(calls)
    assert len(factory.runners) == 1
    assert len(our_images()) == 1


def test_role_parent_is_our_newest_ami(source_ami: str, config: Ec2Config,
                                       factory: Factory, calls: list) -> None:
    backend = make_backend(config, factory, calls)
    with pytest.raises(BackendError, match="build 'base' first"):
        backend.resolve_parent("base", lambda message: None)
    made = build.build_role("base", backend, log=quiet())
    assert made.image is not None
    parent = backend.resolve_parent("base", lambda message: None)
    assert parent == Parent(ref=made.image.image_id, image_id=made.image.image_id)


def test_base_ami_is_the_newest_match(source_ami: str, config: Ec2Config, factory: Factory,
                                      calls: list) -> None:
    client = ec2()
    stock = client.describe_images(
        Filters=[{"Name": "name", "Values": ["amzn2-ami-hvm*"]}])["Images"][0]["ImageId"]
    instance = client.run_instances(ImageId=stock, MinCount=1, MaxCount=1)["Instances"][0]
    newer = client.create_image(InstanceId=instance["InstanceId"],
                                Name="CentOS Stream 9 x86_64 20240301.0")["ImageId"]
    client.create_image(InstanceId=instance["InstanceId"], Name="Fedora-Cloud-Base-40")
    backend = make_backend(config, factory, calls)
    seen: list[str] = []

    parent = backend.resolve_parent("os", seen.append)

    assert parent.image_id == newer and parent.ref == newer
    assert "CentOS Stream 9 x86_64 20240301.0" in seen[0]
    missing = make_backend(replace(config, base_ami_name="Rocky-9-*"), factory, calls)
    with pytest.raises(BackendError, match=f"owned by {DEFAULT_ACCOUNT_ID} matches 'Rocky-9-"):
        missing.resolve_parent("os", seen.append)


# --- pruning ------------------------------------------------------------------------------
def test_prune_keeps_the_newest_and_deletes_old_snapshots(
        source_ami: str, config: Ec2Config, factory: Factory, calls: list,
        monkeypatch: pytest.MonkeyPatch) -> None:
    counter = iter(range(1, 100))
    monkeypatch.setattr(build, "new_build_id",
                        lambda key, now=None: f"202401{next(counter):02d}T000000Z-{key[:8]}")
    backend = make_backend(config, factory, calls)
    built = []
    for _ in range(4):
        result = build.build_role("base", backend, force=True, keep=2, log=quiet())
        assert result.image is not None
        built.append(result.image)
    snapshots = {i["ImageId"]: [m["Ebs"]["SnapshotId"] for m in i["BlockDeviceMappings"]]
                 for i in our_images()}

    remaining = sorted(i["ImageId"] for i in our_images())
    assert remaining == sorted(i.image_id for i in built[-2:])
    current = backend.current("base")
    assert current is not None and current.image_id == built[-1].image_id
    existing = {s["SnapshotId"] for s in ec2().describe_snapshots(OwnerIds=["self"])["Snapshots"]}
    for info in built[-2:]:
        assert set(snapshots[info.image_id]) <= existing
    deleted = [name for name, _ in calls if name == "DeleteSnapshot"]
    assert len(deleted) >= 2
    deleted_ids = {p["SnapshotId"] for n, p in calls if n == "DeleteSnapshot"}
    assert not deleted_ids & existing

    # keep=1 removes all but the newest; keep=0 still never removes the newest
    assert backend.prune("base", 1) == [built[-2].image_id]
    assert backend.prune("base", 0) == []
    assert [i["ImageId"] for i in our_images()] == [built[-1].image_id]


def test_newest_first_breaks_ties_by_name() -> None:
    images = [{"CreationDate": "2024-01-01T00:00:00.000Z", "Name": "hostkit-web-20240101T1"},
              {"CreationDate": "2024-01-01T00:00:00.000Z", "Name": "hostkit-web-20240101T2"},
              {"CreationDate": "2023-12-31T00:00:00.000Z", "Name": "hostkit-web-20240101T9"}]
    assert [i["Name"][-1] for i in newest_first(images)] == ["2", "1", "9"]


# --- failures -----------------------------------------------------------------------------
def test_failing_step_leaves_nothing_behind(source_ami: str, config: Ec2Config,
                                            factory: Factory, calls: list) -> None:
    backend = make_backend(config, factory, calls)
    good = build.build_role("base", backend, log=quiet())
    assert good.image is not None
    factory.fail_on = FAILING_STEP

    with pytest.raises(build.StepFailed) as failed:
        build.build_role("base", backend, force=True, log=quiet())

    assert failed.value.role == "base"
    assert FAILING_STEP in failed.value.label and failed.value.rc == 1
    assert "'base' failed at step" in str(failed.value)
    assert "Read-only file system" in str(failed.value)
    assert_no_leftovers()
    assert len(build_instances()) == 2  # both terminated
    assert [i["ImageId"] for i in our_images()] == [good.image.image_id]
    current = backend.current("base")
    assert current is not None and current.image_id == good.image.image_id
    assert factory.runners[-1].closed
    assert not any("authorized_keys" in s for s in factory.runners[-1].scripts)


def test_failure_while_starting_cleans_up(source_ami: str, config: Ec2Config,
                                          factory: Factory, calls: list) -> None:
    factory.raise_on_create = ConnectionRefusedError("sshd is not up")
    backend = make_backend(config, factory, calls)

    with pytest.raises(BackendError, match="could not start while connecting over SSH") as err:
        build.build_role("base", backend, log=quiet())

    assert "sshd is not up" in str(err.value)
    assert_no_leftovers()
    assert "TerminateInstances" in names(calls)
    assert our_images() == []


def test_failure_before_launch_cleans_up(source_ami: str, config: Ec2Config,
                                         factory: Factory, calls: list) -> None:
    backend = make_backend(config, factory, calls)
    backend.client("ec2").meta.events.register(
        "before-call.ec2.RunInstances", _refuse_run_instances)

    with pytest.raises(BackendError, match="while launching the build instance"):
        backend.start("base", Parent(source_ami, source_ami), "20240101T000000Z-abc")

    assert "DeleteKeyPair" in names(calls) and "DeleteSecurityGroup" in names(calls)
    assert_no_leftovers()
    assert build_instances() == []


def _refuse_run_instances(**_: Any) -> None:
    raise BackendError("InsufficientInstanceCapacity (simulated)")


def test_failure_during_commit_removes_the_new_ami(source_ami: str, config: Ec2Config,
                                                   factory: Factory, calls: list) -> None:
    config = replace(config, manifest_bucket="no-such-bucket")
    backend = make_backend(config, factory, calls)

    with pytest.raises(BackendError, match="commit of 'base' failed: NoSuchBucket"):
        build.build_role("base", backend, log=quiet())

    assert "CreateImage" in names(calls) and "DeregisterImage" in names(calls)
    assert our_images() == []
    assert_no_leftovers()


def test_discard_is_idempotent(source_ami: str, config: Ec2Config, factory: Factory,
                               calls: list) -> None:
    backend = make_backend(config, factory, calls)
    session = backend.start("base", Parent(source_ami, source_ami), "20240101T000000Z-abc")
    assert session.instance_id and session.key_name and session.group_id
    session.discard()
    session.discard()
    assert_no_leftovers()
    assert names(calls).count("TerminateInstances") == 1


def test_connect_address_override(source_ami: str, config: Ec2Config, factory: Factory,
                                  calls: list) -> None:
    backend = make_backend(replace(config, connect_address="127.0.0.1:2222"), factory, calls)
    session = backend.start("base", Parent(source_ami, source_ami), "20240101T000000Z-abc")
    try:
        assert (factory.runners[0].host, factory.runners[0].port) == ("127.0.0.1", 2222)
    finally:
        session.discard()


# --- configuration ------------------------------------------------------------------------
def test_config_from_env() -> None:
    cfg = Ec2Config.from_env({
        "HOSTKIT_EC2_REGION": "eu-west-1",
        "HOSTKIT_EC2_SSH_CIDR": "203.0.113.7/32",
        "HOSTKIT_EC2_COPY_TO_REGIONS": "eu-central-1, us-east-2",
        "HOSTKIT_EC2_KEEP": "5",
        "HOSTKIT_EC2_SSH_PRIVATE_IP": "yes",
        "HOSTKIT_EC2_MANIFEST_BUCKET": "",
    })
    assert cfg.region == "eu-west-1" and cfg.ssh_cidr == "203.0.113.7/32"
    assert cfg.copy_to_regions == ("eu-central-1", "us-east-2")
    assert cfg.keep == 5 and cfg.ssh_private_ip is True and cfg.manifest_bucket is None
    defaults = Ec2Config.from_env({})
    assert defaults.base_ami_owner == "125523088429"
    assert defaults.base_ami_name == "CentOS Stream 9 x86_64*"
    assert (defaults.instance_type, defaults.ssh_user, defaults.family) == (
        "t3.small", "ec2-user", "RedHat")
    with pytest.raises(BackendError, match="HOSTKIT_EC2_KEEP"):
        Ec2Config.from_env({"HOSTKIT_EC2_KEEP": "many"})


@pytest.mark.parametrize("cidr, message", [
    (None, "SSH_CIDR is not set"),
    ("0.0.0.0/0", "whole internet"),
    ("::/0", "whole internet"),
    ("not-a-range", "not an address range"),
])
def test_ssh_cidr_is_required_and_narrow(cidr: str | None, message: str) -> None:
    with pytest.raises(BackendError, match=message):
        Ec2Config(ssh_cidr=cidr).validate_for_build()


def test_start_refuses_without_ssh_cidr(source_ami: str, config: Ec2Config,
                                        factory: Factory, calls: list) -> None:
    backend = make_backend(replace(config, ssh_cidr=None), factory, calls)
    with pytest.raises(BackendError, match="SSH_CIDR"):
        backend.start("base", Parent(source_ami, source_ami), "20240101T000000Z-abc")
    assert calls == []


def test_parse_address() -> None:
    assert parse_address("10.0.0.5") == ("10.0.0.5", 22)
    assert parse_address("127.0.0.1:2222") == ("127.0.0.1", 2222)
    assert parse_address("[::1]:2200") == ("::1", 2200)
    with pytest.raises(BackendError):
        parse_address("host:port")


def test_image_tags_map_the_build_labels() -> None:
    labels = {"io.hostkit.role": "web", "io.hostkit.build-id": "B", "io.hostkit.cache-key": "K",
              "io.hostkit.manifest-digest": "D", "io.hostkit.git-commit": "G",
              "io.hostkit.parent": "ami-parent"}
    assert image_tags("web", "B", labels, "ami-parent") == {
        "Name": "hostkit-web-B", "ManagedBy": "hostkit", "Role": "web", "BuildId": "B",
        "SourceAMI": "ami-parent", "CacheKey": "K", "ManifestDigest": "D", "GitCommit": "G",
        "Parent": "ami-parent"}


def test_manifest_is_read_back_from_s3(source_ami: str, config: Ec2Config, factory: Factory,
                                       calls: list) -> None:
    config = replace(config, manifest_bucket=BUCKET)
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
    backend = make_backend(config, factory, calls)
    image = build.build_role("base", backend, log=quiet()).image
    assert image is not None
    text = backend.read_manifest(image)
    assert text is not None and json.loads(text)["build_id"] == image.build_id
    missing = replace(image, build_id="20000101T000000Z-00000000")
    assert backend.read_manifest(missing) is None
    assert make_backend(replace(config, manifest_bucket=None), factory, calls).read_manifest(
        image) is None
