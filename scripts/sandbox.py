#!/usr/bin/env python3
"""The sandbox's shared pieces that stand in for AWS: a docker network and an AWS endpoint.

- network `hostkit` (172.30.0.0/16): a user-defined bridge, so sandbox containers resolve each
  other by name. The engine hands out addresses from 172.30.0.0/20 only; 172.30.16.0/20 is the
  web tier's range, one /24 per availability zone, given out by the provider step, so that the
  database grants and the cache firewall can admit "the web tier" by network, as production
  does with its web subnets;
- `hostkit-aws`: moto server (the version pinned in requirements.txt) in a container on that
  network, alias `aws`, port 5000 inside; published on 127.0.0.1:15000 for the host;
- buckets created with versioning and default encryption, as production expects them.

Everything here is idempotent: a piece that is already there and answering is left alone.

`stamp` records what `make up` converged: a digest of the code that configures the site and
the identity of the running sandbox (each container's id and start time, the global config's
version). `stamp --check` says whether that still holds, so that the platform tests skip a
third converge right after `make up` and converge again after anything changed. `stamp
--note-rerun` (CI, once scripts/ci_checks.py rerun passed on its second `make up`) notes in
the record that a re-run of this converge changed nothing, and the platform test of that
same property is skipped while the record holds.

Usage: sandbox.py network | aws | bucket NAME... | down-aws | down | stamp [--check | --note-rerun]
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NETWORK = "hostkit"
NETWORK_SUBNET = "172.30.0.0/16"
NETWORK_AUTO_RANGE = "172.30.0.0/20"
AWS_CONTAINER = "hostkit-aws"
AWS_ALIAS = "aws"
AWS_PORT = 15000
AWS_HOST_URL = f"http://127.0.0.1:{AWS_PORT}"
AWS_CONTAINER_URL = f"http://{AWS_ALIAS}:5000"
REGION = "us-east-1"
BASE_IMAGE = "hostkit/os:bookworm"
# The emulator serves only the APIs the platform uses.
MOTO_EXTRAS = "s3,ec2,route53,ssm,secretsmanager,sts"
SANDBOX_LABEL = "io.hostkit.sandbox"

DOCKERFILE = """\
FROM {base}
COPY site /opt/moto
ENV PYTHONPATH=/opt/moto PYTHONDONTWRITEBYTECODE=1
EXPOSE 5000
CMD ["python3", "-m", "moto.server", "-H", "0.0.0.0", "-p", "5000"]
"""


class SandboxError(RuntimeError):
    """A sandbox piece could not be brought up; the message says which and why."""


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["docker", *args], text=True, capture_output=True)
    if check and proc.returncode != 0:
        raise SandboxError(f"docker {' '.join(args[:2])} failed: {proc.stderr.strip()}")
    return proc


CREATED: list[str] = []  # what this process created, for the caller's "changed" report


def ensure_network() -> str:
    """The user-defined bridge every sandbox container joins."""
    if docker("network", "inspect", NETWORK, check=False).returncode != 0:
        CREATED.append(f"network {NETWORK}")
        created = docker("network", "create", "--label", f"{SANDBOX_LABEL}=network",
                         "--subnet", NETWORK_SUBNET, "--ip-range", NETWORK_AUTO_RANGE, NETWORK,
                         check=False)
        # Another process may have created it between our two calls.
        if created.returncode != 0 and "already exists" not in created.stderr:
            raise SandboxError(f"cannot create docker network {NETWORK}: {created.stderr}")
    subnets = docker("network", "inspect", NETWORK, "--format",
                     "{{range .IPAM.Config}}{{.Subnet}} {{end}}").stdout.split()
    if NETWORK_SUBNET not in subnets:
        raise SandboxError(
            f"docker network {NETWORK} exists with subnets {subnets}, not {NETWORK_SUBNET}: "
            f"remove it (`docker network rm {NETWORK}` after its containers) and run again")
    return NETWORK


def moto_pin() -> str:
    """The moto version pinned in requirements.txt: the unit tests and the sandbox agree."""
    text = (ROOT / "requirements.txt").read_text()
    match = re.search(r"^moto\[[^\]]*\]==([\w.]+)", text, re.M)
    if not match:
        raise SandboxError("requirements.txt pins no moto version (moto[...]==X)")
    return match.group(1)


def aws_image() -> str:
    """Build hostkit/aws:moto-<pin> from the local Debian image, once per pin."""
    version = moto_pin()
    tag = f"hostkit/aws:moto-{version}"
    if docker("image", "inspect", tag, check=False).returncode == 0:
        return tag
    if docker("image", "inspect", BASE_IMAGE, check=False).returncode != 0:
        raise SandboxError(f"{BASE_IMAGE} is missing: run `make images` first")
    requirements = [
        f"moto[{MOTO_EXTRAS}]=={version}",
        f"flask=={importlib.metadata.version('flask')}",
        f"flask-cors=={importlib.metadata.version('flask-cors')}",
    ]
    with tempfile.TemporaryDirectory(prefix="hostkit-aws-") as ctx:
        # The packages are fetched by the host's pip (its index settings), not inside the
        # image: containers reach the Debian mirror, the host reaches the Python index.
        pip = subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-compile", "--target",
             f"{ctx}/site", *requirements], text=True, capture_output=True)
        if pip.returncode != 0:
            raise SandboxError(f"pip could not fetch {requirements}: {pip.stderr[-2000:]}")
        Path(ctx, "Dockerfile").write_text(DOCKERFILE.format(base=BASE_IMAGE))
        docker("build", "-q", "-t", tag, "--label", f"{SANDBOX_LABEL}=aws", ctx)
    return tag


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/moto-api/", timeout=10) as reply:
            return reply.status == 200
    except OSError:
        return False


def _emulator_state() -> str:
    """'running', 'stopped' (the container exists but does not run) or 'absent'."""
    proc = docker("inspect", "-f", "{{.State.Running}}", AWS_CONTAINER, check=False)
    if proc.returncode != 0:
        return "absent"
    return "running" if proc.stdout.strip() == "true" else "stopped"


def ensure_aws(timeout: float = 120) -> str:
    """The AWS endpoint; returns the URL the host uses.

    A running emulator is never replaced: it holds the sandbox's S3 and EC2 state in memory
    (the global config, the backups), and a busy one may take seconds to answer. It is waited
    for; only a missing one is created, a stopped one started."""
    ensure_network()
    state = _emulator_state()
    if state == "running" and _answers(AWS_HOST_URL):
        return AWS_HOST_URL
    if state == "stopped":
        CREATED.append(f"container {AWS_CONTAINER} (started again, its state starts empty)")
        docker("start", AWS_CONTAINER)
    elif state == "absent":
        image = aws_image()
        CREATED.append(f"container {AWS_CONTAINER}")
        docker("run", "-d", "--name", AWS_CONTAINER, "--hostname", AWS_CONTAINER,
               "--network", NETWORK, "--network-alias", AWS_ALIAS,
               "-p", f"127.0.0.1:{AWS_PORT}:5000", "--restart", "unless-stopped",
               "--label", f"{SANDBOX_LABEL}=aws", image)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _answers(AWS_HOST_URL):
            return AWS_HOST_URL
        time.sleep(0.5)
    logs = docker("logs", "--tail", "20", AWS_CONTAINER, check=False)
    raise SandboxError(f"{AWS_CONTAINER} did not answer on {AWS_HOST_URL} within "
                       f"{timeout:.0f}s (left as it is: it holds the sandbox's AWS state); "
                       f"last log lines:\n{logs.stdout}{logs.stderr}")


def s3_client(endpoint: str | None = None):  # noqa: ANN201 (boto3 client type)
    from module_utils.aws import aws_client

    return aws_client("s3", REGION, endpoint or ensure_aws(),
                      credentials={"AWS_ACCESS_KEY_ID": "testing",
                                   "AWS_SECRET_ACCESS_KEY": "testing"})


def ensure_bucket(name: str, endpoint: str | None = None) -> str:
    """A bucket with versioning and default server-side encryption, like production's."""
    client = s3_client(endpoint)
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    if name in existing:
        return name
    CREATED.append(f"bucket {name}")
    client.create_bucket(Bucket=name)
    client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    client.put_bucket_encryption(
        Bucket=name,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
    return name


def down_aws() -> None:
    docker("rm", "-f", AWS_CONTAINER, check=False)


def _remove_containers(label: str, attempts: int = 30) -> list[str]:
    """Remove every container with `label`, and wait until the engine no longer lists them
    (a `docker rm -f` may answer before a container is gone). Their names."""
    removed: list[str] = []
    for _ in range(attempts):
        names = docker("ps", "-a", "--filter", f"label={label}", "--format", "{{.Names}}",
                       check=False).stdout.split()
        if not names:
            return removed
        removed += [n for n in names if n not in removed]
        docker("rm", "-f", *names, check=False)
        time.sleep(0.5)
    raise SandboxError(f"containers with label {label} are still there after "
                       f"{attempts} attempts to remove them: {', '.join(names)}")


def _remove_network(attempts: int = 30) -> bool:
    """Remove the sandbox network: False when there is none. A container still attached (a
    test's leftover, or one the engine is still tearing down) is disconnected first."""
    result = None
    for _ in range(attempts):
        attached = docker("network", "inspect", NETWORK, "-f",
                          "{{range .Containers}}{{.Name}} {{end}}", check=False)
        if attached.returncode != 0:
            return result is not None
        for name in attached.stdout.split():
            docker("network", "disconnect", "-f", NETWORK, name, check=False)
        result = docker("network", "rm", NETWORK, check=False)
        if result.returncode == 0:
            return True
        time.sleep(1.0)
    detail = result.stderr.strip() if result is not None else ""
    raise SandboxError(f"docker network rm {NETWORK} failed {attempts} times: {detail}")


def down() -> list[str]:
    """Remove the sandbox: its containers (managed hosts, the AWS endpoint), its network and
    its local state (generated credentials). Images and everything else stay."""
    removed = []
    for label in ("io.hostkit.managed=true", SANDBOX_LABEL):
        names = _remove_containers(label)
        removed += [f"container {n}" for n in names]
    if _remove_network():
        removed.append(f"network {NETWORK}")
    for state in (ROOT / "credentials" / "sandbox", ROOT / ".state" / "sandbox"):
        if state.exists():
            shutil.rmtree(state)
            removed.append(f"state {state.relative_to(ROOT)}")
    return removed


# What configures the sandbox: a change to any file here means the site must converge again.
STAMP_SOURCES = ("ansible.cfg", "requirements.txt", "roles", "playbooks", "library",
                 "module_utils", "plugin_utils", "host_programs", "filter_plugins",
                 "lookup_plugins", "inventory", "image_builders")
STAMP = ROOT / ".state" / "sandbox" / "converged.json"
CONFIG_BUCKET, CONFIG_KEY = "hostkit-sandbox-config", "global-config.json"


def code_digest(root: Path = ROOT) -> str:
    """sha256 over the path and bytes of every file that configures the site."""
    digest = hashlib.sha256()
    for name in STAMP_SOURCES:
        top = root / name
        files = [top] if top.is_file() else sorted(
            f for f in top.rglob("*") if f.is_file() and "__pycache__" not in f.parts)
        for path in files:
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def sandbox_identity() -> dict[str, str]:
    """Each sandbox container (managed hosts and the AWS endpoint, not a test's own) with its
    id and start time, and the global config's version: a restarted container or a rewritten
    config differ."""
    names = docker("ps", "-q", "--filter", "label=io.hostkit.managed=true", check=False
                   ).stdout.split()
    names += docker("ps", "-q", "--filter", f"label={SANDBOX_LABEL}", check=False).stdout.split()
    identity: dict[str, str] = {}
    if names:
        # a test's own containers (io.hostkit.test) come and go beside the sandbox: not in it
        form = ("{{.Name}} {{with index .Config.Labels \"io.hostkit.test\"}}{{.}}{{end}}| "
                "{{.Id}} {{.State.StartedAt}}")
        lines = docker("inspect", "-f", form, *sorted(set(names)), check=False).stdout.splitlines()
        for line in lines:
            head, _, rest = line.strip().lstrip("/").partition("| ")
            name, _, test = head.partition(" ")
            if rest and not test.strip():
                identity[name] = rest
    if _answers(AWS_HOST_URL):
        try:
            head = s3_client(AWS_HOST_URL).head_object(Bucket=CONFIG_BUCKET, Key=CONFIG_KEY)
            identity["global config"] = str(head.get("VersionId") or head.get("ETag"))
        except Exception as exc:  # noqa: BLE001 (any failure: the stamp does not hold)
            identity["global config"] = f"unreadable: {type(exc).__name__}"
    return identity


def write_stamp() -> Path:
    STAMP.parent.mkdir(parents=True, exist_ok=True)
    record = {"code": code_digest(), "sandbox": sandbox_identity(),
              "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    partial = STAMP.with_suffix(".tmp")
    partial.write_text(json.dumps(record, indent=1, sort_keys=True))
    partial.replace(STAMP)
    return STAMP


def stamp_holds() -> tuple[bool, str]:
    """(True, when) if the sandbox is as the last `make up` left it with this code; else
    (False, why not)."""
    try:
        record = json.loads(STAMP.read_text())
    except (OSError, ValueError):
        return False, f"no record of a converge ({STAMP.relative_to(ROOT)})"
    if record.get("code") != code_digest():
        return False, "the code changed since the last converge"
    now = sandbox_identity()
    if not now or record.get("sandbox") != now:
        return False, "the sandbox changed since the last converge (containers or global config)"
    return True, str(record.get("at"))


def note_rerun() -> bool:
    """Add to the record, while it holds, that a re-run of this very converge changed
    nothing on any host (scripts/ci_checks.py rerun checked its recap). False when the
    record no longer holds: nothing is written."""
    holds, _ = stamp_holds()
    if not holds:
        return False
    record = json.loads(STAMP.read_text())
    record["rerun_changed_nothing"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    partial = STAMP.with_suffix(".tmp")
    partial.write_text(json.dumps(record, indent=1, sort_keys=True))
    partial.replace(STAMP)
    return True


def rerun_noted() -> str:
    """When the record holds and notes a re-run that changed nothing: when it was checked;
    else ''."""
    holds, _ = stamp_holds()
    if not holds:
        return ""
    return str(json.loads(STAMP.read_text()).get("rerun_changed_nothing", ""))


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    command, *args = argv
    try:
        if command == "network":
            print(ensure_network())
        elif command == "aws":
            print(ensure_aws())
        elif command == "bucket":
            for name in args:
                print(ensure_bucket(name))
        elif command == "down-aws":
            down_aws()
        elif command == "down":
            for item in down():
                print(f"removed {item}")
        elif command == "stamp" and args == ["--check"]:
            holds, detail = stamp_holds()
            print(f"converged at {detail}" if holds else f"not converged: {detail}")
            return 0 if holds else 1
        elif command == "stamp" and args == ["--note-rerun"]:
            noted = note_rerun()
            print("noted: a re-run of the last converge changed nothing" if noted
                  else "not noted: the converge record does not hold")
            return 0 if noted else 1
        elif command == "stamp":
            print(f"wrote {write_stamp().relative_to(ROOT)}")
        else:
            print(f"sandbox.py: unknown command {command!r}", file=sys.stderr)
            return 2
        for item in CREATED:
            print(f"created {item}")
    except SandboxError as exc:
        print(f"sandbox: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
