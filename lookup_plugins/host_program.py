"""Lookup plugin host_program: the files that install a hostkit host program on a host."""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

try:
    from plugin_utils.host_programs import HostProgramError, bundle, bundle_purge, manifest
except ImportError as exc:  # reported when the lookup runs, so that ansible-doc still works
    _IMPORT_ERROR: ImportError | None = exc
else:
    _IMPORT_ERROR = None

DOCUMENTATION = r"""
name: host_program
author: hostkit maintainers
version_added: "1.0.0"
short_description: The files that install a hostkit host program, as hostkit_files entries
description:
  - A host program (the config agent, the failover watcher, the backup program) is a module
    of the repository's C(host_programs) package. It is installed in a directory of its own
    as a unit - its import closure (every module of C(host_programs) and C(module_utils) it
    imports, directly or not, with the packages' C(__init__.py)), a generated
    C(MANIFEST.json) (every file with its sha256) and an entry script.
  - The closure is computed from the source each time (Python's C(ast)), so a role ships
    exactly what the program imports; an import of a module that does not exist is an
    error naming it.
  - Returns entries for the O(files) option of the C(hostkit_files) module (or, with
    O(part=purge), for its O(purge) option).
options:
  _terms:
    description: The program - V(config_agent), V(failover_watcher) or V(mysql_backup).
    required: true
    type: list
    elements: str
  dest:
    description: The install directory on the host (absolute).
    type: str
    required: true
  python:
    description: The interpreter of the entry script.
    type: str
    default: /usr/bin/python3
  part:
    description:
      - V(files) the directories, files, manifest and entry script; V(purge) the
        directories in which Python files the bundle does not name are removed (left by an
        older version); V(manifest) the manifest itself (a one-element list).
    type: str
    choices: [files, purge, manifest]
    default: files
"""

EXAMPLES = r"""
- name: Install the watcher program
  hostkit_files:
    files: "{{ query('host_program', 'failover_watcher', dest='/opt/hostkit-failover') }}"
    purge: >-
      {{ query('host_program', 'failover_watcher', dest='/opt/hostkit-failover',
               part='purge') }}
"""

RETURN = r"""
_raw:
  description: hostkit_files entries (path, state, src or content, owner, group, mode).
  type: list
  elements: dict
"""


class LookupModule(LookupBase):
    def run(self, terms: list[Any], variables: dict[str, Any] | None = None,
            **kwargs: Any) -> list[Any]:
        if _IMPORT_ERROR is not None:
            raise AnsibleLookupError("host_program: cannot import plugin_utils (the "
                                     "repository is installed in the virtualenv by "
                                     f"scripts/bootstrap.sh): {_IMPORT_ERROR}")
        self.set_options(var_options=variables, direct=kwargs)
        if len(terms) != 1:
            raise AnsibleLookupError(f"host_program: name one program, got {len(terms)}")
        name, dest = str(terms[0]), str(self.get_option("dest"))
        part = self.get_option("part")
        try:
            if part == "purge":
                return bundle_purge(name, dest)
            if part == "manifest":
                return [manifest(name)]
            return bundle(name, dest, python=str(self.get_option("python")))
        except HostProgramError as exc:
            raise AnsibleLookupError(f"host_program: {exc}") from None
