#!/usr/bin/python
"""Ansible module hostkit_packages: documentation only; the action plugin
(action_plugins/hostkit_packages.py) does the work through the builtin modules."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: hostkit_packages
short_description: Install missing packages, fetching the package lists when a host has none
description:
  - Makes sure every named package is installed, on Debian (apt) and EL 9 (dnf), and does
    nothing on the host when the package facts already list them all (no remote call).
  - Without package facts (the first role of a run), reads them with
    M(ansible.builtin.package_facts) and returns them, so the roles after it reuse them.
  - Before an install, looks for the package lists on the host. A freshly baked hostkit
    image has none (its hygiene step removes them), while the age of its cache files says
    nothing about that; missing lists are fetched whatever the age of any file
    (C(apt-get update); on EL, dnf makes its metadata cache first, as C(dnf makecache)
    does). Lists that exist are refreshed only when older than O(lists_valid_time) (apt;
    dnf refreshes expired metadata by itself).
  - After an install, the package facts are read again and returned.
  - Installing is done by M(ansible.builtin.apt) or M(ansible.builtin.dnf); their errors
    are returned, prefixed with the packages that were being installed.
version_added: "1.0.0"
author: hostkit maintainers
options:
  name:
    description: Package names that must be installed (from the catalog, through the
      C(platform_packages) lookup).
    type: list
    elements: str
    required: true
  lists_valid_time:
    description:
      - Seconds for which package lists that exist on the host are recent enough (apt).
      - Missing lists are fetched whatever this says.
    type: int
    default: 3600
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: [debian, rhel]
notes:
  - Needs the C(pkg_mgr) fact (gather facts first). Supports apt and dnf.
  - Removing packages is not its purpose; use M(ansible.builtin.package) with
    C(state=absent).
seealso:
  - module: ansible.builtin.apt
  - module: ansible.builtin.dnf
  - module: ansible.builtin.package_facts
"""

EXAMPLES = r"""
- name: Install the Apache packages that are missing
  hostkit_packages:
    name: "{{ query('platform_packages', 'apache') }}"

- name: Install a product's extra packages, refreshing lists older than a day
  hostkit_packages:
    name: [imagemagick, ghostscript]
    lists_valid_time: 86400
"""

RETURN = r"""
missing:
  description: The names the package facts did not list, which were (or in check mode,
    would be) installed.
  returned: always
  type: list
  elements: str
  sample: [python3-boto3]
lists_refreshed:
  description: Whether the package lists were fetched or refreshed on the host.
  returned: always
  type: bool
ansible_facts:
  description: The package facts (as M(ansible.builtin.package_facts) returns them) when
    they were read, the first time in a run and again after an install.
  returned: when read
  type: dict
"""
