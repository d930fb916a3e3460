"""The SSH step runner against a real sshd: a hostkit/base container booted with systemd,
published on 127.0.0.1 only. The last test drives the whole ec2 backend (AWS side in
moto, in-process) with its steps running in that container over SSH."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import paramiko
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from image_builders import build, manifest
from image_builders.backends.ec2 import Ec2Backend, Ec2Config
from image_builders.backends.ssh import TIMEOUT_RC, SSHError, SSHRunner, load_private_key
from image_builders.recipe import Recipe
from tests.support import SYSTEMD_RUN_FLAGS

pytestmark = pytest.mark.platform

IMAGE = "hostkit/base:latest"
USER = "builder"  # for the runner tests
EC2_USER = "ec2-user"  # for the backend test (its authorized_keys is removed by commit)


def sh(*args: str, check: bool = True, input: str | None = None,
       timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), text=True, capture_output=True, check=check,
                          input=input, timeout=timeout)


def _skip_reason() -> str | None:
    try:
        if sh("docker", "info", check=False, timeout=30).returncode != 0:
            return "the docker engine does not answer (`docker info` failed)"
    except (OSError, subprocess.TimeoutExpired):
        return "the docker CLI is not available"
    if sh("docker", "image", "inspect", IMAGE, check=False).returncode != 0:
        return f"image {IMAGE} does not exist (tests/platform/test_docker_build.py builds it)"
    return None


@dataclass(frozen=True)
class Sshd:
    container: str
    host: str
    port: int
    key_path: Path
    key_text: str

    def root(self, command: str) -> str:
        return sh("docker", "exec", self.container, "sh", "-c", command).stdout

    def runner(self, **kwargs: Any) -> SSHRunner:
        kwargs.setdefault("wait", 30)
        return SSHRunner(self.host, self.port, USER, self.key_path, **kwargs)


def _new_key(directory: Path) -> tuple[Path, str, str]:
    """An ed25519 key pair: (private key path, private key text, public key line)."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH).decode()
    path = directory / "id_ed25519"
    path.write_text(private)
    path.chmod(0o600)
    return path, private, public


def _add_login(container: str, user: str, public_key: str) -> None:
    """A user with the key authorized and password-less sudo (what cloud-init sets up)."""
    script = f"""set -eu
id -u {user} >/dev/null 2>&1 || useradd --create-home --shell /bin/bash {user}
install -d -m 0700 -o {user} -g {user} /home/{user}/.ssh
printf '%s\\n' '{public_key}' >> /home/{user}/.ssh/authorized_keys
chown {user}:{user} /home/{user}/.ssh/authorized_keys
chmod 0600 /home/{user}/.ssh/authorized_keys
printf '%s ALL=(ALL) NOPASSWD:ALL\\n' {user} > /etc/sudoers.d/90-{user}
chmod 0440 /etc/sudoers.d/90-{user}
"""
    sh("docker", "exec", "-i", container, "sh", input=script)


def _wait_for_ssh(container: str, deadline: float) -> None:
    state = ""
    while time.monotonic() < deadline:
        state = sh("docker", "exec", container, "systemctl", "is-active", "ssh",
                   check=False).stdout.strip()
        if state == "active":
            return
        time.sleep(0.5)
    logs = sh("docker", "logs", "--tail", "30", container, check=False)
    pytest.fail(f"sshd did not start in {container} (state {state!r}):\n"
                f"{logs.stdout}{logs.stderr}")


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    reason = _skip_reason()
    if reason is not None:
        pytest.skip(reason)
    key_path, key_text, public = _new_key(tmp_path_factory.mktemp("ssh-key"))
    name = f"hostkit-test-sshd-{uuid.uuid4().hex[:8]}"
    sh("docker", "run", "-d", "--name", name, "--label", "io.hostkit.test=ssh-runner",
       "-p", "127.0.0.1::22", *SYSTEMD_RUN_FLAGS, IMAGE, "/lib/systemd/systemd")
    # (not tests.support.systemd_container: sshd readiness, not systemd's, is awaited here)
    try:
        _wait_for_ssh(name, time.monotonic() + 90)
        _add_login(name, USER, public)
        published = sh("docker", "port", name, "22/tcp").stdout.split()[0]
        host, port = published.rsplit(":", 1)
        assert host == "127.0.0.1", f"sshd must be published on 127.0.0.1 only: {published}"
        yield Sshd(name, host, int(port), key_path, key_text)
    finally:
        sh("docker", "rm", "-f", name, check=False)


