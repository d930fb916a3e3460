"""Fencing a failed database server through the provider, for the failover watcher.

The watcher must cut the old master off in well under a second, so it calls the provider's
API itself instead of starting an Ansible run (roles/provider, tasks_from fence, does the same
for operators and playbooks):

- `docker` (the sandbox): the engine's API over its unix socket - isolate = disconnect the
  container from every network; power off = kill it (SIGKILL: no clean shutdown, like
  pulling the plug; a paused container is killed too).
- `ec2`: isolate = replace the instance's security groups with an isolation group that
  admits nothing; power off = stop the instance (Force). Security groups are stateful:
  connections already open survive the swap, which is why the failover powers the old
  master off as its last step.
- `none` (static hosts without an API): cannot isolate; the failover then only proceeds
  when the old master answers and is made read-only.

No Ansible imports; Python 3.9+.
"""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from module_utils.aws import aws_client

try:
    from botocore.exceptions import BotoCoreError, ClientError
except ImportError as exc:
    BOTO_IMPORT_ERROR: ImportError | None = exc
    ClientError = BotoCoreError = ()  # type: ignore[assignment,misc]
else:
    BOTO_IMPORT_ERROR = None

DOCKER_API = "/v1.41"


class FenceError(Exception):
    """The provider could not fence the server; the message names server and reason."""


class NoFence:
    """No provider API: nothing can be isolated or powered off."""

    isolates = False
    name = "none"

    def isolate(self, server: str) -> str:
        raise FenceError(f"cannot isolate '{server}': no provider fencing is configured")

    def power_off(self, server: str) -> str:
        return "no provider fencing: not powered off"


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.socket_path)
        self.sock = sock


class DockerFence:
    """Fencing of sandbox containers through the docker engine's API."""

    isolates = True
    name = "docker"

    def __init__(self, socket_path: str = "/var/run/docker.sock", timeout: float = 10.0,
                 connection_factory: Any = None) -> None:
        self.socket_path = socket_path
        self.timeout = timeout
        self._factory = connection_factory or (lambda: _UnixConnection(socket_path, timeout))

    def _call(self, method: str, path: str, body: Mapping[str, Any] | None = None
              ) -> tuple[int, Any]:
        conn = self._factory()
        try:
            payload = json.dumps(body).encode() if body is not None else None
            headers = {"Content-Type": "application/json"} if payload is not None else {}
            conn.request(method, DOCKER_API + path, body=payload, headers=headers)
            reply = conn.getresponse()
            data = reply.read()
        except OSError as exc:
            raise FenceError(f"docker engine at {self.socket_path}: {exc}") from None
        finally:
            conn.close()
        try:
            parsed = json.loads(data) if data else None
        except ValueError:
            parsed = data.decode(errors="replace")
        return reply.status, parsed

    @staticmethod
    def _message(answer: Any) -> str:
        return str(answer.get("message") if isinstance(answer, Mapping) else answer)

    def _inspect(self, server: str) -> Mapping[str, Any] | None:
        status, answer = self._call("GET", f"/containers/{quote(server)}/json")
        if status == 404:
            return None
        if status != 200:
            raise FenceError(f"cannot inspect container '{server}': {self._message(answer)}")
        return answer

    def isolate(self, server: str) -> str:
        info = self._inspect(server)
        if info is None:
            return f"container '{server}' does not exist: nothing to isolate"
        networks = sorted((info.get("NetworkSettings") or {}).get("Networks") or {})
        done = []
        for network in networks:
            if network in ("none",):
                continue
            status, answer = self._call("POST", f"/networks/{quote(network)}/disconnect",
                                        {"Container": server, "Force": True})
            text = self._message(answer)
            if status >= 300 and "not connected" not in text:
                raise FenceError(f"cannot disconnect '{server}' from network '{network}': "
                                 f"{text}")
            done.append(network)
        if not done:
            return f"container '{server}' is on no network already"
        return f"container '{server}' disconnected from {', '.join(done)}"

    def power_off(self, server: str) -> str:
        info = self._inspect(server)
        if info is None:
            return f"container '{server}' does not exist"
        state = info.get("State") or {}
        if not state.get("Running"):
            return f"container '{server}' is not running"
        status, answer = self._call("POST", f"/containers/{quote(server)}/kill?signal=KILL")
        text = self._message(answer)
        if status >= 300 and "is not running" not in text:
            raise FenceError(f"cannot kill container '{server}': {text}")
        return f"container '{server}' killed" + (" (it was paused)" if state.get("Paused")
                                                 else "")


