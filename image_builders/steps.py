"""The step library: each step is a small, declarative piece of a build that renders to a
POSIX shell script for one OS family.

Rendering is pure (no I/O on the target), so a step's script is also its digest material:
the cache key and the manifest are computed from exactly what will run. Backends only need
to run a script on the target and return its exit code and output.
"""

from __future__ import annotations

import base64
import hashlib
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from image_builders.catalog import Catalog


@dataclass(frozen=True)
class Context:
    """What a step may know while it renders: the role, the family, the catalog."""

    role: str
    family: str
    catalog: Catalog
    files_dir: Path
    variables: dict[str, Any] = field(default_factory=dict)


class Step:
    """Base class. Subclasses set `label` and implement `render`."""

    label: str = "step"
    only: str | None = None  # an OS family, or None for every family

    def render(self, ctx: Context) -> str:
        raise NotImplementedError

    def script(self, ctx: Context) -> str | None:
        """The shell script for this family, or None when the step does not apply."""
        if self.only is not None and self.only != ctx.family:
            return None
        return self.render(ctx)

    def digest(self, ctx: Context) -> str:
        script = self.script(ctx)
        return hashlib.sha256((script or "").encode()).hexdigest()


def _q(value: str) -> str:
    return shlex.quote(value)


@dataclass(frozen=True)
class Run(Step):
    """Run a shell command as root."""

    command: str
    only: str | None = None

    @property
    def label(self) -> str:  # type: ignore[override]
        first = self.command.strip().splitlines()[0]
        return f"run: {first[:60]}"

    def render(self, ctx: Context) -> str:
        return self.command.strip() + "\n"


@dataclass(frozen=True)
class Install(Step):
    """Install the packages of catalog components (never package names directly)."""

    components: tuple[str, ...]
    only: str | None = None

    @property
    def label(self) -> str:  # type: ignore[override]
        return "install: " + ", ".join(self.components)

    def render(self, ctx: Context) -> str:
        names = " ".join(_q(p) for p in ctx.catalog.packages(*self.components, family=ctx.family))
        if not names:
            return ":\n"
        if ctx.family == "Debian":
            return (
                "export DEBIAN_FRONTEND=noninteractive\n"
                "if ! ls /var/lib/apt/lists/*_Packages >/dev/null 2>&1; then\n"
                "  apt-get update -qq\n"
                "fi\n"
                f"apt-get install -y -qq --no-install-recommends {names}\n"
            )
        return f"dnf install -y -q --setopt=install_weak_deps=False {names}\n"


@dataclass(frozen=True)
class WriteFile(Step):
    """Write a file atomically, from inline text or a file under files/ (optionally a
    Jinja2 template rendered with the role, the family and the recipe's variables)."""

    path: str
    text: str | None = None
    src: str | None = None
    template: bool = False
    mode: str = "0644"
    owner: str = "root"
    group: str = "root"
    only: str | None = None

    @property
    def label(self) -> str:  # type: ignore[override]
        return f"write: {self.path}"

    def content(self, ctx: Context) -> str:
        if (self.text is None) == (self.src is None):
            raise ValueError(f"write {self.path}: give exactly one of text= or src=")
        raw = self.text if self.text is not None else (ctx.files_dir / str(self.src)).read_text()
        if not self.template:
            return raw
        env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
        return env.from_string(raw).render(role=ctx.role, family=ctx.family, **ctx.variables)

    def render(self, ctx: Context) -> str:
        payload = base64.b64encode(self.content(ctx).encode()).decode()
        path = _q(self.path)
        tmp = _q(self.path + ".hk-tmp")
        directory = _q(str(Path(self.path).parent))
        return (
            f"install -d -m 0755 {directory}\n"
            f"printf '%s' {_q(payload)} | base64 -d > {tmp}\n"
            f"chmod {_q(self.mode)} {tmp}\n"
            f"chown {_q(self.owner)}:{_q(self.group)} {tmp}\n"
            f"mv -f {tmp} {path}\n"
        )


@dataclass(frozen=True)
class Enable(Step):
    """Enable services at boot: catalog components (their services) or unit names."""

    components: tuple[str, ...] = ()
    units: tuple[str, ...] = ()
    only: str | None = None

    @property
    def label(self) -> str:  # type: ignore[override]
        return "enable: " + ", ".join(self.components + self.units)

    def render(self, ctx: Context) -> str:
        names = ctx.catalog.services(*self.components, family=ctx.family) + list(self.units)
        return f"systemctl enable {' '.join(_q(n) for n in names)}\n" if names else ":\n"


@dataclass(frozen=True)
class AddGroup(Step):
    name: str
    gid: int | None = None
    system: bool = True
    only: str | None = None

    @property
    def label(self) -> str:  # type: ignore[override]
        return f"group: {self.name}"

    def render(self, ctx: Context) -> str:
        opts = " --system" if self.system else ""
        if self.gid is not None:
            opts += f" --gid {int(self.gid)}"
        return f"getent group {_q(self.name)} >/dev/null || groupadd{opts} {_q(self.name)}\n"


@dataclass(frozen=True)
class AddUser(Step):
    name: str
    group: str | None = None
    home: str | None = None
    shell: str = "/usr/sbin/nologin"
    uid: int | None = None
    system: bool = True
    only: str | None = None

    @property
    def label(self) -> str:  # type: ignore[override]
        return f"user: {self.name}"

    def render(self, ctx: Context) -> str:
        opts = " --system" if self.system else " --create-home"
        if self.uid is not None:
            opts += f" --uid {int(self.uid)}"
        opts += f" --gid {_q(self.group)}" if self.group else " --user-group"
        if self.home:
            opts += f" --home-dir {_q(self.home)}"
        opts += f" --shell {_q(self.shell)}"
        return f"id -u {_q(self.name)} >/dev/null 2>&1 || useradd{opts} {_q(self.name)}\n"


_HYGIENE_COMMON = """\
rm -f /etc/ssh/ssh_host_*_key /etc/ssh/ssh_host_*_key.pub
rm -rf /var/lib/cloud/instances /var/lib/cloud/instance /var/lib/cloud/data /var/lib/cloud/sem
: > /etc/machine-id
rm -f /var/lib/dbus/machine-id
find /var/log -type f \\( -name '*.gz' -o -name '*.[0-9]' -o -name '*.old' \\) -delete
find /var/log -type f -exec truncate -s 0 {} +
rm -rf /tmp/* /var/tmp/* /root/.cache /root/.bash_history
"""

_HYGIENE_FAMILY = {
    "Debian": "apt-get clean\nrm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin\n",
    "RedHat": "dnf clean all -q\nrm -rf /var/cache/dnf/*\n",
}


@dataclass(frozen=True)
class Hygiene(Step):
    """The last step of every image: package caches, logs, machine-id, SSH host keys and
    cloud-init state cleared, so every machine started from the image is a new one."""

    only: str | None = None
    label: str = "hygiene: caches, logs, machine-id, ssh host keys, cloud-init"

    def render(self, ctx: Context) -> str:
        return _HYGIENE_FAMILY[ctx.family] + _HYGIENE_COMMON
