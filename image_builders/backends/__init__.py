"""Backends make images: `docker` for the sandbox and tests, `ec2` for production AMIs.

A backend knows how to find a parent image, start a build target from it, run a step's
script on the target, and turn the target into a tagged image (or throw it away). Everything
else (caching, manifests, progress, failure handling) lives in image_builders.build.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

LABEL_PREFIX = "io.hostkit"


@dataclass(frozen=True)
class ImageInfo:
    role: str
    ref: str  # docker image reference or AMI id
    image_id: str
    build_id: str
    cache_key: str
    created: float  # epoch seconds
    manifest_digest: str = ""
    git_commit: str = ""
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Parent:
    """The image a build starts from; `image_id` goes into the cache key."""

    ref: str
    image_id: str


class Target(Protocol):
    """A running build machine (container or instance)."""

    def exec(self, script: str, timeout: float = 1800) -> tuple[int, str]:
        """Run a POSIX shell script as root (`sh -eu`); return exit code and output."""
        ...


class Session(Target, Protocol):
    def commit(self, role: str, build_id: str, labels: dict[str, str],
               manifest_json: str) -> ImageInfo: ...

    def discard(self) -> None: ...


class Backend(Protocol):
    name: str
    family: str

    def resolve_parent(self, parent_role: str, log: LogFn) -> Parent: ...

    def current(self, role: str) -> ImageInfo | None: ...

    def start(self, role: str, parent: Parent, build_id: str) -> Session: ...

    def images(self) -> list[ImageInfo]: ...

    def prune(self, role: str, keep: int) -> list[str]: ...

    def read_manifest(self, info: ImageInfo) -> str | None:
        """The image's manifest from where the backend keeps it (inside the image, S3)."""
        ...


class LogFn(Protocol):
    def __call__(self, message: str) -> None: ...


class BackendError(RuntimeError):
    """A backend operation failed; the message names what and why."""