@pytest.fixture
def runner(sshd: Sshd) -> Iterator[SSHRunner]:
    with sshd.runner() as r:
        yield r


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- the runner ---------------------------------------------------------------------------
def test_multi_line_script_returns_output_and_zero(runner: SSHRunner) -> None:
    rc, out = runner.exec("echo one\nx=two\necho \"$x\"\necho to-stderr >&2\n")
    assert rc == 0
    assert out.splitlines() == ["one", "two", "to-stderr"]


def test_failing_command_gives_its_code_and_output(runner: SSHRunner) -> None:
    rc, out = runner.exec("echo before\nls /no/such/path\n")
    assert rc == 2
    assert out.startswith("before\n") and "No such file or directory" in out
    assert runner.exec("exit 7") == (7, "")


def test_steps_run_as_root_through_sudo(runner: SSHRunner) -> None:
    assert runner.command == "sudo -n sh -eu"
    rc, out = runner.exec("id -u\necho \"$SUDO_USER\"\n")
    assert (rc, out.split()) == (0, ["0", USER])


def test_without_sudo_runs_as_the_login_user(sshd: Sshd) -> None:
    with sshd.runner(sudo=False) as plain:
        assert plain.command == "sh -eu"
        rc, out = plain.exec("id -un\n")
    assert (rc, out.strip()) == (0, USER)


def test_set_eu_stops_at_the_first_failure(runner: SSHRunner) -> None:
    rc, out = runner.exec("echo first\nfalse\necho never\n")
    assert (rc, out) == (1, "first\n")
    rc, out = runner.exec("echo start\necho \"$NOT_SET_ANYWHERE\"\necho never\n")
    assert rc != 0 and "never" not in out
    assert "NOT_SET_ANYWHERE" in out  # the shell names the unset variable


def test_timeout_gives_124_and_the_runner_stays_usable(runner: SSHRunner) -> None:
    t0 = time.monotonic()
    rc, out = runner.exec("echo started\nsleep 30\necho never\n", timeout=2)
    assert rc == TIMEOUT_RC
    assert out.startswith("started\n") and "timed out after 2s" in out
    assert time.monotonic() - t0 < 10
    assert runner.exec("echo again") == (0, "again\n")


def test_large_script_and_output(runner: SSHRunner) -> None:
    payload = "y" * 2_000_000
    rc, out = runner.exec(f"x='{payload}'\necho ${{#x}}\nhead -c 3000000 /dev/zero | tr '\\0' z\n")
    assert rc == 0
    assert out.startswith("2000000\n") and len(out) == len("2000000\n") + 3_000_000


def test_host_key_is_accepted_once_and_pinned(sshd: Sshd) -> None:
    fingerprints = sshd.root("for k in /etc/ssh/ssh_host_*_key.pub; do ssh-keygen -lf $k; done")
    with sshd.runner() as first:
        assert first.exec("true") == (0, "")
        assert first.host_key_fingerprint in fingerprints.split()
        # a reconnection that is shown another key is refused
        first.close()
        first._policy.key = paramiko.RSAKey.generate(1024)
        with pytest.raises(SSHError, match=f"host key of {sshd.host}:{sshd.port} changed"):
            first.exec("true")


def test_closed_port_fails_clearly_within_the_wait(sshd: Sshd) -> None:
    port = _closed_port()
    r = SSHRunner("127.0.0.1", port, USER, sshd.key_text, wait=3, retry_interval=0.5)
    t0 = time.monotonic()
    with pytest.raises(SSHError, match=f"{USER}@127.0.0.1:{port} within 3s") as err:
        r.exec("true")
    assert time.monotonic() - t0 < 8
    assert "last error" in str(err.value)


