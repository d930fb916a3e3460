#!/usr/bin/python
"""Ansible module hostkit_accounts: documentation only; the action plugin
(action_plugins/hostkit_accounts.py) does the work through the builtin modules."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: hostkit_accounts
short_description: Groups and users, changed only where the host differs
description:
  - Reads the host's users and groups with one command (C(getent passwd), C(getent group))
    run through the connection, as M(ansible.builtin.reboot) reads a boot id, compares each
    wanted group and user with them on the fields its entry sets, and runs
    M(ansible.builtin.group) or M(ansible.builtin.user) only for the entries that differ,
    with the entry's fields as their options. When the host has every account as wanted, the
    task costs one remote command however many accounts it lists, instead of one module call
    per account.
  - Groups are handled before users, so that a user's new group exists when the user is
    created.
  - Fields that count only when an account is created (O(groups[].system),
    O(users[].system), O(users[].create_home)) are passed on but not compared; the modules
    choose what the entries leave out (a new account's uid and gid, for example).
  - The first entry that fails stops the task, naming the account, its module and why it
    was changed; the entries before it stay done.
version_added: "1.0.0"
author: hostkit maintainers
options:
  groups:
    description: Groups that must exist (M(ansible.builtin.group) options).
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Group name.
        type: str
        required: true
      gid:
        description: Group id; compared when set.
        type: int
      system:
        description: Create a system group (only when it is created).
        type: bool
  users:
    description: Users that must exist (M(ansible.builtin.user) options).
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: User name.
        type: str
        required: true
      group:
        description: Primary group; compared by group id.
        type: str
      groups:
        description:
          - Supplementary groups. With O(users[].append=true) the user must be in each of
            them; otherwise in exactly these (the primary group aside).
        type: list
        elements: str
      append:
        description: Add to O(users[].groups) without leaving the others.
        type: bool
        default: false
      system:
        description: Create a system account (only when it is created).
        type: bool
      home:
        description: Home directory; compared when set.
        type: str
      create_home:
        description: Create the home directory (only when the user is created).
        type: bool
      shell:
        description: Login shell; compared when set.
        type: str
      comment:
        description: GECOS field; compared when set.
        type: str
attributes:
  check_mode:
    support: full
    description: The read runs; the group and user modules run in check mode.
notes:
  - Accounts are read through NSS (C(getent)), so a group or user from LDAP counts as
    present, as it does for the builtin modules.
seealso:
  - module: ansible.builtin.user
  - module: ansible.builtin.group
"""

EXAMPLES = r"""
- name: Product groups and users
  hostkit_accounts:
    groups:
      - name: hello
        system: true
      - name: deploy
        gid: 2001
    users:
      - name: hello
        group: hello
        system: true
        home: /srv/hello
        create_home: false
        shell: /usr/sbin/nologin
        comment: hostkit product hello
      - name: alice
        groups: [deploy]
        append: true
        shell: /bin/bash

- name: The products' accounts, from the products' entries
  hostkit_accounts:
    groups: "{{ accounts.groups }}"
    users: "{{ accounts.users }}"
  vars:
    accounts: "{{ products | hostkit_product_accounts('/srv', '/usr/sbin/nologin', '/bin/bash') }}"
"""

RETURN = r"""
groups:
  description: The groups created or changed, each with the reason.
  returned: always
  type: list
  elements: dict
  sample: [{name: deploy, reason: missing}]
users:
  description: The users created or changed, each with the reason.
  returned: always
  type: list
  elements: dict
  sample: [{name: alice, reason: "not in deploy"}]
"""
