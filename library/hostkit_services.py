#!/usr/bin/python
"""Ansible module hostkit_services: several systemd units enabled and started in one call."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: hostkit_services
short_description: Enable and start several systemd units in one call
description:
  - Reads the state of every listed unit with one C(systemctl show), then runs
    C(systemctl enable), C(disable), C(start) and C(stop) once each for the units that need
    it. Nothing runs when every unit is already as wanted, so an idempotent run costs one
    remote call instead of one M(ansible.builtin.systemd_service) task per unit.
  - A unit counts as enabled when C(systemctl is-enabled) would succeed (enabled, static,
    alias, indirect, generated, ...), and as started when it is active, activating or
    reloading.
  - Every unit must exist; an unknown unit fails the task, naming it, before anything changes.
  - Restarts and reloads stay with handlers (M(ansible.builtin.systemd_service)).
version_added: "1.0.0"
author: hostkit maintainers
options:
  services:
    description:
      - The units and their wanted state.
      - A list among the entries stands for its own entries (units a filter computes).
        Handled by the action plugin.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Unit name (C(.service) may be left out).
        type: str
        required: true
      enabled:
        description: Whether the unit starts at boot; unset leaves it as it is.
        type: bool
      state:
        description: Whether the unit runs now; unset leaves it as it is.
        type: str
        choices: [started, stopped]
      start_if_capability:
        description:
          - Start the unit only when the service manager (PID 1) has this capability in its
            bounding set (for example V(CAP_SYS_TIME) for a time daemon, which a container
            lacks); otherwise it is only enabled, as systemd would skip it for a unit's
            C(ConditionCapability=), and it is listed in RV(lacking_capability).
        type: str
      when:
        description: V(false) leaves the unit out (a feature that is off). Handled by the
          action plugin.
        type: bool
        default: true
      tags:
        description:
          - The unit is handled only when a task with these tags would run under the play's
            C(--tags) and C(--skip-tags). Without tags, it is handled whenever the task runs.
            Handled by the action plugin.
        type: list
        elements: str
  daemon_reload:
    description:
      - Run C(systemctl daemon-reload) first, so that unit files written earlier in the run
        are read before the units are enabled or started (for example V("{{ units is
        changed }}")). Not reported as a change; not run in check mode.
    type: bool
    default: false
notes:
  - Supports check mode. Needs systemd as the service manager.
seealso:
  - module: ansible.builtin.systemd_service
"""

EXAMPLES = r"""
- name: Enable and start the base services; chrony started only where it can set the clock
  hostkit_services:
    services:
      - {name: cron, enabled: true, state: started}
      - {name: ssh, enabled: true, state: started}
      - {name: chrony, enabled: true, state: started, start_if_capability: CAP_SYS_TIME}
      - {name: nftables, enabled: true, state: started, when: "{{ common_firewall | bool }}"}
"""

RETURN = r"""
enabled:
  description: Units that were (in check mode, would be) enabled.
  returned: always
  type: list
  elements: str
  sample: [apache2]
disabled:
  description: Units that were disabled.
  returned: always
  type: list
  elements: str
  sample: []
started:
  description: Units that were started.
  returned: always
  type: list
  elements: str
  sample: [apache2]
stopped:
  description: Units that were stopped.
  returned: always
  type: list
  elements: str
  sample: []
lacking_capability:
  description: Units left unstarted because the service manager lacks their
    O(services[].start_if_capability).
  returned: always
  type: list
  elements: str
  sample: [chrony]
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.hostkit_services import (  # noqa: E402
    ServicesError,
    apply,
    parse_services,
)

ARGUMENT_SPEC = dict(
    services=dict(type="list", elements="dict", required=True, options=dict(
        name=dict(type="str", required=True),
        enabled=dict(type="bool"),
        state=dict(type="str", choices=["started", "stopped"]),
        start_if_capability=dict(type="str"),
    )),
    daemon_reload=dict(type="bool", default=False),
)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    systemctl = module.get_bin_path("systemctl", required=True)

    def runner(argv: list[str]) -> tuple[int, str, str]:
        return module.run_command([systemctl] + argv[1:])

    try:
        done = apply(parse_services(module.params["services"]), runner,
                     check_mode=module.check_mode, daemon_reload=module.params["daemon_reload"])
    except ServicesError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=done.changed, enabled=done.enable, disabled=done.disable,
                     started=done.start, stopped=done.stop, lacking_capability=done.lacking)


if __name__ == "__main__":
    main()
