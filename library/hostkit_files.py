#!/usr/bin/python
"""Ansible module hostkit_files: a role's files, directories and links in one remote call."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: hostkit_files
short_description: Write a set of files, directories and links in one call, checked first
description:
  - Manages many paths of one role in a single remote call instead of one task (and two or
    three round trips) per file. The action plugin of the same name renders each entry's
    O(files[].template) (or reads its O(files[].src)) on the controller, then the module
    compares every entry with the host (content, owner, group, mode) and changes only what
    differs.
  - Entries are applied in the order given, like a list of M(ansible.builtin.file) and
    M(ansible.builtin.template) tasks. A file is written to a temporary file in its own
    directory, flushed to disk, checked with its O(files[].validate) command, and renamed
    over the destination only when the check passes (an atomic replacement).
  - With O(validate_set), the files and removals under O(validate_set.under) are held back
    until all other entries are applied, checked together by ONE run of
    O(validate_set.command), and put in place only when it passes, so that a configuration
    tree (Apache, PHP-FPM pools) never holds a file its daemon rejects.
  - Everything is checked against the host before the first change; a bad entry (unknown
    owner, missing directory, relative path) fails naming the entry.
  - A path may be named again only after a V(absent) entry for it (or for a directory above
    it); the later entry then starts from nothing, so V(absent) then V(directory) makes a
    fresh empty directory, and V(absent) then V(link) puts a link where a directory was.
  - Text files only (UTF-8). Handlers fire when the task reports C(changed); the result's
    RV(changed_files) says which paths changed, for handlers that concern only some of them.
version_added: "1.0.0"
author: hostkit maintainers
options:
  files:
    description:
      - The paths of the set, in the order they are applied.
      - A list among the entries stands for its own entries, so that a task can write its
        fixed entries out and add those a filter computes (one per product, say) in place.
        Handled by the action plugin.
    type: list
    elements: dict
    required: true
    suboptions:
      path:
        description: Absolute path on the host. A leading C(~user) is expanded on the host.
        type: path
        required: true
      state:
        description:
          - V(file) a regular file with the given content; V(directory) a directory (missing
            parents are made with the same owner, group and mode); V(link) a symbolic link to
            O(files[].target), replaced with one rename; V(absent) nothing there (a directory
            is removed with its content).
        type: str
        choices: [file, directory, link, absent]
        default: file
      template:
        description:
          - A Jinja2 template of the role (its C(templates/) directory), rendered on the
            controller with the task's variables plus O(files[].vars), as
            M(ansible.builtin.template) renders it. Handled by the action plugin.
        type: str
      src:
        description:
          - A file of the role (its C(files/) directory) copied as it is. Handled by the
            action plugin.
        type: str
      content:
        description: The file's content, given directly.
        type: str
      vars:
        description: Variables for O(files[].template) only (for example the product it is for).
        type: dict
      target:
        description: What a V(link) points at (relative or absolute), stored as given.
        type: str
      owner:
        description: Owner (name or uid); unset keeps the current one (root for new paths).
        type: str
      group:
        description: Group (name or gid); unset keeps the current one.
        type: str
      mode:
        description: Octal mode as a string, such as V('0644'); unset keeps the current mode
          (0644 for a new file, 0755 for a new directory).
        type: raw
      validate:
        description:
          - Command that checks the candidate file before it replaces the destination; V(%s)
            is replaced by the candidate's path (V(%%) for a literal per cent sign). Run
            without a shell. Not run in check mode.
        type: str
      force:
        description:
          - V(false) writes the file only when it is missing and never touches an existing one
            (for a file that something else keeps up to date once it exists).
        type: bool
        default: true
      when:
        description:
          - V(false) leaves the entry out, as if it were not written (a file of a feature
            that is off). Handled by the action plugin.
        type: bool
        default: true
      tags:
        description:
          - The entry is applied only when a task with these tags would run under the play's
            C(--tags) and C(--skip-tags), so that one call can do the work of several tagged
            steps. Without tags, the entry runs whenever the task runs. Handled by the
            action plugin.
        type: list
        elements: str
  purge:
    description:
      - Directories in which files matching O(purge[].patterns) that the set does not name are
        removed (for example the configuration of products that left the host).
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: The directory (nothing happens when it does not exist).
        type: path
        required: true
      patterns:
        description: Shell glob patterns matched against file names.
        type: list
        elements: str
        required: true
      when:
        description: V(false) leaves the entry out. Handled by the action plugin.
        type: bool
        default: true
      tags:
        description: As O(files[].tags). Handled by the action plugin.
        type: list
        elements: str
  require:
    description:
      - What the set relies on, checked before anything is written (in check mode too). Each
        O(require[].path) must exist and, with O(require[].search), its content must match
        that regular expression (Python C(re), multi-line). The first unmet one fails the
        task with its O(require[].msg).
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: File or directory on the host.
        type: path
        required: true
      search:
        description: Regular expression the file's content must match.
        type: str
      msg:
        description: What the failure says (the unmet condition is appended).
        type: str
  validate_set:
    description:
      - One check for every file of the set that changes, or is removed, under
        O(validate_set.under).
    type: dict
    suboptions:
      command:
        description:
          - Command run without a shell, with C(CANDIDATE DEST) appended for each changed file
            and C(/dev/null DEST) for each file to be removed. Exit status 0 means accepted.
        type: str
        required: true
      under:
        description: Directory whose files the check covers.
        type: path
        required: true
notes:
  - Supports check mode (nothing is written or validated) and diff mode (one diff per changed
    path).
  - On a host with SELinux enabled, each written file gets its default context.
seealso:
  - module: ansible.builtin.template
  - module: ansible.builtin.file
"""

