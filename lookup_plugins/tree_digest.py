"""Lookup plugin: a content digest of a directory tree on the controller.

The product role names a release after its content: the same tree twice gives the same
release id (so a second rollout changes nothing), any change to a file's bytes, name,
executable bit or a symlink's target gives a new one. Timestamps and ownership do not
count, so a fresh checkout of the same commit hashes the same.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

DOCUMENTATION = r"""
name: tree_digest
author: hostkit maintainers
short_description: SHA-256 digest of the content of a directory tree on the controller
description:
  - Returns one hexadecimal SHA-256 digest per directory given, computed over the relative
    path, the type (file, directory, symlink), the executable bit and the content (the
    target for a symlink) of every entry below it, in sorted order.
  - Timestamps, owners and other mode bits do not count, so the same content checked out
    twice (or at another time) gives the same digest.
  - The product role uses it to name a release of a C(local) source after its content.
options:
  _terms:
    description: Directories on the controller.
    required: true
    type: list
    elements: path
  exclude:
    description:
      - Names of files or directories, at any depth, left out of the digest (and out of
        the tree they head).
    type: list
    elements: str
    default: [.git]
  length:
    description: Return only the first O(length) hexadecimal digits (0 returns all 64).
    type: int
    default: 0
notes:
  - The file contents are read on the controller; symlinks are not followed.
  - A missing path or a path that is not a directory is an error that names it.
"""

EXAMPLES = r"""
- name: Name a release after its content
  ansible.builtin.set_fact:
    release_id: "{{ lookup('tree_digest', playbook_dir ~ '/../products/hello', length=12) }}"
"""

RETURN = r"""
_raw:
  description: One hexadecimal SHA-256 digest (or its first O(length) digits) per directory.
  type: list
  elements: str
"""


def _entries(root: Path, exclude: frozenset[str]) -> Iterable[tuple[str, os.stat_result, Path]]:
    """Every entry below root as (relative posix path, lstat, path), sorted, depth first."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in exclude)
        base = Path(dirpath)
        for name in sorted(dirnames + [f for f in filenames if f not in exclude]):
            path = base / name
            yield path.relative_to(root).as_posix(), path.lstat(), path


def tree_digest(root: str | os.PathLike[str], exclude: Iterable[str] = (".git",)) -> str:
    """SHA-256 over the relative paths, types, executable bits and contents of a tree."""
    top = Path(root)
    if not top.is_dir():
        raise NotADirectoryError(f"{top} is not a directory")
    excluded = frozenset(exclude)
    digest = hashlib.sha256()
    for rel, st, path in sorted(_entries(top, excluded), key=lambda e: e[0]):
        if stat.S_ISLNK(st.st_mode):
            kind, payload = b"l", os.readlink(path).encode()
        elif stat.S_ISDIR(st.st_mode):
            kind, payload = b"d", b""
        elif stat.S_ISREG(st.st_mode):
            kind = b"x" if st.st_mode & 0o111 else b"f"
            file_hash = hashlib.sha256()
            with path.open("rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    file_hash.update(chunk)
            payload = file_hash.digest()
        else:  # sockets, fifos, devices: their name counts, they have no content
            kind, payload = b"o", b""
        name = rel.encode()
        digest.update(b"%s %d:%s %d:" % (kind, len(name), name, len(payload)) + payload)
    return digest.hexdigest()


class LookupModule(LookupBase):
    def run(self, terms: list[Any], variables: dict[str, Any] | None = None,
            **kwargs: Any) -> list[str]:
        self.set_options(var_options=variables, direct=kwargs)
        exclude = self.get_option("exclude") or []
        length = self.get_option("length") or 0
        if length < 0:
            raise AnsibleLookupError(f"tree_digest: length must be 0 or more, got {length}")
        results = []
        for term in terms:
            if not isinstance(term, str) or not term:
                raise AnsibleLookupError(f"tree_digest: a directory path is required, got {term!r}")
            try:
                value = tree_digest(term, exclude)
            except (OSError, NotADirectoryError) as exc:
                raise AnsibleLookupError(f"tree_digest: cannot hash {term}: {exc}") from exc
            results.append(value[:length] if length else value)
        return results