def test_unknown_key_is_refused_after_the_wait(sshd: Sshd, tmp_path: Path) -> None:
    other, _, _ = _new_key(tmp_path)
    r = SSHRunner(sshd.host, sshd.port, USER, other, wait=2, retry_interval=0.5)
    with pytest.raises(SSHError, match="AuthenticationException"):
        r.connect()


def test_private_key_from_text_or_path(sshd: Sshd) -> None:
    assert load_private_key(sshd.key_text).get_name() == "ssh-ed25519"
    assert load_private_key(sshd.key_path).get_name() == "ssh-ed25519"
    with pytest.raises(SSHError, match="cannot read"):
        load_private_key("/no/such/key")


# --- the ec2 backend end to end: AWS in moto, the steps over SSH in the container ----------
def test_ec2_backend_runs_steps_over_ssh(sshd: Sshd, monkeypatch: pytest.MonkeyPatch,
                                         tmp_path: Path) -> None:
    from moto import mock_aws
    from moto.core import DEFAULT_ACCOUNT_ID

    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("HOSTKIT_STATE_DIR", str(tmp_path / "state"))
    marker = uuid.uuid4().hex
    tiny = Recipe("sshcheck")
    tiny.run(f"echo {marker} > /root/run-step.txt")
    tiny.write("/etc/hostkit/sshcheck.txt", text=f"written over ssh {marker}\n", mode="0640")
    monkeypatch.setattr(build, "load_recipe", lambda role: tiny)

    def cloud_init_then_ssh(host: str, port: int, user: str, private_key: str) -> SSHRunner:
        # What cloud-init does on a real instance: authorize the launch key pair's key.
        key = load_private_key(private_key)
        _add_login(sshd.container, user, f"{key.get_name()} {key.get_base64()}")
        return SSHRunner(host, port, user, private_key, wait=30)

    with mock_aws():
        ec2 = boto3.client("ec2", region_name="us-east-1")
        stock = ec2.describe_images(
            Filters=[{"Name": "name", "Values": ["debian-*"]}])["Images"]
        stock_id = stock[0]["ImageId"] if stock else ec2.describe_images()["Images"][0]["ImageId"]
        instance = ec2.run_instances(ImageId=stock_id, MinCount=1,
                                     MaxCount=1)["Instances"][0]["InstanceId"]
        ec2.create_image(InstanceId=instance, Name="debian-12-amd64-20240101-1")
        config = Ec2Config(region="us-east-1", base_ami_owner=DEFAULT_ACCOUNT_ID,
                           base_ami_name="debian-12-amd64-*", family="Debian",
                           ssh_user=EC2_USER, ssh_cidr="127.0.0.1/32",
                           connect_address=f"{sshd.host}:{sshd.port}", waiter_delay=0.1)
        backend = Ec2Backend(config, runner_factory=cloud_init_then_ssh, log=lambda m: None)

        result = build.build_role("sshcheck", backend, log=build.Logger(emit=lambda m: None))

        assert result.status == "built" and result.image is not None
        assert [i.image_id for i in backend.images()] == [result.image.image_id]
        assert ec2.describe_key_pairs()["KeyPairs"] == []

    # the steps really ran in the container, as root, over SSH
    assert sshd.root("cat /root/run-step.txt").strip() == marker
    assert sshd.root("stat -c '%a %U' /etc/hostkit/sshcheck.txt").split() == ["640", "root"]
    assert marker in sshd.root("cat /etc/hostkit/sshcheck.txt")
    inside = json.loads(sshd.root(f"cat {manifest.IMAGE_MANIFEST_PATH}"))
    assert inside["backend"] == "ec2" and inside["role"] == "sshcheck"
    assert "openssh-server" in inside["packages"]  # read with dpkg-query over SSH
    assert manifest.digest(manifest.dumps(inside)) == result.image.manifest_digest
    # commit removed the build key from the login user (the AMI keeps no build credential)
    assert sshd.root(f"ls /home/{EC2_USER}/.ssh/").strip() == ""