EXAMPLES = r"""
- name: Write the Apache configuration, checked as a whole on a copy before it goes live
  hostkit_files:
    files:
      - path: /usr/local/sbin/hostkit-apache-configtest
        template: hostkit-apache-configtest.j2
        mode: "0755"
      - path: /etc/apache2/conf-enabled/hostkit.conf
        template: hostkit.conf.j2
        owner: root
        group: root
        mode: "0644"
      - path: /etc/apache2/sites-enabled/hostkit-shop.conf
        template: vhost.conf.j2
        vars:
          item: "{{ shop_product }}"
      - path: /etc/apache2/sites-enabled/000-default.conf
        state: absent
    purge:
      - path: /etc/apache2/sites-enabled
        patterns: [hostkit-*.conf]
    validate_set:
      command: /usr/local/sbin/hostkit-apache-configtest
      under: /etc/apache2
  notify: Reload Apache

- name: A firewall drop-in, only where the host's ruleset includes the drop-in directory
  hostkit_files:
    require:
      - path: /etc/nftables.conf
        search: 'include\s+"/etc/nftables.d/'
        msg: /etc/nftables.conf does not include /etc/nftables.d/*.nft
    files:
      - path: /etc/nftables.d/web.nft
        content: "tcp dport 80 accept\n"
        validate: /usr/local/sbin/hostkit-nft-check %s

- name: Fixed files written out, a feature's file only when it is on, one file per product
  hostkit_files:
    files:
      - path: /etc/ssh/sshd_config.d/00-hostkit.conf
        template: sshd_hardening.conf.j2
        validate: /usr/sbin/sshd -t -f %s
        tags: [common_ssh]
      - path: /etc/nftables.d/common.nft
        template: nftables_common.nft.j2
        when: "{{ common_firewall | bool }}"
        tags: [common_firewall]
      - "{{ common_products | hostkit_sudo_files('/etc/sudoers.d') }}"

- name: A directory, a checked file and a link
  hostkit_files:
    files:
      - path: /etc/sudoers.d
        state: directory
        mode: "0750"
      - path: /etc/sudoers.d/hostkit-shop
        content: "shop_dev ALL=(shop) NOPASSWD: ALL\n"
        mode: "0440"
        validate: visudo -cf %s
      - path: /srv/www/shop/current
        state: link
        target: releases/4f2a9c1e0b7d
  register: shop_files
"""

RETURN = r"""
changed_files:
  description: Paths that were created, changed or removed, in the order it happened.
  returned: always
  type: list
  elements: str
  sample: [/etc/apache2/sites-enabled/hostkit-shop.conf]
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.hostkit_files import (  # noqa: E402
    FilesError,
    Purge,
    Requirement,
    SetCheck,
    apply_set,
    parse_entries,
)

ENTRY_OPTIONS = dict(
    path=dict(type="path", required=True),
    state=dict(type="str", choices=["file", "directory", "link", "absent"], default="file"),
    content=dict(type="str"),
    target=dict(type="str"),
    owner=dict(type="str"),
    group=dict(type="str"),
    mode=dict(type="raw"),
    validate=dict(type="str"),
    force=dict(type="bool", default=True),
)

ARGUMENT_SPEC = dict(
    files=dict(type="list", elements="dict", required=True, options=ENTRY_OPTIONS),
    purge=dict(type="list", elements="dict", default=[], options=dict(
        path=dict(type="path", required=True),
        patterns=dict(type="list", elements="str", required=True),
    )),
    require=dict(type="list", elements="dict", default=[], options=dict(
        path=dict(type="path", required=True),
        search=dict(type="str"),
        msg=dict(type="str"),
    )),
    validate_set=dict(type="dict", options=dict(
        command=dict(type="str", required=True),
        under=dict(type="path", required=True),
    )),
)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params

    def runner(argv: list[str]) -> tuple[int, str, str]:
        return module.run_command(argv)

    def after_write(path: str) -> None:
        if module.selinux_enabled():
            module.set_default_selinux_context(path, False)

    try:
        entries = parse_entries(params["files"])
        purges = [Purge(path=p["path"], patterns=p["patterns"]) for p in params["purge"]]
        check = params["validate_set"]
        set_check = SetCheck(command=check["command"], under=check["under"]) if check else None
        requirements = [Requirement(path=r["path"], search=r["search"], msg=r["msg"])
                        for r in params["require"]]
        result = apply_set(entries, runner, purges=purges, set_check=set_check,
                           check_mode=module.check_mode, after_write=after_write,
                           requirements=requirements)
    except FilesError as exc:
        module.fail_json(msg=str(exc), changed=bool(exc.changed_files),
                         changed_files=exc.changed_files)
    output = dict(changed=bool(result.changed_files), changed_files=result.changed_files)
    if module._diff:
        output["diff"] = result.diff
    module.exit_json(**output)


if __name__ == "__main__":
    main()
