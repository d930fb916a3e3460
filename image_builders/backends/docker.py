"""The docker backend: images for the local sandbox and the tests.

The OS parent is a Debian minbase rootfs made by mmdebstrap and imported into the engine; every
role image is built by running its steps in a container of its parent and committing the
container with systemd as the command and the build's labels. It drives the `docker` CLI,
the same commands an operator would type (and that the benchmark's floor types by hand).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

from image_builders import __version__
from image_builders.backends import LABEL_PREFIX, BackendError, ImageInfo, Parent
from image_builders.recipe import OS_PARENT

REPO = os.environ.get("HOSTKIT_IMAGE_REPO", "hostkit")
SUITE = "bookworm"
MIRROR = os.environ.get("HOSTKIT_DEBIAN_MIRROR", "http://deb.debian.org/debian")
ROOTFS_INCLUDE = ("python3", "systemd", "systemd-sysv", "dbus")
# mmdebstrap's own hooks: merged-usr (usr-is-merged, as debootstrap's minbase has, instead of
# usrmerge and the perl it pulls in) and eatmydata (no fsync while unpacking; removed from
# the rootfs at the end). The same 128 packages as `debootstrap --variant=minbase` in 42 s
# instead of 76 s here.
MMDEBSTRAP_HOOKS = "/usr/share/mmdebstrap/hooks"
ROOTFS_HOOKS = ("merged-usr", "eatmydata")
SYSTEMD_CHANGES = (
    'CMD ["/lib/systemd/systemd"]',
    "ENV container=docker",
)
# (`docker import/commit --change` refuses STOPSIGNAL: containers that should halt systemd
# cleanly are run with `--stop-signal SIGRTMIN+3`.)
# Keeps package scripts from starting services inside the build container.
POLICY_RC_D = "/usr/sbin/policy-rc.d"


def docker(*args: str, input: str | None = None, timeout: float = 600,
           check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(["docker", *args], input=input, text=True, capture_output=True,
                              timeout=timeout)
    except FileNotFoundError:
        raise BackendError("the docker CLI is not installed (run scripts/bootstrap.sh)") from None
    except subprocess.TimeoutExpired:
        raise BackendError(f"docker {args[0]} did not finish within {timeout:.0f}s") from None
    if check and proc.returncode != 0:
        raise BackendError(f"docker {' '.join(args[:3])} failed: {proc.stderr.strip()}")
    return proc


def image_ref(role: str, tag: str = "latest") -> str:
    return f"{REPO}/{role}:{tag}"


def _inspect(ref: str) -> dict | None:
    proc = docker("image", "inspect", ref, check=False)
    if proc.returncode != 0:
        return None
    return json.loads(proc.stdout)[0]


def _info(role: str, ref: str, data: dict) -> ImageInfo:
    labels = (data.get("Config") or {}).get("Labels") or {}
    created = data.get("Created", "")
    try:
        stamp = time.mktime(time.strptime(created[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
    except ValueError:
        stamp = 0.0
    return ImageInfo(
        role=role, ref=ref, image_id=data["Id"],
        build_id=labels.get(f"{LABEL_PREFIX}.build-id", ""),
        cache_key=labels.get(f"{LABEL_PREFIX}.cache-key", ""),
        created=stamp,
        manifest_digest=labels.get(f"{LABEL_PREFIX}.manifest-digest", ""),
        git_commit=labels.get(f"{LABEL_PREFIX}.git-commit", ""),
        extra={"size": str(data.get("Size", 0))},
    )


def _label_changes(labels: dict[str, str]) -> list[str]:
    out = []
    for key, value in labels.items():
        out += ["--change", f"LABEL {key}={json.dumps(value)}"]
    return out


@dataclass
class DockerSession:
    container: str
    family: str

    def exec(self, script: str, timeout: float = 1800) -> tuple[int, str]:
        try:
            proc = subprocess.run(
                ["docker", "exec", "-i", self.container, "sh", "-eu"],
                input=script, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
            return 124, out + f"\n(timed out after {timeout:.0f}s)"
        return proc.returncode, proc.stdout

    def commit(self, role: str, build_id: str, labels: dict[str, str],
               manifest_json: str) -> ImageInfo:
        rc, out = self.exec(f"rm -f {POLICY_RC_D}\n")
        if rc != 0:
            raise BackendError(f"could not remove the build guard {POLICY_RC_D}: {out}")
        ref = image_ref(role, build_id)
        changes = [arg for c in SYSTEMD_CHANGES for arg in ("--change", c)]
        docker("commit", *changes, *_label_changes(labels), self.container, ref, timeout=900)
        docker("tag", ref, image_ref(role))
        data = _inspect(ref)
        if data is None:
            raise BackendError(f"committed image {ref} cannot be inspected")
        return _info(role, ref, data)

    def discard(self) -> None:
        docker("rm", "-f", self.container, check=False, timeout=120)


class DockerBackend:
    """Builds images into the local docker engine (Debian 12 only here)."""

    name = "docker"
    family = "Debian"

    def __init__(self, suite: str = SUITE, mirror: str = MIRROR) -> None:
        self.suite = suite
        self.mirror = mirror

    # --- the OS parent: a minbase rootfs made by mmdebstrap ------------------------------
    def os_cache_key(self) -> str:
        material = json.dumps([__version__, self.suite, self.mirror, ROOTFS_INCLUDE, "minbase",
                               "mmdebstrap", ROOTFS_HOOKS])
        return hashlib.sha256(material.encode()).hexdigest()

    def os_ref(self) -> str:
        return image_ref("os", self.suite)

    def ensure_os(self, log: Callable[[str], None]) -> Parent:
        ref, key = self.os_ref(), self.os_cache_key()
        data = _inspect(ref)
        labels = ((data or {}).get("Config") or {}).get("Labels") or {}
        if data is not None and labels.get(f"{LABEL_PREFIX}.cache-key") == key:
            return Parent(ref=ref, image_id=data["Id"])
        if shutil.which("mmdebstrap") is None or not os.path.isdir(MMDEBSTRAP_HOOKS):
            raise BackendError("mmdebstrap is not installed (run scripts/bootstrap.sh)")
        t0 = time.time()
        with tempfile.TemporaryDirectory(prefix="hostkit-rootfs-", dir="/var/tmp") as tmp:
            tarball = os.path.join(tmp, "rootfs.tar")
            proc = subprocess.run(
                ["mmdebstrap", "--quiet", "--variant=minbase",
                 f"--include={','.join(ROOTFS_INCLUDE)}",
                 *(f"--hook-dir={MMDEBSTRAP_HOOKS}/{hook}" for hook in ROOTFS_HOOKS),
                 # Keep the package lists, as debootstrap did: the vanilla image is a host
                 # configured from scratch, lists included.
                 "--skip=cleanup/apt/lists",
                 self.suite, tarball, self.mirror],
                text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            if proc.returncode != 0:
                tail = "\n".join(proc.stdout.splitlines()[-15:])
                raise BackendError(f"mmdebstrap {self.suite} failed:\n{tail}")
            log(f"os: mmdebstrap {self.suite} ({time.time() - t0:.1f}s)")
            t1 = time.time()
            self._import_rootfs(tarball, ref, key)
            log(f"os: imported as {ref} ({time.time() - t1:.1f}s)")
        data = _inspect(ref)
        assert data is not None
        return Parent(ref=ref, image_id=data["Id"])

    def _import_rootfs(self, tarball: str, ref: str, key: str) -> None:
        changes = [arg for c in SYSTEMD_CHANGES for arg in ("--change", c)]
        labels = _label_changes({f"{LABEL_PREFIX}.role": "os",
                                 f"{LABEL_PREFIX}.cache-key": key,
                                 f"{LABEL_PREFIX}.suite": self.suite})
        proc = subprocess.run(["docker", "import", *changes, *labels, tarball, ref],
                              text=True, capture_output=True)
        if proc.returncode != 0:
            raise BackendError(
                f"docker import of the {self.suite} rootfs failed: {proc.stderr.strip()}")

    # --- the Backend protocol -------------------------------------------------------------
    def resolve_parent(self, parent_role: str, log: Callable[[str], None]) -> Parent:
        if parent_role == OS_PARENT:
            return self.ensure_os(log)
        ref = image_ref(parent_role)
        data = _inspect(ref)
        if data is None:
            raise BackendError(f"parent image {ref} does not exist: build '{parent_role}' first")
        return Parent(ref=ref, image_id=data["Id"])

    def current(self, role: str) -> ImageInfo | None:
        ref = image_ref(role)
        data = _inspect(ref)
        return None if data is None else _info(role, ref, data)

    def start(self, role: str, parent: Parent, build_id: str) -> DockerSession:
        name = f"hostkit-build-{role}-{build_id.lower()}"
        docker("rm", "-f", name, check=False)
        # (no --label here: `docker commit` would carry a container label into the image)
        docker("run", "-d", "--name", name, parent.image_id, "sleep", "infinity", timeout=120)
        session = DockerSession(container=name, family=self.family)
        rc, out = session.exec(f"printf '#!/bin/sh\\nexit 101\\n' > {POLICY_RC_D}\n"
                               f"chmod 0755 {POLICY_RC_D}\n. /etc/os-release\necho \"$ID\"\n")
        if rc != 0 or out.strip() not in ("debian",):
            session.discard()
            raise BackendError(f"build container of {parent.ref} is not Debian ({out.strip()})")
        return session

    def read_manifest(self, info: ImageInfo) -> str | None:
        """The manifest kept inside the image (for clones that did not build it)."""
        from image_builders.manifest import IMAGE_MANIFEST_PATH

        proc = docker("run", "--rm", "--network", "none", "--entrypoint", "cat", info.image_id,
                      IMAGE_MANIFEST_PATH, check=False, timeout=120)
        return proc.stdout if proc.returncode == 0 and proc.stdout.strip() else None

    def images(self) -> list[ImageInfo]:
        proc = docker("images", "--filter", f"label={LABEL_PREFIX}.role",
                      "--format", "{{.Repository}}:{{.Tag}}")
        out = []
        for ref in sorted(set(proc.stdout.split())):
            if not ref.startswith(f"{REPO}/") or ref.endswith(":<none>"):
                continue
            data = _inspect(ref)
            if data is not None:
                role = ref.split("/", 1)[1].split(":", 1)[0]
                out.append(_info(role, ref, data))
        return out

    def prune(self, role: str, keep: int) -> list[str]:
        """Remove all but the newest `keep` builds of a role (never the current one)."""
        current = self.current(role)
        listing = docker("images", f"{REPO}/{role}", "--format", "{{.Tag}} {{.ID}}").stdout
        builds = sorted((line.split() for line in listing.splitlines()
                         if line and not line.startswith(("latest ", "<none> "))),
                        reverse=True)  # build ids start with their UTC time
        old = [f"{REPO}/{role}:{tag}" for tag, short_id in builds[max(keep, 1):]
               if current is None or not current.image_id.startswith(f"sha256:{short_id}")]
        if not old:
            return []
        docker("rmi", *old, check=False)  # an image still used by a container stays
        remaining = set(docker("images", f"{REPO}/{role}", "--format",
                               "{{.Repository}}:{{.Tag}}").stdout.split())
        return [ref for ref in old if ref not in remaining]
