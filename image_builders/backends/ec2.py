"""The ec2 backend: production AMIs, one per role, baked on a short-lived build instance.

A build goes like this (image_builders.build drives it through the Backend protocol):

1. `resolve_parent` finds the parent AMI: for "os" the newest distribution AMI matching an
   owner and a name pattern (CentOS Stream 9 by default), for a role the newest AMI of
   ours tagged with that role.
2. `start` makes a temporary key pair (its private key lives in memory only) and a
   temporary security group that admits tcp/22 from `ssh_cidr` only, launches one instance
   from the parent with IMDSv2 required, waits for it to run and for SSH to answer.
3. Every step runs over SSH as root (`sudo -n sh -eu`, see image_builders.backends.ssh).
4. `commit` removes the temporary key from the instance, stops it, creates the AMI, tags
   the AMI and its EBS snapshots (Role, BuildId, CacheKey, ManifestDigest, GitCommit,
   SourceAMI, ManagedBy=hostkit), optionally copies it to more regions and uploads the
   manifest to S3. A failure after the AMI exists deregisters it again, so a build either
   leaves one complete, tagged AMI or none.
5. `discard` (always called, on success and failure) terminates the instance and deletes
   the key pair and the security group. It is idempotent.

Our AMIs are found by tags, never by name: ManagedBy=hostkit and Role=<role>; the newest
available one (by CreationDate) is the role's current image.

Configuration comes from HOSTKIT_EC2_* environment variables (see `Ec2Config.from_env`);
credentials come from boto3's usual chain, and AWS_ENDPOINT_URL is honoured by boto3.
"""

from __future__ import annotations

import calendar
import ipaddress
import logging
import math
import os
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Protocol

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from image_builders.backends import LABEL_PREFIX, BackendError, ImageInfo, Parent
from image_builders.manifest import PACKAGE_QUERY
from image_builders.recipe import OS_PARENT
from module_utils.aws import aws_client

ENV_PREFIX = "HOSTKIT_EC2_"
MANAGED_BY = "hostkit"
CENTOS_OWNER = "125523088429"  # the CentOS project's AWS account (official Stream AMIs)
CENTOS_STREAM_9 = "CentOS Stream 9 x86_64*"
# io.hostkit.<label> -> AMI/snapshot tag key
LABEL_TAGS = {
    "role": "Role",
    "build-id": "BuildId",
    "cache-key": "CacheKey",
    "manifest-digest": "ManifestDigest",
    "git-commit": "GitCommit",
}
AWS_ERRORS = (ClientError, BotoCoreError)
GONE_CODES = {
    "InvalidInstanceID.NotFound", "InvalidKeyPair.NotFound", "InvalidGroup.NotFound",
    "InvalidAMIID.NotFound", "InvalidAMIID.Unavailable", "InvalidSnapshot.NotFound",
}

logger = logging.getLogger(__name__)


class StepRunner(Protocol):
    """Runs step scripts as root on the build instance (SSHRunner in production)."""

    def connect(self) -> None: ...

    def exec(self, script: str, timeout: float = 1800) -> tuple[int, str]: ...

    def close(self) -> None: ...


# runner_factory(host, port, user, private_key_text) -> StepRunner
RunnerFactory = Callable[[str, int, str, str], StepRunner]
LogFn = Callable[[str], None]


