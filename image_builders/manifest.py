"""Image manifests: what went into an image, as JSON kept beside the build and inside it."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from host_programs.common.atomic_files import write_atomic
from image_builders import __version__

REPO_ROOT = Path(__file__).resolve().parent.parent
IMAGE_MANIFEST_PATH = "/etc/hostkit/image-manifest.json"

PACKAGE_QUERY = {
    "Debian": "dpkg-query -W -f='${Package}\\t${Version}\\n'",
    "RedHat": "rpm -qa --qf '%{NAME}\\t%{EPOCHNUM}:%{VERSION}-%{RELEASE}\\n'",
}


def state_dir() -> Path:
    return Path(os.environ.get("HOSTKIT_STATE_DIR", REPO_ROOT / ".state"))


def git_commit(repo: Path = REPO_ROOT) -> str:
    """HEAD's commit, with '-dirty' when the work tree has uncommitted changes."""
    try:
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], check=True,
                              capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--",
                                "image_builders"], check=True, capture_output=True,
                               text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("-dirty" if dirty else "")


def parse_packages(output: str) -> dict[str, str]:
    packages: dict[str, str] = {}
    for line in output.splitlines():
        name, sep, version = line.strip().partition("\t")
        if sep and name:
            packages[name] = version
    return dict(sorted(packages.items()))


def build_manifest(*, role: str, backend: str, family: str, build_id: str, cache_key: str,
                   parent_ref: str, parent_id: str, steps: list[dict[str, Any]],
                   packages: dict[str, str], started: float,
                   commit: str | None = None) -> dict[str, Any]:
    return {
        "role": role,
        "build_id": build_id,
        "backend": backend,
        "family": family,
        "base": {"ref": parent_ref, "id": parent_id},
        "cache_key": cache_key,
        "builder_version": __version__,
        "git_commit": commit if commit is not None else git_commit(),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "build_seconds": round(time.time() - started, 1),
        "steps": steps,
        "packages": packages,
    }


def dumps(manifest: dict[str, Any]) -> str:
    return json.dumps(manifest, indent=2, sort_keys=True) + "\n"


def digest(manifest_json: str) -> str:
    return hashlib.sha256(manifest_json.encode()).hexdigest()


def manifest_path(backend: str, role: str, build_id: str) -> Path:
    return state_dir() / "images" / backend / role / f"{build_id}.json"


def save(backend: str, role: str, build_id: str, manifest_json: str) -> Path:
    """Write the manifest beside the build (atomically: temp file then rename)."""
    path = manifest_path(backend, role, build_id)
    write_atomic(path, manifest_json.encode(), make_parents=True)
    return path


def load(backend: str, role: str, build_id: str) -> dict[str, Any] | None:
    path = manifest_path(backend, role, build_id)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