class Ec2Fence:
    """Fencing of EC2 instances found by their Name tag."""

    isolates = True
    name = "ec2"

    def __init__(self, client: Any, isolation_group: str,
                 managed_by: str | None = "hostkit") -> None:
        if not isolation_group:
            raise FenceError("ec2 fencing needs an isolation security group id")
        self.client = client
        self.isolation_group = isolation_group
        self.managed_by = managed_by

    def _instance(self, server: str) -> Mapping[str, Any] | None:
        filters = [{"Name": "tag:Name", "Values": [server]},
                   {"Name": "instance-state-name",
                    "Values": ["pending", "running", "stopping", "stopped"]}]
        if self.managed_by:
            filters.append({"Name": "tag:ManagedBy", "Values": [self.managed_by]})
        try:
            reply = self.client.describe_instances(Filters=filters)
        except (ClientError, BotoCoreError) as exc:
            raise FenceError(f"cannot find instance '{server}': {exc}") from None
        found = [i for r in reply.get("Reservations", []) for i in r.get("Instances", [])]
        if len(found) > 1:
            raise FenceError(f"more than one instance is named '{server}': "
                             f"{', '.join(i['InstanceId'] for i in found)}")
        return found[0] if found else None

    def isolate(self, server: str) -> str:
        instance = self._instance(server)
        if instance is None:
            return f"no instance named '{server}': nothing to isolate"
        groups = [g["GroupId"] for g in instance.get("SecurityGroups", [])]
        if groups == [self.isolation_group]:
            return f"instance {instance['InstanceId']} ('{server}') is isolated already"
        try:
            self.client.modify_instance_attribute(InstanceId=instance["InstanceId"],
                                                  Groups=[self.isolation_group])
        except (ClientError, BotoCoreError) as exc:
            raise FenceError(f"cannot isolate instance {instance['InstanceId']} ('{server}'): "
                             f"{exc}") from None
        return (f"instance {instance['InstanceId']} ('{server}'): security groups "
                f"{', '.join(groups) or 'none'} replaced by {self.isolation_group}")

    def power_off(self, server: str) -> str:
        instance = self._instance(server)
        if instance is None:
            return f"no instance named '{server}'"
        state = instance.get("State", {}).get("Name")
        if state in ("stopping", "stopped"):
            return f"instance {instance['InstanceId']} ('{server}') is {state}"
        try:
            self.client.stop_instances(InstanceIds=[instance["InstanceId"]], Force=True)
        except (ClientError, BotoCoreError) as exc:
            raise FenceError(f"cannot stop instance {instance['InstanceId']} ('{server}'): "
                             f"{exc}") from None
        return f"instance {instance['InstanceId']} ('{server}') stopping (forced)"


def ec2_client(region: str | None, endpoint_url: str | None = None) -> Any:
    if BOTO_IMPORT_ERROR is not None:
        raise FenceError(f"ec2 fencing needs the Python package boto3: {BOTO_IMPORT_ERROR}")
    # On the failover's path: the quick patience (module_utils/aws.py), a little longer to
    # read (a stop call may take seconds to answer).
    return aws_client("ec2", region, endpoint_url, patience="quick", attempts=4,
                      connect_timeout=3, read_timeout=10)


def make_fencer(settings: Mapping[str, Any]) -> NoFence | DockerFence | Ec2Fence:
    """A fencer from the watcher's `fence` settings: {method: docker, socket: ...},
    {method: ec2, region, endpoint_url, isolation_group}, or {method: none}."""
    method = str(settings.get("method") or "none")
    if method == "none":
        return NoFence()
    if method == "docker":
        return DockerFence(str(settings.get("socket") or "/var/run/docker.sock"),
                           float(settings.get("timeout") or 10.0))
    if method == "ec2":
        return Ec2Fence(ec2_client(settings.get("region"), settings.get("endpoint_url")),
                        str(settings.get("isolation_group") or ""),
                        settings.get("managed_by", "hostkit"))
    raise FenceError(f"fence method {method!r} is not one of none, docker, ec2")