# --- configuration ---------------------------------------------------------------------
@dataclass(frozen=True)
class Ec2Config:
    """Where and how AMIs are built. Every field has an HOSTKIT_EC2_<FIELD> variable.

    `ssh_cidr` has no default on purpose: the temporary security group admits SSH from
    that range only, and it must be the builder's own address (e.g. "203.0.113.7/32") or
    its VPC range when it builds from inside AWS. A world-open range is refused.
    """

    region: str = "us-east-1"
    base_ami_owner: str = CENTOS_OWNER
    base_ami_name: str = CENTOS_STREAM_9
    architecture: str = "x86_64"
    family: str = "RedHat"  # OS family of the base AMI (selects package names)
    instance_type: str = "t3.small"
    subnet_id: str | None = None  # default: a default subnet of the default VPC
    ssh_user: str = "ec2-user"  # the login user of CentOS Stream cloud images
    ssh_cidr: str | None = None
    ssh_private_ip: bool = False  # connect to the private IP (builder inside the VPC)
    ssh_wait: float = 600.0  # seconds to wait for sshd on a new instance
    connect_address: str | None = None  # "host:port" to SSH to instead (tests)
    key_type: str = "ed25519"
    instance_profile: str | None = None  # name or ARN
    copy_to_regions: tuple[str, ...] = ()
    keep: int = 3
    manifest_bucket: str | None = None
    endpoint_url: str | None = None
    waiter_delay: float = 15.0
    instance_timeout: float = 900.0
    image_timeout: float = 3600.0
    # The instance shuts itself down (and so terminates) after this long even if the
    # builder dies without cleaning up; 0 disables the guard.
    max_lifetime_minutes: int = 240

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Ec2Config:
        """Read HOSTKIT_EC2_* variables (unset or empty ones keep their default)."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper(), "").strip()
            if raw:
                values[f.name] = _parse_field(f.name, str(f.type), raw)
        return cls(**values)

    def validate_for_build(self) -> None:
        """Check what a build (not a listing) needs; raise BackendError naming the variable."""
        if self.family not in PACKAGE_QUERY:
            raise BackendError(f"{ENV_PREFIX}FAMILY must be one of {sorted(PACKAGE_QUERY)}, "
                               f"not '{self.family}'")
        if not self.ssh_cidr:
            raise BackendError(
                f"{ENV_PREFIX}SSH_CIDR is not set: give the address range the builder "
                "connects from (e.g. your public IP as a.b.c.d/32); the temporary security "
                "group admits SSH from that range only")
        ssh_network(self.ssh_cidr)


def _parse_field(name: str, kind: str, raw: str) -> Any:
    variable = ENV_PREFIX + name.upper()
    try:
        if kind == "bool":
            return raw.lower() in ("1", "true", "yes", "on")
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
    except ValueError:
        raise BackendError(f"{variable}={raw!r} is not a number") from None
    if kind.startswith("tuple"):
        return tuple(r for r in raw.replace(",", " ").split() if r)
    return raw


def ssh_network(cidr: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """The SSH source range, refusing malformed and world-open ones."""
    try:
        network = ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        raise BackendError(f"{ENV_PREFIX}SSH_CIDR={cidr!r} is not an address range") from None
    if network.prefixlen == 0:
        raise BackendError(f"{ENV_PREFIX}SSH_CIDR={cidr} would open SSH to the whole "
                           "internet; give the builder's own range")
    return network


def parse_address(text: str, default_port: int = 22) -> tuple[str, int]:
    """'host', 'host:port' or '[v6]:port' -> (host, port)."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.lstrip(":")
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host, port = text, ""
    try:
        return host, int(port) if port else default_port
    except ValueError:
        raise BackendError(f"bad address {text!r}: expected host or host:port") from None


# --- small helpers over EC2 data ----------------------------------------------------------
def tag_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def tag_dict(resource: Mapping[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resource.get("Tags") or []}


def creation_time(image: Mapping[str, Any]) -> float:
    """An AMI's CreationDate ('2024-01-02T03:04:05.000Z') as epoch seconds."""
    try:
        return float(calendar.timegm(time.strptime(image["CreationDate"][:19],
                                                   "%Y-%m-%dT%H:%M:%S")))
    except (KeyError, ValueError):
        return 0.0


def newest_first(images: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Newest first by CreationDate; the name breaks ties (ours embed the build id)."""
    return sorted(images, key=lambda i: (i.get("CreationDate", ""), i.get("Name", "")),
                  reverse=True)


def snapshot_ids(image: Mapping[str, Any]) -> list[str]:
    return [m["Ebs"]["SnapshotId"] for m in image.get("BlockDeviceMappings") or []
            if m.get("Ebs", {}).get("SnapshotId")]


def image_info(image: Mapping[str, Any], region: str) -> ImageInfo:
    tags = tag_dict(image)
    extra = {"name": image.get("Name", ""), "region": region,
             "source_ami": tags.get("SourceAMI", "")}
    for key in ("Copies", "Manifest"):
        if key in tags:
            extra[key.lower()] = tags[key]
    return ImageInfo(
        role=tags.get("Role", ""), ref=image["ImageId"], image_id=image["ImageId"],
        build_id=tags.get("BuildId", ""), cache_key=tags.get("CacheKey", ""),
        created=creation_time(image), manifest_digest=tags.get("ManifestDigest", ""),
        git_commit=tags.get("GitCommit", ""), extra=extra,
    )


def error_code(exc: BaseException) -> str:
    return exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else ""


def describe(exc: BaseException) -> str:
    """A one-line reason for an AWS or other failure."""
    if isinstance(exc, BackendError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def image_tags(role: str, build_id: str, labels: Mapping[str, str],
               source_ami: str) -> dict[str, str]:
    """The tags of a new AMI and its snapshots, mapped from the build's io.hostkit labels."""
    tags = {"Name": f"hostkit-{role}-{build_id}", "ManagedBy": MANAGED_BY, "Role": role,
            "BuildId": build_id, "SourceAMI": source_ami}
    for label, key in LABEL_TAGS.items():
        value = labels.get(f"{LABEL_PREFIX}.{label}")
        if value:
            tags[key] = value[:256]
    if labels.get(f"{LABEL_PREFIX}.parent"):
        tags["Parent"] = labels[f"{LABEL_PREFIX}.parent"][:256]
    return tags


# --- the build session ----------------------------------------------------------------------
@dataclass
class Ec2Session:
    """One build instance and the temporary resources around it."""

    backend: Ec2Backend
    role: str
    build_id: str
    parent: Parent
    key_name: str | None = None
    group_id: str | None = None
    instance_id: str | None = None
    runner: StepRunner | None = None
    images: list[tuple[str, str]] = field(default_factory=list)  # (region, AMI) made

    @property
    def config(self) -> Ec2Config:
        return self.backend.config

    @property
    def ec2(self) -> Any:
        return self.backend.client("ec2")

    def say(self, message: str) -> None:
        self.backend.log(f"[{self.role}] ec2: {message}")

    @property
    def resource_name(self) -> str:
        return f"hostkit-build-{self.role}-{self.build_id}"

    # --- start phases (called by Ec2Backend.start) -------------------------------------
    def create_key_pair(self) -> str:
        """Make the temporary key pair; return its private key (kept in memory only)."""
        name = f"{self.resource_name}-{secrets.token_hex(3)}"
        reply = self.ec2.create_key_pair(
            KeyName=name, KeyType=self.config.key_type,
            TagSpecifications=[{"ResourceType": "key-pair",
                                "Tags": tag_list(self.backend.build_tags(self))}])
        self.key_name = name
        return str(reply["KeyMaterial"])

    def create_security_group(self, vpc_id: str) -> None:
        """Make the temporary security group: tcp/22 from ssh_cidr only."""
        network = ssh_network(str(self.config.ssh_cidr))
        reply = self.ec2.create_security_group(
            GroupName=f"{self.resource_name}-{secrets.token_hex(3)}",
            Description=f"hostkit image build {self.role} {self.build_id} (temporary)",
            VpcId=vpc_id,
            TagSpecifications=[{"ResourceType": "security-group",
                                "Tags": tag_list(self.backend.build_tags(self))}])
        self.group_id = reply["GroupId"]
        ranges_key, cidr_key = (("IpRanges", "CidrIp") if network.version == 4
                                else ("Ipv6Ranges", "CidrIpv6"))
        self.ec2.authorize_security_group_ingress(
            GroupId=self.group_id,
            IpPermissions=[{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
                            ranges_key: [{cidr_key: str(network),
                                          "Description": "hostkit image builder"}]}])

    def launch(self, subnet_id: str) -> None:
        """Run the build instance from the parent AMI (IMDSv2 required)."""
        tags = tag_list(self.backend.build_tags(self))
        params: dict[str, Any] = {
            "ImageId": self.parent.image_id, "InstanceType": self.config.instance_type,
            "MinCount": 1, "MaxCount": 1, "KeyName": self.key_name,
            "SubnetId": subnet_id, "SecurityGroupIds": [self.group_id],
            "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled",
                                "HttpPutResponseHopLimit": 1},
            "InstanceInitiatedShutdownBehavior": "terminate",
            "TagSpecifications": [{"ResourceType": "instance", "Tags": tags},
                                  {"ResourceType": "volume", "Tags": tags}],
        }
        if self.config.max_lifetime_minutes > 0:
            params["UserData"] = ("#!/bin/sh\n"
                                  f"shutdown -h +{int(self.config.max_lifetime_minutes)} "
                                  "'hostkit image build time limit'\n")
        profile = self.config.instance_profile
        if profile:
            params["IamInstanceProfile"] = ({"Arn": profile} if profile.startswith("arn:")
                                            else {"Name": profile})
        reply = self.ec2.run_instances(**params)
        self.instance_id = reply["Instances"][0]["InstanceId"]
        self.say(f"launched {self.instance_id} ({self.config.instance_type}) "
                 f"from {self.parent.image_id}")

    def wait_running(self) -> tuple[str, int]:
        """Wait until the instance runs; return the address SSH should use."""
        self.backend.wait(self.ec2, "instance_running", self.config.instance_timeout,
                          InstanceIds=[self.instance_id])
        if self.config.connect_address:
            return parse_address(self.config.connect_address)
        reply = self.ec2.describe_instances(InstanceIds=[self.instance_id])
        instance = reply["Reservations"][0]["Instances"][0]
        key = "PrivateIpAddress" if self.config.ssh_private_ip else "PublicIpAddress"
        host = instance.get(key)
        if not host:
            raise BackendError(
                f"instance {self.instance_id} has no {key}: use a subnet that assigns public "
                f"addresses, or set {ENV_PREFIX}SSH_PRIVATE_IP=1 when building from the VPC")
        return str(host), 22

    def connect(self, host: str, port: int, private_key: str) -> None:
        self.runner = self.backend.make_runner(host, port, private_key)
        self.runner.connect()
        self.say(f"SSH to {self.config.ssh_user}@{host}:{port} is up")

    # --- the Session protocol --------------------------------------------------------------
    def exec(self, script: str, timeout: float = 1800) -> tuple[int, str]:
        if self.runner is None:
            raise BackendError(f"the build instance of '{self.role}' is not connected")
        return self.runner.exec(script, timeout)

    def commit(self, role: str, build_id: str, labels: dict[str, str],
               manifest_json: str) -> ImageInfo:
        """Stop the instance, make the AMI, tag it and its snapshots, copy it, upload the
        manifest. Any failure after the AMI exists removes it again."""
        self._forget_build_key()
        self._stop()
        tags = image_tags(role, build_id, labels, self.parent.image_id)
        try:
            image_id = self._create_image(role, build_id, tags)
            self._finish_image(self.ec2, self.config.region, image_id, tags)
            copies = self._copy(image_id, tags)
            extra = {}
            if copies:
                extra["Copies"] = " ".join(f"{r}:{a}" for r, a in copies)[:256]
            if self.config.manifest_bucket:
                extra["Manifest"] = self._upload_manifest(role, build_id, manifest_json)
            if extra:
                self.ec2.create_tags(Resources=[image_id], Tags=tag_list(extra))
            image = self.backend.describe_image(self.ec2, image_id)
        except Exception as exc:
            self.say(f"commit failed, removing the new AMI(s): {describe(exc)}")
            self._remove_images()
            if isinstance(exc, BackendError):
                raise
            raise BackendError(f"ec2 commit of '{role}' failed: {describe(exc)}") from exc
        return image_info(image, self.config.region)

    def discard(self) -> None:
        """Terminate the instance, delete the key pair and the security group. Idempotent;
        raises BackendError naming whatever could not be removed."""
        if self.runner is not None:
            try:
                self.runner.close()
            except Exception as exc:  # closing a dead connection must not stop cleanup
                logger.debug("closing the runner failed: %s", exc)
            self.runner = None
        problems = [p for p in (self._terminate(), self._delete_key_pair(),
                                self._delete_security_group()) if p]
        if problems:
            raise BackendError(f"cleanup after the ec2 build of '{self.role}' left resources "
                               f"behind (delete them by hand): {'; '.join(problems)}")

    # --- commit phases -------------------------------------------------------------------
    def _forget_build_key(self) -> None:
        """Remove the temporary public key from the login user's authorized_keys, so the
        AMI holds no build credential, and close the connection."""
        script = (f'home=$(getent passwd {self.config.ssh_user} | cut -d: -f6)\n'
                  'if [ -n "$home" ]; then rm -f "$home/.ssh/authorized_keys"; fi\n')
        rc, output = self.exec(script, timeout=120)
        if rc != 0:
            raise BackendError(f"could not remove the build key from the instance: {output}")
        if self.runner is not None:
            self.runner.close()

    def _stop(self) -> None:
        try:
            self.ec2.stop_instances(InstanceIds=[self.instance_id])
            self.backend.wait(self.ec2, "instance_stopped", self.config.instance_timeout,
                              InstanceIds=[self.instance_id])
        except AWS_ERRORS as exc:
            raise BackendError(f"stopping build instance {self.instance_id} failed: "
                               f"{describe(exc)}") from exc

    def _create_image(self, role: str, build_id: str, tags: dict[str, str]) -> str:
        t0 = time.time()
        try:
            reply = self.ec2.create_image(
                InstanceId=self.instance_id, Name=f"hostkit-{role}-{build_id}",
                Description=f"hostkit {role} image, build {build_id}")
        except AWS_ERRORS as exc:
            raise BackendError(f"create_image of '{role}' failed: {describe(exc)}") from exc
        image_id = str(reply["ImageId"])
        self.images.append((self.config.region, image_id))
        self.say(f"creating {image_id} from {self.instance_id}")
        # Tag at once, so even a pending image is recognisably ours; current() only
        # ever considers available ones.
        self.ec2.create_tags(Resources=[image_id], Tags=tag_list(tags))
        self.backend.wait(self.ec2, "image_available", self.config.image_timeout,
                          ImageIds=[image_id])
        self.say(f"{image_id} available ({time.time() - t0:.0f}s)")
        return image_id

    def _finish_image(self, ec2: Any, region: str, image_id: str,
                      tags: dict[str, str]) -> None:
        """Tag an available image and its EBS snapshots."""
        image = self.backend.describe_image(ec2, image_id)
        ec2.create_tags(Resources=[image_id, *snapshot_ids(image)], Tags=tag_list(tags))

    def _copy(self, image_id: str, tags: dict[str, str]) -> list[tuple[str, str]]:
        """Copy the AMI to every extra region (all started first, then awaited)."""
        started = []
        name = tags["Name"]
        for region in self.config.copy_to_regions:
            ec2 = self.backend.client("ec2", region)
            reply = ec2.copy_image(SourceImageId=image_id, SourceRegion=self.config.region,
                                   Name=name, Description=f"copy of {image_id} "
                                   f"from {self.config.region}")
            started.append((region, str(reply["ImageId"])))
            self.images.append((region, str(reply["ImageId"])))
            ec2.create_tags(Resources=[reply["ImageId"]], Tags=tag_list(tags))
        for region, copy_id in started:
            ec2 = self.backend.client("ec2", region)
            self.backend.wait(ec2, "image_available", self.config.image_timeout,
                              ImageIds=[copy_id])
            copy_tags = {**tags, "CopiedFrom": f"{self.config.region}:{image_id}"}
            self._finish_image(ec2, region, copy_id, copy_tags)
            self.say(f"copied to {region} as {copy_id}")
        return started

    def _upload_manifest(self, role: str, build_id: str, manifest_json: str) -> str:
        bucket = str(self.config.manifest_bucket)
        key = f"images/{role}/{build_id}.json"
        self.backend.client("s3").put_object(Bucket=bucket, Key=key,
                                             Body=manifest_json.encode(),
                                             ContentType="application/json")
        return f"s3://{bucket}/{key}"

    def _remove_images(self) -> None:
        for region, image_id in reversed(self.images):
            try:
                self.backend.deregister(self.backend.client("ec2", region), image_id)
            except Exception as exc:
                self.say(f"could not remove {image_id} in {region}: {describe(exc)}")
        self.images.clear()

    # --- discard phases (each returns a problem or '') --------------------------------------
    def _terminate(self) -> str:
        if self.instance_id is None:
            return ""
        try:
            self.ec2.terminate_instances(InstanceIds=[self.instance_id])
            self.backend.wait(self.ec2, "instance_terminated", self.config.instance_timeout,
                              InstanceIds=[self.instance_id])
        except AWS_ERRORS as exc:
            if error_code(exc) not in GONE_CODES:
                return f"instance {self.instance_id}: {describe(exc)}"
        self.say(f"terminated {self.instance_id}")
        self.instance_id = None
        return ""

    def _delete_key_pair(self) -> str:
        if self.key_name is None:
            return ""
        try:
            self.ec2.delete_key_pair(KeyName=self.key_name)
        except AWS_ERRORS as exc:
            if error_code(exc) not in GONE_CODES:
                return f"key pair {self.key_name}: {describe(exc)}"
        self.key_name = None
        return ""

    def _delete_security_group(self) -> str:
        """Delete the group; AWS refuses (DependencyViolation) until the terminated
        instance's network interface is gone, so retry for a while."""
        if self.group_id is None:
            return ""
        deadline = time.monotonic() + self.config.instance_timeout
        while True:
            try:
                self.ec2.delete_security_group(GroupId=self.group_id)
                break
            except AWS_ERRORS as exc:
                code = error_code(exc)
                if code in GONE_CODES:
                    break
                if code != "DependencyViolation" or time.monotonic() > deadline:
                    return f"security group {self.group_id}: {describe(exc)}"
                time.sleep(self.config.waiter_delay)
        self.group_id = None
        return ""


# --- the backend ----------------------------------------------------------------------------
class Ec2Backend:
    """Builds AMIs in one region (optionally copied to more)."""

    name = "ec2"

    def __init__(self, config: Ec2Config, runner_factory: RunnerFactory | None = None,
                 log: LogFn | None = None) -> None:
        self.config = config
        self.family = config.family
        self.runner_factory = runner_factory
        self.log: LogFn = log or (lambda message: print(message, flush=True))
        self._clients: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    # --- AWS plumbing -------------------------------------------------------------------------
    def client(self, service: str, region: str | None = None) -> Any:
        """A cached client of module_utils/aws.py (its retry policy, patience `transfer`:
        AMI copies and long waits), in a session of this builder's own; thread-safe."""
        region = region or self.config.region
        with self._lock:
            key = (service, region)
            if key not in self._clients:
                self._clients[key] = aws_client(service, region, self.config.endpoint_url,
                                                patience="transfer",
                                                session=boto3.session.Session())
            return self._clients[key]

    def wait(self, client: Any, waiter: str, timeout: float, **params: Any) -> None:
        """Run a boto3 waiter for at most `timeout` seconds."""
        delay = max(self.config.waiter_delay, 0.1)
        attempts = max(1, math.ceil(timeout / delay))
        client.get_waiter(waiter).wait(
            WaiterConfig={"Delay": delay, "MaxAttempts": attempts}, **params)

    def describe_images(self, ec2: Any, owners: list[str],
                        filters: list[dict[str, Any]]) -> list[dict[str, Any]]:
        images: list[dict[str, Any]] = []
        for page in ec2.get_paginator("describe_images").paginate(Owners=owners,
                                                                  Filters=filters):
            images.extend(page.get("Images", []))
        return images

    def describe_image(self, ec2: Any, image_id: str) -> dict[str, Any]:
        return dict(ec2.describe_images(ImageIds=[image_id])["Images"][0])

    def ours(self, role: str | None = None, region: str | None = None,
             available_only: bool = True) -> list[dict[str, Any]]:
        """Our AMIs (ManagedBy=hostkit), of one role or all, newest first."""
        filters = [{"Name": "tag:ManagedBy", "Values": [MANAGED_BY]}]
        if role is not None:
            filters.append({"Name": "tag:Role", "Values": [role]})
        if available_only:
            filters.append({"Name": "state", "Values": ["available"]})
        return newest_first(self.describe_images(self.client("ec2", region), ["self"], filters))

    def deregister(self, ec2: Any, image_id: str) -> None:
        """Deregister an AMI and delete its snapshots (already gone is fine)."""
        try:
            image = self.describe_image(ec2, image_id)
        except (ClientError, IndexError) as exc:
            if isinstance(exc, IndexError) or error_code(exc) in GONE_CODES:
                return
            raise
        ec2.deregister_image(ImageId=image_id)
        for snapshot in snapshot_ids(image):
            try:
                ec2.delete_snapshot(SnapshotId=snapshot)
            except ClientError as exc:
                if error_code(exc) not in GONE_CODES:
                    raise

    def build_tags(self, session: Ec2Session) -> dict[str, str]:
        return {"Name": session.resource_name, "ManagedBy": MANAGED_BY,
                "Purpose": "image-build", "Role": session.role, "BuildId": session.build_id}

    def make_runner(self, host: str, port: int, private_key: str) -> StepRunner:
        if self.runner_factory is not None:
            return self.runner_factory(host, port, self.config.ssh_user, private_key)
        from image_builders.backends.ssh import SSHRunner

        return SSHRunner(host, port, self.config.ssh_user, private_key, sudo=True,
                         wait=self.config.ssh_wait)

    # --- the Backend protocol -------------------------------------------------------------
    def resolve_parent(self, parent_role: str, log: LogFn) -> Parent:
        """The base distribution AMI for "os", else the newest AMI of the parent role."""
        if parent_role == OS_PARENT:
            return self._base_ami(log)
        try:
            images = self.ours(parent_role)
        except AWS_ERRORS as exc:
            raise BackendError(f"cannot list AMIs of '{parent_role}': {describe(exc)}") from exc
        if not images:
            raise BackendError(f"no AMI of role '{parent_role}' in {self.config.region}: "
                               f"build '{parent_role}' first")
        return Parent(ref=images[0]["ImageId"], image_id=images[0]["ImageId"])

    def _base_ami(self, log: LogFn) -> Parent:
        cfg = self.config
        filters = [{"Name": "name", "Values": [cfg.base_ami_name]},
                   {"Name": "state", "Values": ["available"]}]
        if cfg.architecture:
            filters.append({"Name": "architecture", "Values": [cfg.architecture]})
        try:
            images = newest_first(self.describe_images(self.client("ec2"),
                                                       [cfg.base_ami_owner], filters))
        except AWS_ERRORS as exc:
            raise BackendError(f"cannot list base AMIs: {describe(exc)}") from exc
        if not images:
            raise BackendError(
                f"no available AMI owned by {cfg.base_ami_owner} matches '{cfg.base_ami_name}' "
                f"({cfg.architecture or 'any architecture'}) in {cfg.region}")
        image = images[0]
        log(f"os: {image['ImageId']} ({image.get('Name', '')}, "
            f"created {image.get('CreationDate', '?')})")
        return Parent(ref=image["ImageId"], image_id=image["ImageId"])

    def current(self, role: str) -> ImageInfo | None:
        images = self.ours(role)
        return image_info(images[0], self.config.region) if images else None

    def read_manifest(self, info: ImageInfo) -> str | None:
        """The manifest uploaded to S3 beside the AMI, when a bucket is configured."""
        if not self.config.manifest_bucket:
            return None
        key = f"images/{info.role}/{info.build_id}.json"
        try:
            body = self.client("s3").get_object(Bucket=self.config.manifest_bucket, Key=key)["Body"]
        except ClientError as exc:
            if error_code(exc) in ("NoSuchKey", "404", "NoSuchBucket"):
                return None
            raise BackendError(f"cannot read s3://{self.config.manifest_bucket}/{key}: "
                               f"{describe(exc)}") from exc
        return body.read().decode()

    def images(self) -> list[ImageInfo]:
        return [image_info(i, self.config.region) for i in self.ours()]

    def start(self, role: str, parent: Parent, build_id: str) -> Ec2Session:
        """Key pair, security group, instance, SSH; on any failure, clean up what was made
        and raise BackendError naming the phase."""
        self.config.validate_for_build()
        session = Ec2Session(self, role, build_id, parent)
        phase = "finding the subnet"
        try:
            subnet_id, vpc_id = self._subnet()
            phase = "creating the temporary key pair"
            private_key = session.create_key_pair()
            phase = "creating the temporary security group"
            session.create_security_group(vpc_id)
            phase = "launching the build instance"
            session.launch(subnet_id)
            phase = "waiting for the instance to run"
            host, port = session.wait_running()
            phase = f"connecting over SSH to {host}:{port}"
            session.connect(host, port, private_key)
        except BaseException as exc:
            cleanup = self._discard_quietly(session)
            if not isinstance(exc, Exception):
                raise
            raise BackendError(f"ec2 build of '{role}' could not start while {phase}: "
                               f"{describe(exc)}{cleanup}") from exc
        return session

    def _discard_quietly(self, session: Ec2Session) -> str:
        try:
            session.discard()
        except BackendError as exc:
            return f" (and {exc})"
        return ""

    def _subnet(self) -> tuple[str, str]:
        """The configured subnet, or a default subnet of the default VPC: (subnet, vpc)."""
        ec2 = self.client("ec2")
        if self.config.subnet_id:
            subnets = ec2.describe_subnets(SubnetIds=[self.config.subnet_id])["Subnets"]
        else:
            subnets = ec2.describe_subnets(
                Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"]
        if not subnets:
            raise BackendError(f"no default subnet in {self.config.region}: "
                               f"set {ENV_PREFIX}SUBNET_ID")
        subnet = sorted(subnets, key=lambda s: s.get("AvailabilityZone", ""))[0]
        return subnet["SubnetId"], subnet["VpcId"]

    def prune(self, role: str, keep: int | None = None) -> list[str]:
        """Deregister all but the newest `keep` AMIs of a role (never the newest), with
        their snapshots, in the build region and every copy region."""
        keep = max(self.config.keep if keep is None else keep, 1)
        removed = []
        for region in (self.config.region, *self.config.copy_to_regions):
            ec2 = self.client("ec2", region)
            for image in self.ours(role, region)[keep:]:
                self.deregister(ec2, image["ImageId"])
                suffix = "" if region == self.config.region else f" ({region})"
                removed.append(image["ImageId"] + suffix)
        return removed
